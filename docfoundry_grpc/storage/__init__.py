"""Storage adapters behind one interface (`base.StorageAdapter`)."""

from __future__ import annotations

from ..config import DatabaseConfig
from .base import StorageAdapter


def build_store(
    config: DatabaseConfig, *, dimension: int, exclusive: bool = True
) -> StorageAdapter:
    """The adapter `config` asks for, not yet opened. PostgreSQL's driver is imported only
    when PostgreSQL is configured. `exclusive` False lets a tool open a SQLite file that a
    server holds, to read, or to write what the server does not keep in memory (API
    keys)."""
    if config.type == "postgresql":
        from .postgres import PostgresAdapter

        return PostgresAdapter(config.postgres, dimension=dimension)
    from .sqlite import SQLiteAdapter

    return SQLiteAdapter(
        config.sqlite_path, dimension=dimension, exclusive=exclusive, ann=config.sqlite_ann
    )


__all__ = ["StorageAdapter", "build_store"]
