"""The SQLite adapter: `adapter` (data access), `schema` (schema and upgrades), `index`
(each collection's in-memory vectors and postings), `filter_sql` (filters), `sql` (the
statements)."""

from .adapter import SQLiteAdapter

__all__ = ["SQLiteAdapter"]
