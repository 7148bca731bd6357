"""PostgresAdapter: the production backend (asyncpg pool, pgvector, BM25 over postings).

Writes keep BM25's statistics exact under concurrent writers: per-term document frequencies
and collection totals change in the same transaction as the chunks, with term rows locked in
sorted order. Readers therefore always score against the statistics of what they can see.
Schema and vector indexes live in `schema`, the pool in `connections`, full-text ranking
and compaction in `segments`; this class is the data access.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import astuple, replace
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
from cachetools import LRUCache, TTLCache

from ...config import PostgresConfig
from ...consistency import token_for
from ...errors import AlreadyExistsError, NotFoundError, StoreBusyError, StoreUnavailableError
from ...filters import Filter
from ...models import (
    DEFAULT_COLLECTION,
    ApiKey,
    Chunk,
    ClickCounts,
    ClickedQuery,
    ClickEvidence,
    ClickOutcome,
    ClickRecord,
    Collection,
    CollectionSpec,
    DeleteManyResult,
    DeleteResult,
    Document,
    DocumentChunks,
    PoolStats,
    ScoredId,
    StoredChunk,
    StoredClick,
    StoredDocument,
    StoreStats,
    UpsertOutcome,
    Vector,
)
from ...text import chunk_tokens
from ..base import (
    SCHEMA_VERSION,
    api_key_from_row,
    api_key_row,
    check_deletable,
    check_distinct_paths,
    click_evidence_from_rows,
    clicked_queries_from_rows,
    collection_from_row,
    metadata_from_json,
    metadata_json,
    no_such_collection,
    ranked_chunks,
    stored_chunk,
    stored_document,
)
from . import schema, segments, sql
from .connections import CONNECT_ERRORS, Connections
from .filter_sql import compile_filter
from .replicas import PRIMARY_POSITION, ReadRouter

log = logging.getLogger(__name__)


# How long a server trusts its copy of a collection's id and dimension. Ids are never
# reused, so a stale copy can only name a collection that another server deleted: its
# searches then find nothing, for at most this long.
COLLECTION_CACHE_SECONDS = 5.0
# Bytes of admitted chunk ids a server keeps for recent filters (see `_admitted`).
ADMITTED_CACHE_BYTES = 64 * 2**20


class PostgresAdapter:
    backend = "postgresql"

    def __init__(self, config: PostgresConfig, *, dimension: int) -> None:
        self.config = config
        self.dimension = dimension
        self._connections = Connections(config)
        # Searches and other reads: replicas when configured, else the primary's pool.
        self._reads = ReadRouter(self._connections, config)
        self._compactor: asyncio.Task[None] | None = None
        self._segment_cache = segments.SegmentCache(config.postings_cache_mb * 2**20)
        self._collections: TTLCache[str, Collection] = TTLCache(1024, COLLECTION_CACHE_SECONDS)
        self._admitted_cache: LRUCache[tuple[int, str], tuple[int, npt.NDArray[np.int64]]] = (
            LRUCache(ADMITTED_CACHE_BYTES, getsizeof=lambda entry: entry[1].nbytes + 1)
        )

    async def open(self) -> None:
        if self._connections.opened:
            return
        try:
            for collection in await schema.init_schema(self._connections, self.dimension):
                self._collections[collection.name] = collection
            await self._connections.open()
            await self._reads.open()
        except CONNECT_ERRORS as exc:
            raise StoreUnavailableError(
                f"cannot reach PostgreSQL at {self.config.safe_dsn()}: {type(exc).__name__}"
            ) from exc
        if self.config.compact_interval > 0:
            self._compactor = asyncio.create_task(self._compact_periodically())

    async def close(self) -> None:
        compactor, self._compactor = self._compactor, None
        if compactor is not None:
            compactor.cancel()
            await asyncio.gather(compactor, return_exceptions=True)
        await self._reads.close()
        await self._connections.close()

    # Collections ------------------------------------------------------------------------

    async def describe_collection(self, name: str) -> Collection:
        """The collection's id and settings, from a short-lived cache (or a read replica)."""
        return await self._describe(name, self._reads.acquire)

    async def _describe_for_write(self, name: str) -> Collection:
        """As `describe_collection`, read from the primary when not cached: a write must
        not miss a collection just created, or act on one a replica still shows."""
        return await self._describe(name, self._connections.acquire)

    async def _describe(
        self, name: str, acquire: Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]
    ) -> Collection:
        cached = self._collections.get(name)
        if cached is not None:
            return cached
        async with acquire() as db:
            row = await db.fetchrow(sql.GET_COLLECTION, name)
        if row is None:
            raise no_such_collection(name)
        collection = collection_from_row(row)
        self._collections[name] = collection
        return collection

    async def create_collection(self, spec: CollectionSpec) -> Collection:
        async with self._connections.acquire() as db, db.transaction():
            row = await db.fetchrow(
                sql.INSERT_COLLECTION,
                spec.name,
                spec.vectors.value,
                spec.dimension,
                spec.description,
            )
            if row is None:
                raise AlreadyExistsError(f"a collection named {spec.name!r} exists")
            collection = collection_from_row(row)
            await schema.ensure_vector_index(db, self._connections, collection)
        self._collections[spec.name] = collection
        return collection

    async def get_collection(self, name: str) -> Collection:
        self._collections.pop(name, None)
        collection = await self.describe_collection(name)
        async with self._reads.acquire() as db:
            documents, chunks = await db.fetchrow(sql.COLLECTION_COUNTS, collection.id)
        return _with_counts(collection, int(documents), int(chunks or 0))

    async def list_collections(self) -> list[Collection]:
        async with self._reads.acquire() as db:
            rows = await db.fetch(sql.LIST_COLLECTIONS)
        return [collection_from_row(row) for row in rows]

    async def delete_collection(self, name: str) -> DeleteManyResult:
        check_deletable(name)
        collection = await self._describe_for_write(name)
        async with self._connections.acquire() as db, db.transaction():
            await db.execute(sql.WRITE_LOCK)
            ids = [r[0] for r in await db.fetch(sql.DOCUMENT_IDS_OF_COLLECTION, collection.id)]
            result = await self._remove_documents(db, collection, ids)
            await db.execute(sql.DELETE_COLLECTION, collection.id)
            await db.execute(sql.no_vector_index(collection.id))
        self._collections.pop(name, None)
        return result

    # Documents --------------------------------------------------------------------------

    async def content_hashes(
        self, paths: Sequence[str], *, collection: str = DEFAULT_COLLECTION
    ) -> dict[str, str]:
        found = await self._describe_for_write(collection)
        async with self._connections.acquire() as db:
            rows = await db.fetch(sql.GET_HASHES, found.id, list(paths))
        return {str(path): str(value) for path, value in rows}

    async def replace_documents(
        self, documents: Sequence[DocumentChunks], *, collection: str = DEFAULT_COLLECTION
    ) -> list[UpsertOutcome]:
        check_distinct_paths(documents)
        if not documents:
            return []
        found = await self._describe_for_write(collection)
        async with self._connections.acquire() as db, db.transaction():
            await db.execute(sql.WRITE_LOCK)
            metadata = [item.document for item in documents]
            rows = await db.fetch(
                sql.UPSERT_DOCUMENTS,
                found.id,
                [d.path for d in metadata],
                [d.title for d in metadata],
                [d.source_url for d in metadata],
                [d.content_hash for d in metadata],
                [metadata_json(d.metadata) for d in metadata],
            )
            stored = {str(r["path"]): (int(r["id"]), bool(r["created"])) for r in rows}
            # New documents have no chunks to drop: five statements saved on a fresh load.
            replaced = [id_ for id_, created in stored.values() if not created]
            df_delta: Counter[str] = Counter()
            removed = (0, 0)
            if replaced:
                df_delta, removed = await self._drop_chunks(db, replaced)
            document_ids = [stored[item.document.path][0] for item in documents]
            await self._insert_chunks(db, found.id, document_ids, documents, df_delta)
            added_chunks = sum(len(item.chunks) for item in documents)
            added_tokens = sum(len(c.tokens) for item in documents for c in item.chunks)
            await self._apply_stats(
                db, found.id, df_delta, added_chunks - removed[0], added_tokens - removed[1]
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
        collection_id: int,
        document_ids: Sequence[int],
        documents: Sequence[DocumentChunks],
        df_delta: Counter[str],
    ) -> None:
        total = sum(len(item.chunks) for item in documents)
        if not total:
            return
        ids = [r[0] for r in await db.fetch(sql.NEXT_CHUNK_IDS, total)]
        # Counting a large document's terms is pure Python: a thread keeps it off the loop.
        chunk_rows, postings = await asyncio.to_thread(
            _chunk_rows, ids, collection_id, document_ids, documents, df_delta
        )
        await db.copy_records_to_table(
            "chunks", columns=sql.CHUNK_COLUMNS, records=_in_slices(chunk_rows)
        )
        await db.copy_records_to_table(
            "postings", columns=sql.POSTING_COLUMNS, records=_in_slices(postings)
        )

    async def _apply_stats(
        self,
        db: asyncpg.Connection,
        collection_id: int,
        df_delta: Counter[str],
        chunks: int,
        tokens: int,
    ) -> None:
        changed = sorted(term for term, delta in df_delta.items() if delta)
        if changed:
            await db.execute(sql.APPLY_DF_DELTAS, changed, [df_delta[t] for t in changed])
            shrunk = [t for t in changed if df_delta[t] < 0]
            if shrunk:
                await db.execute(sql.DROP_EMPTY_TERMS, shrunk)
        await db.execute(sql.APPLY_CORPUS_DELTA, collection_id, chunks, tokens)

    async def _remove_documents(
        self, db: asyncpg.Connection, collection: Collection, document_ids: Sequence[int]
    ) -> DeleteManyResult:
        """Deletes documents with their chunks and clicks, in the caller's transaction."""
        if not document_ids:
            return DeleteManyResult(0, 0, 0)
        clicks = int(await db.fetchval(sql.COUNT_CLICKS_OF_DOCUMENTS, document_ids))
        df_delta, (chunk_count, token_count) = await self._drop_chunks(db, document_ids)
        await self._apply_stats(db, collection.id, df_delta, -chunk_count, -token_count)
        await db.execute(sql.DELETE_DOCUMENTS, document_ids)
        return DeleteManyResult(len(document_ids), chunk_count, clicks)

    async def delete_document(
        self, path: str, *, collection: str = DEFAULT_COLLECTION
    ) -> DeleteResult:
        found = await self._describe_for_write(collection)
        async with self._connections.acquire() as db, db.transaction():
            await db.execute(sql.WRITE_LOCK)
            document_id = await db.fetchval(sql.GET_DOCUMENT_ID, found.id, path)
            if document_id is None:
                raise NotFoundError(f"no document with path {path!r} in {collection!r}")
            result = await self._remove_documents(db, found, [document_id])
        return DeleteResult(path, result.chunks_deleted, result.clicks_deleted)

    async def delete_documents(
        self, where: Filter | None, *, collection: str = DEFAULT_COLLECTION
    ) -> DeleteManyResult:
        found = await self._describe_for_write(collection)
        condition, params = compile_filter(where, alias="d", first_param=2)
        async with self._connections.acquire() as db, db.transaction():
            await db.execute(sql.WRITE_LOCK)
            rows = await db.fetch(
                sql.MATCHING_DOCUMENT_IDS.format(where=condition), found.id, *params
            )
            return await self._remove_documents(db, found, [r[0] for r in rows])

    async def get_document(
        self, path: str, *, collection: str = DEFAULT_COLLECTION
    ) -> StoredDocument:
        found = await self.describe_collection(collection)
        async with self._reads.acquire() as db:
            row = await db.fetchrow(sql.GET_DOCUMENT, found.id, path)
        if row is None:
            raise NotFoundError(f"no document with path {path!r} in {collection!r}")
        return stored_document(collection, row)

    async def list_documents(
        self,
        *,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
        after: str = "",
        limit: int,
    ) -> list[StoredDocument]:
        found = await self.describe_collection(collection)
        condition, params = compile_filter(where, alias="d", first_param=4)
        query = sql.LIST_DOCUMENTS.format(where=condition)
        async with self._reads.acquire() as db:
            rows = await db.fetch(query, found.id, after, limit, *params)
        return [stored_document(collection, row) for row in rows]

    # Search -----------------------------------------------------------------------------

    async def search_fulltext(
        self,
        terms: Sequence[str],
        *,
        limit: int,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
    ) -> list[StoredChunk]:
        ranked = await self.rank_fulltext(terms, limit=limit, collection=collection, where=where)
        return await self.chunks(ranked)

    async def rank_fulltext(
        self,
        terms: Sequence[str],
        *,
        limit: int,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
    ) -> list[ScoredId]:
        found = await self.describe_collection(collection)
        if not terms:
            return []
        async with self._reads.acquire() as db:
            only = None if where is None else (await self._admitted(db, found, where))[0]
            return await segments.rank(
                db, terms, limit, self._segment_cache, collection_id=found.id, only=only
            )

    async def _admitted(
        self, db: asyncpg.Connection, collection: Collection, where: Filter
    ) -> tuple[npt.NDArray[np.int64], int]:
        """Ids of the chunks `where` admits, with the collection's chunk count. The ids are
        kept per filter until the collection's next write by any server (its version in
        collection_stats), as a search engine keeps a filter's bitset: a repeated filter
        then costs one small read instead of a scan."""
        version, chunk_count = await db.fetchrow(sql.COLLECTION_VERSION, collection.id)
        key = (collection.id, repr(where))
        kept = self._admitted_cache.get(key)
        if kept is not None and kept[0] == version:
            return kept[1], int(chunk_count)
        condition, params = compile_filter(where, alias="d", first_param=2)
        query = sql.MATCHING_CHUNK_IDS.format(where=condition)
        rows = await db.fetch(query, collection.id, *params)
        admitted = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        if admitted.nbytes < ADMITTED_CACHE_BYTES:  # one that alone outgrows it is not kept
            self._admitted_cache[key] = (int(version), admitted)
        return admitted, int(chunk_count)

    async def chunks(self, ranked: Sequence[ScoredId]) -> list[StoredChunk]:
        if not ranked:
            return []
        async with self._reads.acquire() as db:
            rows = await db.fetch(sql.CHUNKS_BY_IDS, [i for i, _ in ranked])
        return ranked_chunks(ranked, rows)

    async def search_vector(
        self,
        vector: Vector,
        *,
        limit: int,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
    ) -> list[StoredChunk]:
        rows = await self._nearest(vector, limit, collection, where, rows=True)
        return [stored_chunk(row[:9], float(row[9])) for row in rows]

    async def rank_vector(
        self,
        vector: Vector,
        *,
        limit: int,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
    ) -> list[ScoredId]:
        rows = await self._nearest(vector, limit, collection, where, rows=False)
        return [(int(row[0]), float(row[1])) for row in rows]

    async def _nearest(
        self, vector: Vector, limit: int, collection: str, where: Filter | None, *, rows: bool
    ) -> list[asyncpg.Record]:
        """The `limit` chunks nearest to `vector`, `limit` of them whenever that many match.

        Unfiltered: the collection's index walk. Filtered, by how many chunks the filter
        admits (their ids are kept per filter, see `_admitted`): up to
        POSTGRES_FILTER_EXACT_MAX, an exact search over those ids, which is both exact and
        cheaper than a walk that must pass over a hundred rejected chunks for each one it
        keeps; above it, the walk with the filter applied as it goes (iterative scans),
        its breadth widened as the filter narrows (ef_search / √share: the walk's recall
        falls with the share of chunks it may keep), and the exact search again should the
        walk come back short.
        """
        found = await self.describe_collection(collection)
        half = self.config.half_precision_walk
        async with self._reads.acquire() as db:
            if where is None:
                walk = sql.nearest(found.id, found.dimension, "true", rows=rows, half=half)
                return await self._walk(db, walk, vector, limit, [], breadth=limit)
            admitted, chunk_count = await self._admitted(db, found, where)
            exact = sql.nearest_among(rows=rows)
            if len(admitted) <= self.config.filter_exact_max or self.config.vector_index == "none":
                found_rows: list[asyncpg.Record] = await db.fetch(exact, vector, limit, admitted)
                return found_rows
            condition, params = compile_filter(where, alias="c", first_param=3)
            walk = sql.nearest(found.id, found.dimension, condition, rows=rows, half=half)
            share = len(admitted) / max(chunk_count, 1)
            breadth = max(limit, math.ceil(self.config.hnsw_ef_search / math.sqrt(share)))
            result = await self._walk(db, walk, vector, limit, params, breadth=breadth)
            if len(result) >= limit:
                return result
            found_rows = await db.fetch(exact, vector, limit, admitted)
            return found_rows

    async def _walk(
        self,
        db: asyncpg.Connection,
        query: str,
        vector: Vector,
        limit: int,
        params: list[Any],
        *,
        breadth: int,
    ) -> list[asyncpg.Record]:
        """Runs an index walk at least `breadth` wide (hnsw.ef_search, at most 1000)."""
        if breadth <= self.config.hnsw_ef_search:
            rows: list[asyncpg.Record] = await db.fetch(query, vector, limit, *params)
            return rows
        # HNSW returns at most ef_search rows per scan: widen it for this query only.
        async with db.transaction():
            await db.execute(f"SET LOCAL hnsw.ef_search = {min(int(breadth), 1000)}")
            rows = await db.fetch(query, vector, limit, *params)
            return rows

    # Compaction -------------------------------------------------------------------------

    async def compact(self) -> segments.Compaction | None:
        """Packs the postings written since the last compaction (see `segments`); None if
        another server is compacting the same database."""
        async with self._connections.own() as db:
            return await segments.compact(db)

    async def _compact_periodically(self) -> None:
        previous: segments.Backlog | None = None
        while True:
            await asyncio.sleep(self.config.compact_interval)
            try:
                async with self._connections.acquire() as db:
                    backlog = await segments.backlog(db)
                if backlog.due(previous):
                    await self.compact()
                    async with self._connections.acquire() as db:
                        backlog = await segments.backlog(db)
                previous = backlog
            except (StoreUnavailableError, StoreBusyError) as exc:
                log.warning("postings compaction skipped: %s", exc)
            except Exception:
                log.exception("postings compaction failed")

    # Clicks -----------------------------------------------------------------------------

    async def record_click(
        self, click: ClickRecord, *, judge: Callable[[ClickCounts], ClickOutcome]
    ) -> tuple[int, ClickOutcome]:
        event = click.event
        async with self._connections.acquire() as db, db.transaction():
            document_id = await db.fetchval(sql.DOCUMENT_OF_CHUNK, event.chunk_id)
            if document_id is None:
                raise NotFoundError(f"no chunk with id {event.chunk_id}")
            outcome = click.outcome
            if outcome is None:
                await db.execute(sql.LOCK_CLICK_QUERY, click.query_key)
                duplicate, session, user, key = await db.fetchrow(
                    sql.COUNT_CLICKS,
                    click.query_key,
                    document_id,
                    event.session_id,
                    click.impression,
                    event.user_id,
                    event.key_id,
                )
                outcome = judge(ClickCounts(duplicate, session, user, key))
            try:
                click_id = await db.fetchval(
                    sql.INSERT_CLICK,
                    event.query,
                    click.query_key,
                    event.chunk_id,
                    document_id,
                    click.position,
                    event.session_id,
                    event.user_id,
                    event.dwell_time,
                    event.key_id,
                    click.impression,
                    click.source,
                    click.weight,
                    outcome.value,
                )
            except asyncpg.ForeignKeyViolationError:
                raise NotFoundError(f"no chunk with id {event.chunk_id}") from None
        return int(click_id), outcome

    async def create_api_key(self, key: ApiKey) -> None:
        async with self._connections.acquire() as db:
            await db.execute(sql.INSERT_API_KEY, *api_key_row(key))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        async with self._connections.acquire() as db:
            row = await db.fetchrow(sql.GET_API_KEY, key_id)
        return None if row is None else api_key_from_row(tuple(row))

    async def list_api_keys(self) -> list[ApiKey]:
        async with self._connections.acquire() as db:
            rows = await db.fetch(sql.LIST_API_KEYS)
        return [api_key_from_row(tuple(r)) for r in rows]

    async def revoke_api_key(self, key_id: str) -> bool:
        async with self._connections.acquire() as db:
            return await db.fetchval(sql.REVOKE_API_KEY, key_id) is not None

    async def has_clicks(self, query_key: str) -> bool:
        async with self._reads.acquire() as db:
            return bool(await db.fetchval(sql.HAS_CLICKS, query_key))

    async def click_evidence(
        self, query_key: str, chunk_ids: Sequence[int], *, collection: str
    ) -> ClickEvidence:
        if not chunk_ids:
            return ClickEvidence(0, {})
        async with self._reads.acquire() as db:
            rows = await db.fetch(sql.CLICK_EVIDENCE, query_key, list(chunk_ids), collection)
        return click_evidence_from_rows(rows)

    # Learned rankers ----------------------------------------------------------------------

    async def click_history(self, collection: str) -> list[ClickedQuery]:
        async with self._connections.acquire() as db:
            rows = await db.fetch(sql.CLICK_HISTORY, collection)
        return clicked_queries_from_rows(rows)

    async def save_ranker(self, collection: str, model: str, *, live: bool) -> int:
        async with self._connections.acquire() as db, db.transaction():
            collection_id = await db.fetchval(sql.LOCK_COLLECTION, collection)
            if collection_id is None:
                raise no_such_collection(collection)
            if live:
                await db.execute(sql.RETIRE_RANKERS, collection_id)
            return int(await db.fetchval(sql.INSERT_RANKER, collection_id, live, model))

    async def live_rankers(self) -> dict[str, int]:
        async with self._reads.acquire() as db:
            return {str(name): int(version) for name, version in await db.fetch(sql.LIVE_RANKERS)}

    async def ranker_model(self, collection: str, version: int) -> str | None:
        async with self._reads.acquire() as db:
            model = await db.fetchval(sql.RANKER_MODEL, collection, version)
        return None if model is None else str(model)

    # Migration and health ---------------------------------------------------------------

    async def export_documents(self) -> AsyncIterator[tuple[str, Document, list[Chunk]]]:
        async with self._connections.acquire() as db:
            for row in await db.fetch(sql.EXPORT_DOCUMENTS):
                document_id, collection, path, title, source_url, digest, metadata = row
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
                document = Document(path, title, source_url, digest, metadata_from_json(metadata))
                yield str(collection), document, chunks

    async def export_clicks(self) -> AsyncIterator[StoredClick]:
        async with self._connections.acquire() as db:
            for row in await db.fetch(sql.EXPORT_CLICKS):
                yield StoredClick(*row)

    async def import_clicks(self, clicks: Sequence[StoredClick]) -> int:
        if not clicks:
            return 0
        # StoredClick's fields are IMPORT_CLICKS's arrays, in order.
        columns = list(zip(*(astuple(c) for c in clicks), strict=True))
        async with self._connections.acquire() as db, db.transaction():
            status = await db.execute(sql.IMPORT_CLICKS, *map(list, columns))
            await db.fetchval(sql.SYNC_CLICK_SEQUENCE)
        return int(status.rsplit(" ", 1)[-1])

    async def stats(self) -> StoreStats:
        async with self._connections.acquire() as db:
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
            reads=self._reads.reads() if self._reads.replicas else {},
            replicas_healthy=self._reads.health(),
        )

    def pool_stats(self) -> PoolStats | None:
        return self._connections.pool_stats()

    async def write_position(self) -> str:
        """The consistency token of every write acknowledged so far (see `replicas`)."""
        async with self._connections.acquire() as db:
            return token_for(int(await db.fetchval(PRIMARY_POSITION)))

    async def ping(self) -> None:
        async with self._connections.acquire() as db:
            await asyncio.wait_for(db.fetchval("SELECT 1"), timeout=5)


