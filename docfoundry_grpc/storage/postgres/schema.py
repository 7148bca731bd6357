"""Schema creation and upgrades, and each collection's vector index.

Run at every start under one advisory lock, so servers starting together on one database
create or upgrade it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg

from ...config import PostgresConfig
from ...errors import SchemaMismatchError, StoreUnavailableError
from ...models import Collection
from ..base import SCHEMA_VERSION, collection_from_row
from . import sql
from .connections import Connections

log = logging.getLogger(__name__)


async def init_schema(connections: Connections, dimension: int) -> list[Collection]:
    """Creates or upgrades the schema and every collection's vector index; returns the
    collections. A missing pgvector is fatal (SchemaMismatchError): retrying cannot fix it,
    so the server must not start."""
    async with connections.own() as connection, connection.transaction():
        await connection.execute(sql.INIT_LOCK)
        await _create_extension(connection)
        await connection.execute(sql.META)
        version = await _check_meta(connection, dimension)
        if version == 1:
            log.info("upgrading the database schema from version 1 to %d", SCHEMA_VERSION)
            await connection.execute(sql.UPGRADE_FROM_1)
        await connection.execute(sql.SCHEMA)
        await connection.execute(sql.INSERT_DEFAULT_COLLECTION, dimension)
        await connection.execute(sql.INSERT_DEFAULT_STATS)
        await connection.fetchval(sql.SYNC_COLLECTION_SEQUENCE)
        collections = [collection_from_row(r) for r in await connection.fetch(sql.ALL_COLLECTIONS)]
        for collection in collections:
            await ensure_vector_index(connection, connections, collection)
        await _check_index_memory(connection, connections.config)
        await connection.execute(sql.SET_META, "schema_version", str(SCHEMA_VERSION))
        await connection.execute(sql.SET_META, "embedding_dimension", str(dimension))
    return collections


async def _create_extension(connection: asyncpg.Connection) -> None:
    try:
        await connection.execute(sql.CREATE_EXTENSION)
    except (
        asyncpg.FeatureNotSupportedError,
        asyncpg.UndefinedFileError,
        asyncpg.InsufficientPrivilegeError,
    ) as exc:
        raise SchemaMismatchError(
            "PostgreSQL lacks the pgvector extension: install pgvector 0.8+ for "
            "your server (e.g. the postgresql-NN-pgvector package) and run "
            "`CREATE EXTENSION vector` as a superuser"
        ) from exc


async def _check_meta(connection: asyncpg.Connection, dimension: int) -> int | None:
    """The stored schema version (None for a new database), checked against this code."""
    stored = await connection.fetchval(sql.GET_META, "embedding_dimension")
    if stored is not None and int(stored) != dimension:
        raise SchemaMismatchError(
            f"database holds {stored}-d embeddings, the embedder makes "
            f"{dimension}-d: use another database or re-index"
        )
    version = await connection.fetchval(sql.GET_META, "schema_version")
    if version is not None and int(version) > SCHEMA_VERSION:
        raise SchemaMismatchError(
            f"database schema {version} is newer than this server's ({SCHEMA_VERSION})"
        )
    return None if version is None else int(version)


def vector_index_sql(config: PostgresConfig, collection: Collection) -> str:
    if config.vector_index == "none":
        return sql.no_vector_index(collection.id)
    if config.vector_index == "ivfflat":
        return sql.ivfflat_index(collection.id, collection.dimension, config.ivfflat_lists)
    return sql.hnsw_index(
        collection.id,
        collection.dimension,
        config.hnsw_m,
        config.hnsw_ef_construction,
        half=config.hnsw_precision == "half",
    )


async def ensure_vector_index(
    connection: asyncpg.Connection, connections: Connections, collection: Collection
) -> None:
    """Creates the configured vector index of a collection, or drops it for `none` (exact).

    A bulk load runs fastest with `none` and then one start with the index: building
    over stored rows beats inserting each row into the graph. That build can take
    minutes, so it is logged with its size and duration.
    """
    config = connections.config
    kind, statement = config.index_kind, vector_index_sql(config, collection)
    rows = 0
    if kind != "none":
        name = sql.vector_index_name(kind, collection.id)
        rows = await connection.fetchval(sql.ROWS_TO_INDEX, name, collection.id)
    if not rows:
        await connection.execute(statement)
        return
    await connection.fetchval(sql.BUILD_MEMORY, config.index_build_memory)
    log.info(
        "building the %s vector index of collection %r over %d stored chunks",
        kind,
        collection.name,
        rows,
    )
    started = time.monotonic()
    progress = asyncio.create_task(_log_build_progress(connections, kind))
    try:
        await connection.execute(statement)
    finally:
        progress.cancel()
        await asyncio.gather(progress, return_exceptions=True)
    log.info("built the %s vector index in %.1f s", kind, time.monotonic() - started)


async def _check_index_memory(connection: asyncpg.Connection, config: PostgresConfig) -> None:
    """Warns when the vector indexes outgrow shared_buffers. A graph search visits pages
    at random, and a page outside the buffer cache is copied in from the operating
    system's cache on every visit: at 100k chunks that made HNSW search twice as slow
    (see docs/operations.md). Checked at each start: the indexes grow with the corpus."""
    if config.vector_index == "none":
        return
    sizes = await connection.fetchrow(sql.VECTOR_INDEX_MEMORY)
    if sizes["index_bytes"] is not None and sizes["index_bytes"] > sizes["buffer_bytes"]:
        log.warning(
            "the vector indexes (%s) are larger than PostgreSQL's shared_buffers (%s): "
            "vector search reads index pages from the OS cache, about twice as slow; "
            "set shared_buffers above the index size",
            sizes["index_size"],
            sizes["buffer_size"],
        )


async def _log_build_progress(connections: Connections, kind: str, every: float = 15.0) -> None:
    """Logs pg_stat_progress_create_index for the build, from a second connection.
    Progress is only a courtesy: if it cannot be read, the build goes on unreported."""
    with contextlib.suppress(StoreUnavailableError, asyncpg.PostgresError):
        async with connections.own() as connection:
            while True:
                await asyncio.sleep(every)
                row = await connection.fetchrow(sql.INDEX_BUILD_PROGRESS)
                if row is not None:
                    log.info("%s index build: %s, %s of %s", kind, *row)
