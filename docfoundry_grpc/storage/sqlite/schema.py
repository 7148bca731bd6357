"""The SQLite schema: created at first open, upgraded in place from schema 1 (before
collections) and from schema 4 (terms in FTS5), and checked against the server's model and
version at every open."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from ...errors import SchemaMismatchError
from ..base import SCHEMA_VERSION
from . import sql


async def init_schema(db: aiosqlite.Connection, path: Path, dimension: int) -> None:
    """Creates or upgrades the schema and the default collection (for the model's
    dimension); raises SchemaMismatchError for a database made for another model or a newer
    schema."""
    await db.execute(sql.META)
    stored = await _meta(db)
    version, stored_dimension = stored["schema_version"], stored["embedding_dimension"]
    if stored_dimension not in (None, dimension):
        raise SchemaMismatchError(
            f"database {path} holds {stored_dimension}-d embeddings, "
            f"the embedder makes {dimension}-d: use another SQLITE_PATH or re-index"
        )
    if (version or 0) > SCHEMA_VERSION:
        raise SchemaMismatchError(
            f"database schema {version} is newer than this server's "
            f"({SCHEMA_VERSION}): upgrade DocFoundry"
        )
    if version == 1:
        await _upgrade_from_1(db)
    await db.executescript(sql.SCHEMA)
    await _move_terms_out_of_fts(db)
    await _add_click_columns(db)
    await db.execute(sql.API_KEYS)
    await db.execute(sql.RANKER_MODELS)
    await db.execute(sql.SET_META, ("schema_version", str(SCHEMA_VERSION)))
    await db.execute(sql.SET_META, ("embedding_dimension", str(dimension)))
    await db.execute(sql.INSERT_DEFAULT_COLLECTION, (dimension,))
    await db.commit()


async def _meta(db: aiosqlite.Connection) -> dict[str, int | None]:
    stored: dict[str, int | None] = {}
    for key in ("schema_version", "embedding_dimension"):
        async with db.execute(sql.GET_META, (key,)) as cursor:
            row = await cursor.fetchone()
        stored[key] = int(row[0]) if row else None
    return stored


async def _add_click_columns(db: aiosqlite.Connection) -> None:
    """Schema 2 → 3: clicks name the API key that sent them; 3 → 4: what the click model
    made of them (SQLite has no ADD COLUMN IF NOT EXISTS, so the column list says whether
    each is there)."""
    async with db.execute(sql.CLICK_COLUMNS) as cursor:
        columns = {row[0] for row in await cursor.fetchall()}
    if "key_id" not in columns:
        await db.execute(sql.ADD_CLICK_KEY)
    for name, statement in sql.CLICK_MODEL_COLUMNS.items():
        if name not in columns:
            await db.execute(statement)
    await db.execute(sql.CLICK_COUNTED_INDEX)


async def _move_terms_out_of_fts(db: aiosqlite.Connection) -> None:
    """Schema 4 → 5 in one transaction: the chunks' terms move from the FTS5 table, whose
    inverted index nothing read, to the plain chunk_terms table."""
    async with db.execute(sql.HAS_FTS_TERMS) as cursor:
        if await cursor.fetchone() is None:
            return
    await db.commit()
    try:
        await db.executescript(f"BEGIN IMMEDIATE; {sql.MOVE_FTS_TERMS} COMMIT;")
    except BaseException:
        await db.rollback()
        raise


async def _upgrade_from_1(db: aiosqlite.Connection) -> None:
    """Schema 1 → 2 in one transaction: every document joins the default collection."""
    await db.commit()
    await db.execute("PRAGMA foreign_keys = OFF")
    try:
        await db.executescript(f"BEGIN IMMEDIATE; {sql.UPGRADE_FROM_1}")
        async with db.execute("PRAGMA foreign_key_check") as cursor:
            broken = list(await cursor.fetchall())
        if broken:
            await db.rollback()
            raise SchemaMismatchError(f"schema upgrade would break references: {broken[:3]}")
        await db.execute(sql.SET_META, ("schema_version", "2"))
        await db.commit()
    finally:
        await db.execute("PRAGMA foreign_keys = ON")
