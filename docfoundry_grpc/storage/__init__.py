"""Storage adapters behind one interface (`base.StorageAdapter`)."""

from __future__ import annotations

from ..config import DatabaseConfig
from .base import StorageAdapter


def build_store(config: DatabaseConfig, *, dimension: int) -> StorageAdapter:
    """The adapter `config` asks for, not yet opened. PostgreSQL's driver is imported only
    when PostgreSQL is configured."""
    if config.type == "postgresql":
        from .postgres import PostgresAdapter

        return PostgresAdapter(config.postgres, dimension=dimension)
    from .sqlite import SQLiteAdapter

    return SQLiteAdapter(config.sqlite_path, dimension=dimension)


__all__ = ["StorageAdapter", "build_store"]
