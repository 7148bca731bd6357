"""PostgresAdapter: the production backend (asyncpg pool, pgvector, BM25 over postings).

Writes keep BM25's statistics exact under concurrent writers: per-term document frequencies
and corpus totals change in the same transaction as the chunks, with term rows locked in
sorted order. Readers therefore always score against the statistics of what they can see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector

from ..config import PostgresConfig
from ..errors import NotFoundError, SchemaMismatchError, StoreBusyError, StoreUnavailableError
from ..ingest import chunk_tokens
from ..models import (
    Chunk,
    ClickEvent,
    DeleteResult,
    Document,
    DocumentChunks,
    DocumentClicks,
    PoolStats,
    ScoredId,
    StoredChunk,
    StoredClick,
    StoreStats,
    UpsertOutcome,
    Vector,
)
from . import _postgres_segments as segments
from . import _postgres_sql as sql
from .base import SCHEMA_VERSION, check_distinct_paths, ranked_chunks

log = logging.getLogger(__name__)
query_log = logging.getLogger("docfoundry_grpc.sql")

# SQLSTATE classes that mean "the database is not there right now", not "bad query".
_UNAVAILABLE_CLASSES = ("08", "53", "57")


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.ConnectionDoesNotExistError):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and state[:2] in _UNAVAILABLE_CLASSES


class PostgresAdapter:
    backend = "postgresql"

    def __init__(self, config: PostgresConfig, *, dimension: int) -> None:
        self.config = config
        self.dimension = dimension
        self._pool: asyncpg.Pool | None = None
        self._waiting = 0
        self._compactor: asyncio.Task[None] | None = None
        self._segment_cache = segments.SegmentCache(config.postings_cache_mb * 2**20)

    async def open(self) -> None:
        """Creates the pool and the schema. A missing pgvector is fatal (SchemaMismatchError):
        retrying cannot fix it, so the server must not start."""
        if self._pool is not None:
            return
        try:
            await self._init_schema()
            self._pool = await asyncpg.create_pool(
                self.config.dsn(),
                min_size=self.config.pool_min_size,
                max_size=self.config.pool_max_size,
                max_queries=self.config.pool_max_queries,
                max_inactive_connection_lifetime=self.config.pool_max_inactive_lifetime,
                init=self._init_connection,
                reset=_keep_session,
                server_settings=self._search_settings(),
                **self._ssl(),
            )
        except SchemaMismatchError:
            raise
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise StoreUnavailableError(
                f"cannot reach PostgreSQL at {self.config.safe_dsn()}: {type(exc).__name__}"
            ) from exc
        if self.config.compact_interval > 0:
            self._compactor = asyncio.create_task(self._compact_periodically())

    def _search_settings(self) -> dict[str, str]:
        """Sent as startup parameters, which a session reset restores, where a SET would
        fall back to pgvector's defaults (ef_search 40: at most 40 neighbours per query)."""
        return {
            "hnsw.ef_search": str(int(self.config.hnsw_ef_search)),
            "hnsw.iterative_scan": "relaxed_order",
            "ivfflat.probes": str(int(self.config.ivfflat_probes)),
            "ivfflat.iterative_scan": "relaxed_order",
        }

    def _ssl(self) -> dict[str, Any]:
        return {} if self.config.url else {"ssl": self.config.sslmode}

    async def _init_schema(self) -> None:
        connection = await asyncpg.connect(self.config.dsn(), timeout=10, **self._ssl())
        try:
            async with connection.transaction():
                await connection.execute(sql.INIT_LOCK)
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
                await self._check_meta(connection)
                await connection.execute(sql.schema(self.dimension))
                await self._ensure_vector_index(connection)
                await self._check_index_memory(connection)
                await connection.execute(sql.SET_META, "schema_version", str(SCHEMA_VERSION))
                await connection.execute(sql.SET_META, "embedding_dimension", str(self.dimension))
        finally:
            await connection.close()

    async def _ensure_vector_index(self, connection: asyncpg.Connection) -> None:
        """Creates the configured vector index, or drops it for `none` (exact search).

        A bulk load runs fastest with `none` and then one start with the index: building
        over stored rows beats inserting each row into the graph. That build can take
        minutes, so it is logged with its size and duration.
        """
        kind, statement = self.config.vector_index, self._vector_index_sql()
        rows = 0
        if kind != "none":
            rows = await connection.fetchval(sql.ROWS_TO_INDEX, f"chunks_embedding_{kind}")
        if not rows:
            await connection.execute(statement)
            return
        await connection.fetchval(sql.BUILD_MEMORY, self.config.index_build_memory)
        log.info("building the %s vector index over %d stored chunks", kind, rows)
        started = time.monotonic()
        progress = asyncio.create_task(self._log_build_progress(kind))
        try:
            await connection.execute(statement)
        finally:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
        log.info("built the %s vector index in %.1f s", kind, time.monotonic() - started)

    async def _check_index_memory(self, connection: asyncpg.Connection) -> None:
        """Warns when the vector index outgrows shared_buffers. A graph search visits pages
        at random, and a page outside the buffer cache is copied in from the operating
        system's cache on every visit: at 100k chunks that made HNSW search twice as slow
        (see docs/operations.md). Checked at each start: the index grows with the corpus."""
        kind = self.config.vector_index
        if kind == "none":
            return
        sizes = await connection.fetchrow(sql.VECTOR_INDEX_MEMORY, f"chunks_embedding_{kind}")
        if sizes["index_bytes"] is not None and sizes["index_bytes"] > sizes["buffer_bytes"]:
            log.warning(
                "the %s vector index (%s) is larger than PostgreSQL's shared_buffers (%s): "
                "vector search reads index pages from the OS cache, about twice as slow; "
                "set shared_buffers above the index size",
                kind,
                sizes["index_size"],
                sizes["buffer_size"],
            )

    def _vector_index_sql(self) -> str:
        if self.config.vector_index == "none":
            return sql.NO_VECTOR_INDEX
        if self.config.vector_index == "ivfflat":
            return sql.ivfflat_index(self.config.ivfflat_lists)
        return sql.hnsw_index(self.config.hnsw_m, self.config.hnsw_ef_construction)

    async def _log_build_progress(self, kind: str, every: float = 15.0) -> None:
        """Logs pg_stat_progress_create_index for the build, from a second connection.
        Progress is only a courtesy: if it cannot be read, the build goes on unreported."""
        with contextlib.suppress(StoreUnavailableError, asyncpg.PostgresError):
            async with self._own_connection() as connection:
                while True:
                    await asyncio.sleep(every)
                    row = await connection.fetchrow(sql.INDEX_BUILD_PROGRESS)
                    if row is not None:
                        log.info("%s index build: %s, %s of %s", kind, *row)

    async def _check_meta(self, connection: asyncpg.Connection) -> None:
        exists = await connection.fetchval("SELECT to_regclass('meta') IS NOT NULL")
        if not exists:
            return
        dimension = await connection.fetchval(sql.GET_META, "embedding_dimension")
        if dimension is not None and int(dimension) != self.dimension:
            raise SchemaMismatchError(
                f"database holds {dimension}-d embeddings, the embedder makes "
                f"{self.dimension}-d: use another database or re-index"
            )
        version = await connection.fetchval(sql.GET_META, "schema_version")
        if version is not None and int(version) > SCHEMA_VERSION:
            raise SchemaMismatchError(
                f"database schema {version} is newer than this server's ({SCHEMA_VERSION})"
            )

    async def _init_connection(self, connection: asyncpg.Connection) -> None:
        await register_vector(connection)
        if self.config.log_queries:
            connection.add_query_logger(_log_query)

    async def close(self) -> None:
        compactor, self._compactor = self._compactor, None
        if compactor is not None:
            compactor.cancel()
            await asyncio.gather(compactor, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool
        if pool is None:
            raise StoreUnavailableError("PostgreSQL is not connected")
        self._waiting += 1
        try:
            connection = await pool.acquire(timeout=self.config.pool_acquire_timeout)
        except TimeoutError:
            raise StoreBusyError(
                f"no PostgreSQL connection became free within {self.config.pool_acquire_timeout:g}s"
            ) from None
        except Exception as exc:
            if _is_unavailable(exc):
                raise StoreUnavailableError("PostgreSQL is unreachable") from exc
            raise
        finally:
            self._waiting -= 1
        try:
            with _lost_connection_is_unavailable():
                yield connection
        finally:
            await pool.release(connection)

    @asynccontextmanager
    async def _own_connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection outside the pool, closed after use: the compactor's session-level
        lock ends with it, however the compaction ends."""
        try:
            connection = await asyncpg.connect(self.config.dsn(), timeout=10, **self._ssl())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise StoreUnavailableError("PostgreSQL is unreachable") from exc
        try:
            with _lost_connection_is_unavailable():
                yield connection
        finally:
            try:
                await connection.close(timeout=5)
            except Exception:
                connection.terminate()

    async def content_hash(self, path: str) -> str | None:
        async with self._connection() as db:
            value = await db.fetchval(sql.GET_HASH, path)
        return None if value is None else str(value)

    async def replace_documents(self, documents: Sequence[DocumentChunks]) -> list[UpsertOutcome]:
        check_distinct_paths(documents)
        if not documents:
            return []
        async with self._connection() as db, db.transaction():
            await db.execute(sql.WRITE_LOCK)
            metadata = [item.document for item in documents]
            rows = await db.fetch(
                sql.UPSERT_DOCUMENTS,
                [d.path for d in metadata],
                [d.title for d in metadata],
                [d.source_url for d in metadata],
                [d.content_hash for d in metadata],
            )
            stored = {str(r["path"]): (int(r["id"]), bool(r["created"])) for r in rows}
            # New documents have no chunks to drop: five statements saved on a fresh load.
            replaced = [id_ for id_, created in stored.values() if not created]
            df_delta: Counter[str] = Counter()
            removed = (0, 0)
            if replaced:
                df_delta, removed = await self._drop_chunks(db, replaced)
            document_ids = [stored[item.document.path][0] for item in documents]
            await self._insert_chunks(db, document_ids, documents, df_delta)
            added_chunks = sum(len(item.chunks) for item in documents)
            added_tokens = sum(len(c.tokens) for item in documents for c in item.chunks)
            await self._apply_stats(
                db, df_delta, added_chunks - removed[0], added_tokens - removed[1]
            )
        return [
            UpsertOutcome.CREATED if stored[item.document.path][1] else UpsertOutcome.REPLACED
            for item in documents
        ]

    async def _drop_chunks(
        self, db: asyncpg.Connection, document_ids: Sequence[int]
    ) -> tuple[Counter[str], tuple[int, int]]:
        """Deletes the documents' chunks; returns the df decrements and (chunks, tokens) gone."""
        df_delta: Counter[str] = Counter()
        for term, count in await db.fetch(sql.OLD_TERM_COUNTS, document_ids):
            df_delta[term] -= count
        chunk_count, token_count = await db.fetchrow(sql.OLD_CHUNK_TOTALS, document_ids)
        await db.execute(sql.TOMBSTONE_CHUNKS_OF_DOCUMENTS, document_ids)
        await db.execute(sql.DELETE_POSTINGS_OF_DOCUMENTS, document_ids)
        await db.execute(sql.DELETE_CHUNKS_OF_DOCUMENTS, document_ids)
        return df_delta, (int(chunk_count), int(token_count))

    async def _insert_chunks(
        self,
        db: asyncpg.Connection,
        document_ids: Sequence[int],
        documents: Sequence[DocumentChunks],
        df_delta: Counter[str],
    ) -> None:
        total = sum(len(item.chunks) for item in documents)
        if not total:
            return
        ids = [r[0] for r in await db.fetch(sql.NEXT_CHUNK_IDS, total)]
        chunk_rows, postings = _chunk_rows(ids, document_ids, documents, df_delta)
        await db.copy_records_to_table("chunks", columns=sql.CHUNK_COLUMNS, records=chunk_rows)
        await db.copy_records_to_table("postings", columns=sql.POSTING_COLUMNS, records=postings)

    async def _apply_stats(
        self, db: asyncpg.Connection, df_delta: Counter[str], chunks: int, tokens: int
    ) -> None:
        changed = sorted(term for term, delta in df_delta.items() if delta)
        if changed:
            await db.execute(sql.APPLY_DF_DELTAS, changed, [df_delta[t] for t in changed])
            shrunk = [t for t in changed if df_delta[t] < 0]
            if shrunk:
                await db.execute(sql.DROP_EMPTY_TERMS, shrunk)
        await db.execute(sql.APPLY_CORPUS_DELTA, chunks, tokens)

    async def delete_document(self, path: str) -> DeleteResult:
        async with self._connection() as db, db.transaction():
            await db.execute(sql.WRITE_LOCK)
            document_id = await db.fetchval(sql.GET_DOCUMENT_ID, path)
            if document_id is None:
                raise NotFoundError(f"no document with path {path!r}")
            clicks = int(await db.fetchval(sql.COUNT_CLICKS_OF_DOCUMENT, document_id))
            df_delta, (chunk_count, token_count) = await self._drop_chunks(db, [document_id])
            await self._apply_stats(db, df_delta, -chunk_count, -token_count)
            await db.execute(sql.DELETE_DOCUMENT, document_id)
        return DeleteResult(path, chunks_deleted=chunk_count, clicks_deleted=clicks)

    async def search_fulltext(
        self, terms: Sequence[str], *, limit: int, path_prefix: str = ""
    ) -> list[StoredChunk]:
        if not terms:
            return []
        if not path_prefix:
            return await self.chunks(await self.rank_fulltext(terms, limit=limit))
        async with self._connection() as db:
            rows = await db.fetch(sql.SEARCH_FULLTEXT_PREFIX, list(terms), limit, path_prefix)
        return [StoredChunk(*row) for row in rows]

    async def rank_fulltext(
        self, terms: Sequence[str], *, limit: int, path_prefix: str = ""
    ) -> list[ScoredId]:
        if not terms:
            return []
        if path_prefix:
            found = await self.search_fulltext(terms, limit=limit, path_prefix=path_prefix)
            return [(c.chunk_id, c.score) for c in found]
        async with self._connection() as db:
            return await segments.rank(db, terms, limit, self._segment_cache)

    async def chunks(self, ranked: Sequence[ScoredId]) -> list[StoredChunk]:
        if not ranked:
            return []
        async with self._connection() as db:
            rows = await db.fetch(sql.CHUNKS_BY_IDS, [i for i, _ in ranked])
        return ranked_chunks(ranked, rows)

    async def compact(self) -> segments.Compaction | None:
        """Packs the postings written since the last compaction (see `_postgres_segments`);
        None if another server is compacting the same database."""
        async with self._own_connection() as db:
            return await segments.compact(db)

    async def _compact_periodically(self) -> None:
        previous: segments.Backlog | None = None
        while True:
            await asyncio.sleep(self.config.compact_interval)
            try:
                async with self._connection() as db:
                    backlog = await segments.backlog(db)
                if backlog.due(previous):
                    await self.compact()
                    async with self._connection() as db:
                        backlog = await segments.backlog(db)
                previous = backlog
            except (StoreUnavailableError, StoreBusyError) as exc:
                log.warning("postings compaction skipped: %s", exc)
            except Exception:
                log.exception("postings compaction failed")

    async def search_vector(
        self, vector: Vector, *, limit: int, path_prefix: str = ""
    ) -> list[StoredChunk]:
        query = sql.SEARCH_VECTOR_PREFIX if path_prefix else sql.SEARCH_VECTOR
        rows = await self._nearest(query, vector, limit, path_prefix)
        return [StoredChunk(*row) for row in rows]

    async def rank_vector(
        self, vector: Vector, *, limit: int, path_prefix: str = ""
    ) -> list[ScoredId]:
        query = sql.RANK_VECTOR_PREFIX if path_prefix else sql.RANK_VECTOR
        rows = await self._nearest(query, vector, limit, path_prefix)
        return [(int(row[0]), float(row[1])) for row in rows]

    async def _nearest(
        self, query: str, vector: Vector, limit: int, path_prefix: str
    ) -> list[asyncpg.Record]:
        args = (vector, limit, path_prefix) if path_prefix else (vector, limit)
        async with self._connection() as db:
            if limit <= self.config.hnsw_ef_search:
                rows: list[asyncpg.Record] = await db.fetch(query, *args)
                return rows
            # HNSW returns at most ef_search rows per scan: widen it for this query only.
            async with db.transaction():
                await db.execute(f"SET LOCAL hnsw.ef_search = {min(int(limit), 1000)}")
                rows = await db.fetch(query, *args)
                return rows

    async def record_click(self, click: ClickEvent, *, query_key: str) -> int:
        async with self._connection() as db:
            document_id = await db.fetchval(sql.DOCUMENT_OF_CHUNK, click.chunk_id)
            if document_id is None:
                raise NotFoundError(f"no chunk with id {click.chunk_id}")
            try:
                click_id = await db.fetchval(
                    sql.INSERT_CLICK,
                    click.query,
                    query_key,
                    click.chunk_id,
                    document_id,
                    click.position,
                    click.session_id,
                    click.user_id,
                    click.dwell_time,
                )
            except asyncpg.ForeignKeyViolationError:
                raise NotFoundError(f"no chunk with id {click.chunk_id}") from None
        return int(click_id)

    async def has_clicks(self, query_key: str) -> bool:
        async with self._connection() as db:
            return bool(await db.fetchval(sql.HAS_CLICKS, query_key))

    async def document_clicks(
        self, query_key: str, chunk_ids: Sequence[int]
    ) -> dict[int, DocumentClicks]:
        if not chunk_ids:
            return {}
        async with self._connection() as db:
            rows = await db.fetch(sql.DOCUMENT_CLICKS, query_key, list(chunk_ids))
        return {int(r[0]): DocumentClicks(int(r[1]), int(r[2])) for r in rows}

    async def export_documents(self) -> AsyncIterator[tuple[Document, list[Chunk]]]:
        async with self._connection() as db:
            for document_id, path, title, source_url, digest in await db.fetch(
                sql.EXPORT_DOCUMENTS
            ):
                chunks = [
                    Chunk(
                        heading,
                        anchor,
                        text,
                        chunk_tokens(title, heading, text),
                        embedding.to_numpy().astype(np.float32),
                    )
                    for heading, anchor, text, embedding in await db.fetch(
                        sql.EXPORT_CHUNKS, document_id
                    )
                ]
                yield Document(path, title, source_url, digest), chunks

    async def export_clicks(self) -> AsyncIterator[StoredClick]:
        async with self._connection() as db:
            for row in await db.fetch(sql.EXPORT_CLICKS):
                yield StoredClick(*row)

    async def import_clicks(self, clicks: Sequence[StoredClick]) -> int:
        if not clicks:
            return 0
        columns = list(
            zip(
                *(
                    (
                        c.id,
                        c.query,
                        c.query_key,
                        c.document_path,
                        c.chunk_ordinal,
                        c.position,
                        c.session_id,
                        c.user_id,
                        c.dwell_time,
                        c.created_at,
                    )
                    for c in clicks
                ),
                strict=True,
            )
        )
        async with self._connection() as db, db.transaction():
            status = await db.execute(sql.IMPORT_CLICKS, *map(list, columns))
            await db.fetchval(sql.SYNC_CLICK_SEQUENCE)
        return int(status.rsplit(" ", 1)[-1])

    async def stats(self) -> StoreStats:
        async with self._connection() as db:
            documents, chunks, clicks = await db.fetchrow(sql.COUNTS)
            scans = {row[0]: float(row[1]) for row in await db.fetch(sql.INDEX_SCANS)}
            backlog = await segments.backlog(db)
        return StoreStats(
            documents=int(documents),
            chunks=int(chunks or 0),
            clicks=int(clicks),
            schema_version=SCHEMA_VERSION,
            embedding_dimension=self.dimension,
            pool=self.pool_stats(),
            extra=scans,
            fulltext_backlog=backlog.size,
            fulltext_cache=self._segment_cache.stats(),
        )

    def pool_stats(self) -> PoolStats | None:
        pool = self._pool
        if pool is None:
            return None
        size, idle = pool.get_size(), pool.get_idle_size()
        return PoolStats(
            size=size,
            in_use=size - idle,
            idle=idle,
            min_size=pool.get_min_size(),
            max_size=pool.get_max_size(),
            waiting=self._waiting,
        )

    async def ping(self) -> None:
        async with self._connection() as db:
            await asyncio.wait_for(db.fetchval("SELECT 1"), timeout=5)


def _chunk_rows(
    ids: Sequence[int],
    document_ids: Sequence[int],
    documents: Sequence[DocumentChunks],
    df_delta: Counter[str],
) -> tuple[list[tuple[Any, ...]], list[tuple[str, int, int, int]]]:
    """Rows of `chunks` and `postings` for the documents' chunks, which take `ids` in order;
    counts each chunk's distinct terms into `df_delta`."""
    chunk_rows: list[tuple[Any, ...]] = []
    postings: list[tuple[str, int, int, int]] = []
    next_id = iter(ids)
    for document_id, item in zip(document_ids, documents, strict=True):
        path = item.document.path
        for ordinal, chunk in enumerate(item.chunks):
            chunk_id, dl = next(next_id), len(chunk.tokens)
            heading, anchor, text = chunk.heading, chunk.anchor, chunk.text
            row = (chunk_id, document_id, path, ordinal, heading, anchor, text, dl, chunk.embedding)
            chunk_rows.append(row)
            frequencies = Counter(chunk.tokens)
            df_delta.update(frequencies.keys())
            postings.extend((term, chunk_id, tf, dl) for term, tf in frequencies.items())
    return chunk_rows, postings


@contextmanager
def _lost_connection_is_unavailable() -> Iterator[None]:
    """A query that fails because the database went away raises StoreUnavailableError."""
    try:
        yield
    except Exception as exc:
        if _is_unavailable(exc):
            raise StoreUnavailableError("PostgreSQL connection lost") from exc
        raise


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Returns a connection to the pool without asyncpg's default reset (RESET ALL, CLOSE ALL,
    UNLISTEN *, unlock all advisory locks), a round trip on every release. asyncpg still
    rolls back an open transaction first, and nothing else outlives a use here: settings are
    startup parameters, locks are per transaction, and the compactor's session lock is taken
    on a connection of its own."""


def _log_query(record: Any) -> None:
    """asyncpg query logger: statement text and duration only, never parameter values."""
    query_log.info(
        "sql %.2fms %s",
        record.elapsed * 1000,
        " ".join(str(record.query).split()),
        extra={"duration_ms": round(record.elapsed * 1000, 3)},
    )