def _with_counts(collection: Collection, documents: int, chunks: int) -> Collection:
    return replace(collection, documents=documents, chunks=chunks)


# Rows asyncpg encodes between two turns of the event loop during a COPY.
COPY_SLICE_ROWS = 2000


async def _in_slices(rows: Sequence[tuple[Any, ...]]) -> AsyncIterator[tuple[Any, ...]]:
    """The rows, yielding to the event loop every COPY_SLICE_ROWS: asyncpg encodes COPY
    records on the loop, and a 2 MB document's 300k postings would otherwise hold it for
    the whole encoding."""
    for start in range(0, len(rows), COPY_SLICE_ROWS):
        for row in rows[start : start + COPY_SLICE_ROWS]:
            yield row
        await asyncio.sleep(0)


def _chunk_rows(
    ids: Sequence[int],
    collection_id: int,
    document_ids: Sequence[int],
    documents: Sequence[DocumentChunks],
    df_delta: Counter[str],
) -> tuple[list[tuple[Any, ...]], list[tuple[str, int, int, int]]]:
    """Rows of `chunks` and `postings` for the documents' chunks, which take `ids` in order;
    counts each chunk's distinct terms (as the collection stores them) into `df_delta`."""
    chunk_rows: list[tuple[Any, ...]] = []
    postings: list[tuple[str, int, int, int]] = []
    next_id = iter(ids)
    for document_id, item in zip(document_ids, documents, strict=True):
        path, metadata = item.document.path, metadata_json(item.document.metadata)
        for ordinal, chunk in enumerate(item.chunks):
            chunk_id, dl = next(next_id), len(chunk.tokens)
            chunk_rows.append(
                (
                    chunk_id,
                    document_id,
                    collection_id,
                    metadata,
                    path,
                    ordinal,
                    chunk.heading,
                    chunk.anchor,
                    chunk.text,
                    dl,
                    chunk.embedding,
                )
            )
            frequencies = Counter(segments.term_key(collection_id, t) for t in chunk.tokens)
            df_delta.update(frequencies.keys())
            postings.extend((term, chunk_id, tf, dl) for term, tf in frequencies.items())
    return chunk_rows, postings
