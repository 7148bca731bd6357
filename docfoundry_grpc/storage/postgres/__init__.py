"""The PostgreSQL adapter, split by concern: `adapter` (data access), `schema` (schema,
upgrades, vector indexes), `connections` (pool, errors), `segments` (full-text ranking and
compaction), `filter_sql` (filters), `sql` (the statements)."""

from .adapter import PostgresAdapter

__all__ = ["PostgresAdapter"]
