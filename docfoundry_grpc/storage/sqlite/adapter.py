"""SQLiteAdapter: the embedded backend (aiosqlite; BM25 and exact cosine in numpy).

One writer connection, serialised by a lock, and a few reader connections: WAL mode gives
readers a consistent snapshot, so a search never sees half of a document replace. Each
collection's vectors and full-text postings are also held in memory (loaded at open, updated
after each commit), because ranking there is an order of magnitude faster than in SQL. A
filter is one SQL query for the ids of the chunks it admits; the ranking then skips the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np
import numpy.typing as npt
from cachetools import LRUCache

from ...bm25 import top_chunks_off_loop
from ...config import AnnConfig
from ...errors import (
    AlreadyExistsError,
    NotFoundError,
    StoreBusyError,
    StoreUnavailableError,
)
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
    VectorGraphStats,
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
    stored_document,
)
from ..posting_index import PostingIndex
from . import sql
from .filter_sql import compile_filter
from .index import ADMITTED_CACHE_BYTES, CollectionIndex, forget
from .owner import FileOwner
from .schema import init_schema

log = logging.getLogger(__name__)


class SQLiteAdapter:
    backend = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        dimension: int,
        readers: int = 2,
        acquire_timeout: float = 5.0,
        exclusive: bool = True,
        ann: AnnConfig | None = None,
    ) -> None:
        self.path = path
        self.ann = ann or AnnConfig()
        self.exclusive = exclusive
        self._owner: FileOwner | None = None
        self.dimension = dimension
        self._reader_count = readers
        self._acquire_timeout = acquire_timeout
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        self._write_lock = asyncio.Lock()
        self._indexes: dict[str, CollectionIndex] = {}
        # (collection id, filter) → (the collection's generation, admitted chunk ids)
        self._admitted_ids: LRUCache[tuple[int, str], tuple[int, npt.NDArray[np.int64]]] = LRUCache(
            ADMITTED_CACHE_BYTES, getsizeof=lambda entry: entry[1].nbytes + 1
        )
        self._waiting = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.exclusive:
                self._owner = FileOwner.claim(self.path)
            self._writer = await self._connect()
            await init_schema(self._writer, self.path, self.dimension)
            for _ in range(self._reader_count):
                reader = await self._connect()
                self._all_readers.append(reader)
                self._readers.put_nowait(reader)
            await self._load_indexes()
        except BaseException as exc:
            # Whatever stopped the open, the connections made so far go: each holds a
            # thread that would keep the process from exiting.
            await self.close()
            if isinstance(exc, sqlite3.Error | OSError):
                message = f"cannot open SQLite database {self.path}: {exc}"
                raise StoreUnavailableError(message) from exc
            raise

    def _maintain_if_due(self, index: CollectionIndex) -> None:
        """Starts compacting the collection's vectors when due, and tells its posting fold
        and graph build that a write came (they wait for writes to pause). All run in
        threads: the write returns at once and searches go on meanwhile."""
        if index.vectors.compaction_due and not index.compacting:
            index.compacting = True

            async def compact() -> None:
                try:
                    await asyncio.to_thread(index.vectors.compact)
                finally:
                    index.compacting = False

            self._background(compact(), f"compact-vectors-{index.collection.name}")
        index.graph_start.poke()
        index.fold_start.poke()

    def _new_index(self, collection: Collection) -> CollectionIndex:
        return CollectionIndex(
            collection, self.ann, start_fold=self._fold, start_graph=self._build_graph
        )

    def _fold(self, index: CollectionIndex) -> None:
        fold = index.postings.freeze()

        async def run() -> None:
            try:
                result = await asyncio.to_thread(fold.compute)
            except Exception:  # searches stay right over the tails; only slower
                log.exception("folding the postings of %r failed", index.collection.name)
                return
            index.postings.apply(fold, result)

        self._background(run(), f"fold-postings-{index.collection.name}")

    def _build_graph(self, index: CollectionIndex) -> None:
        index.building = True

        async def build() -> None:
            try:
                await asyncio.to_thread(index.vectors.build_graph)
            except Exception:  # searches stay right over the exact tail; only slower
                log.exception("building the vector graph of %r failed", index.collection.name)
            finally:
                index.building = False

        self._background(build(), f"vector-graph-{index.collection.name}")

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Work the adapter awaits at close, not the write that started it."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for index in self._indexes.values():
            index.vectors.stop()
            index.graph_start.cancel()
            index.fold_start.cancel()
        tasks, self._tasks = list(self._tasks), set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.exclusive and self._writer is not None:
            await self._save_graphs()
        # Every reader, not only the idle ones: a reader a cancelled call still holds would
        # otherwise keep its thread, and with it the process, alive after shutdown.
        readers, self._all_readers = self._all_readers, []
        while not self._readers.empty():
            self._readers.get_nowait()
        for reader in readers:
            await reader.close()
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    def _graph_path(self, collection_id: int) -> Path:
        """Where a collection's vector graph is kept between starts: a cache beside the
        database (never the truth: a start checks it against the stored vectors)."""
        return self.path.with_name(f"{self.path.name}.graphs") / f"{collection_id}.usearch"

    async def _save_graphs(self) -> None:
        for index in self._indexes.values():
            path = self._graph_path(index.collection.id)
            try:
                path.parent.mkdir(exist_ok=True)
                await asyncio.to_thread(index.vectors.save, path)
            except OSError as exc:  # only the next start's speed depends on it
                log.warning("could not keep the vector graph in %s: %s", path, exc)

    async def _connect(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(self.path)
        for pragma in sql.PRAGMAS:
            await connection.execute(pragma)
        return connection

    async def _load_indexes(self) -> None:
        async with self._read() as db:
            rows = await db.execute_fetchall(sql.ALL_COLLECTIONS)
        by_id: dict[int, CollectionIndex] = {}
        for row in rows:
            index = self._new_index(collection_from_row(row))
            self._indexes[index.collection.name] = index
            by_id[index.collection.id] = index
        async with self._read() as db, db.execute(sql.ALL_EMBEDDINGS) as cursor:
            while batch := list(await cursor.fetchmany(4096)):
                for collection_id, mine in _by_collection(batch).items():
                    index = by_id[collection_id]
                    vectors = np.frombuffer(b"".join(r[2] for r in mine), dtype=np.float32)
                    index.add(
                        [r[0] for r in mine],
                        [r[3] for r in mine],
                        vectors.reshape(len(mine), index.collection.dimension),
                    )
        async with self._read() as db:
            terms = await db.execute_fetchall(sql.ALL_CHUNK_TERMS)
        for collection_id, mine in _by_collection(terms).items():
            # Seconds at 100k chunks: in a thread, so a reopen while serving (the database
            # came back) does not hold the event loop.
            by_id[collection_id].postings = await asyncio.to_thread(_build_postings, mine)
        for index in by_id.values():
            path = self._graph_path(index.collection.id)
            held = await asyncio.to_thread(index.vectors.restore, path)
            if held:
                log.info(
                    "took up the saved vector graph of %r (%d chunks)", index.collection.name, held
                )
            index.graph_start.poke(now=True)  # searches are exact meanwhile

    def _index(self, name: str) -> CollectionIndex:
        index = self._indexes.get(name)
        if index is None:
            raise no_such_collection(name)
        return index

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._writer is None:  # closed, or never opened: no reader will come back
            raise StoreUnavailableError("SQLite database is not open")
        self._waiting += 1
        try:
            db = await asyncio.wait_for(self._readers.get(), self._acquire_timeout)
        except TimeoutError:
            raise StoreBusyError("no SQLite reader became free in time") from None
        finally:
            self._waiting -= 1
        try:
            yield db
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"SQLite read failed: {exc}") from exc
        finally:
            self._readers.put_nowait(db)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._writer is None:
            raise StoreUnavailableError("SQLite database is not open")
        async with self._write_lock:
            db = self._writer
            try:
                await db.execute("BEGIN IMMEDIATE")
                yield db
                await db.commit()
            except BaseException as exc:
                await db.rollback()
                if isinstance(exc, sqlite3.Error):
                    raise StoreUnavailableError(f"SQLite write failed: {exc}") from exc
                raise

    # Collections ------------------------------------------------------------------------

    async def create_collection(self, spec: CollectionSpec) -> Collection:
        async with self._transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    sql.INSERT_COLLECTION,
                    (spec.name, spec.vectors.value, spec.dimension, spec.description),
                )
            )
            if not rows:
                raise AlreadyExistsError(f"a collection named {spec.name!r} exists")
        collection_id, created_at = rows[0]
        collection = Collection(
            int(collection_id),
            spec.name,
            spec.vectors,
            spec.dimension,
            spec.description,
            str(created_at),
        )
        self._indexes[spec.name] = self._new_index(collection)
        return collection

    async def describe_collection(self, name: str) -> Collection:
        return self._index(name).collection

    async def get_collection(self, name: str) -> Collection:
        self._index(name)
        async with self._read() as db, db.execute(sql.GET_COLLECTION, (name,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise no_such_collection(name)
        return collection_from_row(row)

    async def list_collections(self) -> list[Collection]:
        async with self._read() as db:
            return [
                collection_from_row(row) for row in await db.execute_fetchall(sql.LIST_COLLECTIONS)
            ]

    async def delete_collection(self, name: str) -> DeleteManyResult:
        check_deletable(name)
        index = self._index(name)
        async with self._transaction() as db:
            ids = [
                int(r[0])
                for r in await db.execute_fetchall(
                    sql.DOCUMENT_IDS_OF_COLLECTION, (index.collection.id,)
                )
            ]
            result, _ = await self._remove_documents(db, ids)
            await db.execute(sql.DELETE_COLLECTION, (index.collection.id,))
        del self._indexes[name]
        self._graph_path(index.collection.id).unlink(missing_ok=True)
        return result

    # Documents --------------------------------------------------------------------------

    async def content_hashes(
        self, paths: Sequence[str], *, collection: str = DEFAULT_COLLECTION
    ) -> dict[str, str]:
        collection_id = self._index(collection).collection.id
        async with self._read() as db:
            rows = await db.execute_fetchall(
                sql.GET_HASHES, (collection_id, json.dumps(list(paths)))
            )
        return {str(path): str(value) for path, value in rows}

    async def replace_documents(
        self, documents: Sequence[DocumentChunks], *, collection: str = DEFAULT_COLLECTION
    ) -> list[UpsertOutcome]:
        """Writes the whole batch in a few set-based statements: each statement is a hop
        to aiosqlite's thread and back, which cost more than the row writes themselves
        when made once or twice per document."""
        check_distinct_paths(documents)
        index = self._index(collection)
        paths = [item.document.path for item in documents]
        async with self._transaction() as db:
            stored = await self._stored_ids(db, index.collection.id, paths)
            removed = await self._remove_chunks(db, list(stored.values()))
            document_ids = await self._write_documents(db, index.collection.id, documents, stored)
            chunk_ids = await self._insert_chunks(db, documents, document_ids)
        # No await from the commit to here: the next writer sees these updates applied.
        index.generation += 1
        if removed:
            forget(index, removed)
        chunks = [chunk for item in documents for chunk in item.chunks]
        owners = [d for d, item in zip(document_ids, documents, strict=True) for _ in item.chunks]
        index.add(chunk_ids, owners, _stack(chunks, index.collection.dimension))
        for chunk_id, chunk in zip(chunk_ids, chunks, strict=True):
            index.postings.add(chunk_id, chunk.tokens)
        self._maintain_if_due(index)
        return [UpsertOutcome.REPLACED if p in stored else UpsertOutcome.CREATED for p in paths]

    async def _stored_ids(
        self, db: aiosqlite.Connection, collection_id: int, paths: Sequence[str]
    ) -> dict[str, int]:
        """The stored ids of those of `paths` the collection holds, by path."""
        rows = await db.execute_fetchall(
            sql.DOCUMENT_IDS_OF_PATHS, (collection_id, json.dumps(list(paths)))
        )
        return {str(path): int(document_id) for path, document_id in rows}

    async def _write_documents(
        self,
        db: aiosqlite.Connection,
        collection_id: int,
        documents: Sequence[DocumentChunks],
        stored: dict[str, int],
    ) -> list[int]:
        """Inserts the new documents and updates the stored ones under their ids; returns
        every document's id, in order."""
        rows = await db.execute_fetchall(sql.NEXT_DOCUMENT_ID)
        next_id = int(next(iter(rows))[0])
        ids: list[int] = []
        inserts, updates = [], []
        for item in documents:
            document = item.document
            metadata = metadata_json(document.metadata)
            known = stored.get(document.path)
            if known is None:
                known, next_id = next_id, next_id + 1
                inserts.append(
                    (
                        known,
                        collection_id,
                        document.path,
                        document.title,
                        document.source_url,
                        document.content_hash,
                        metadata,
                    )
                )
            else:
                updates.append(
                    (document.title, document.source_url, document.content_hash, metadata, known)
                )
            ids.append(known)
        if inserts:
            await db.executemany(sql.INSERT_DOCUMENT, inserts)
        if updates:
            await db.executemany(sql.UPDATE_DOCUMENT, updates)
        return ids

    async def _stored_id(
        self, db: aiosqlite.Connection, collection_id: int, path: str
    ) -> int | None:
        async with db.execute(sql.GET_DOCUMENT_ID, (collection_id, path)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else int(row[0])

    async def _remove_chunks(
        self, db: aiosqlite.Connection, document_ids: Sequence[int]
    ) -> dict[int, list[str]]:
        """Deletes the documents' chunks and returns their index terms by chunk id."""
        if not document_ids:
            return {}
        ids = json.dumps(list(document_ids))
        rows = await db.execute_fetchall(sql.CHUNK_TERMS_OF_DOCUMENTS, (ids,))
        await db.execute(sql.DELETE_CHUNKS_OF_DOCUMENTS, (ids,))
        return {int(r[0]): str(r[1]).split() for r in rows}

    async def _insert_chunks(
        self,
        db: aiosqlite.Connection,
        documents: Sequence[DocumentChunks],
        document_ids: Sequence[int],
    ) -> list[int]:
        """Inserts every document's chunks and their terms; returns the chunk ids, in order."""
        async with db.execute(sql.NEXT_CHUNK_ID) as cursor:
            row = await cursor.fetchone()
        chunk_id = int(row[0]) if row else 1
        ids: list[int] = []
        rows, terms = [], []
        for item, document_id in zip(documents, document_ids, strict=True):
            for ordinal, c in enumerate(item.chunks):
                rows.append(
                    (
                        chunk_id,
                        document_id,
                        item.document.path,
                        ordinal,
                        c.heading,
                        c.anchor,
                        c.text,
                        len(c.tokens),
                        _vector(c).tobytes(),
                    )
                )
                terms.append((chunk_id, " ".join(c.tokens)))
                ids.append(chunk_id)
                chunk_id += 1
        await db.executemany(sql.INSERT_CHUNK, rows)
        await db.executemany(sql.INSERT_CHUNK_TERMS, terms)
        return ids

    async def _remove_documents(
        self, db: aiosqlite.Connection, document_ids: Sequence[int]
    ) -> tuple[DeleteManyResult, dict[int, list[str]]]:
        """Deletes documents with their chunks and clicks; the removed chunks' terms are
        returned for the caller to forget once the transaction commits."""
        async with db.execute(sql.COUNT_CLICKS_OF_DOCUMENTS, (json.dumps(document_ids),)) as cur:
            clicks = int((await cur.fetchone() or (0,))[0])
        removed = await self._remove_chunks(db, document_ids)
        await db.execute(sql.DELETE_DOCUMENTS, (json.dumps(list(document_ids)),))
        return DeleteManyResult(len(document_ids), len(removed), clicks), removed

    async def delete_document(
        self, path: str, *, collection: str = DEFAULT_COLLECTION
    ) -> DeleteResult:
        index = self._index(collection)
        async with self._transaction() as db:
            document_id = await self._stored_id(db, index.collection.id, path)
            if document_id is None:
                raise NotFoundError(f"no document with path {path!r} in {collection!r}")
            result, removed = await self._remove_documents(db, [document_id])
        forget(index, removed)
        return DeleteResult(path, result.chunks_deleted, result.clicks_deleted)

    async def delete_documents(
        self, where: Filter | None, *, collection: str = DEFAULT_COLLECTION
    ) -> DeleteManyResult:
        index = self._index(collection)
        condition, params = compile_filter(where, metadata="d.metadata", path="d.path")
        async with self._transaction() as db:
            rows = await db.execute_fetchall(
                sql.MATCHING_DOCUMENT_IDS.format(where=condition),
                (index.collection.id, *params),
            )
            result, removed = await self._remove_documents(db, [int(r[0]) for r in rows])
        forget(index, removed)
        self._maintain_if_due(index)
        return result

    async def get_document(
        self, path: str, *, collection: str = DEFAULT_COLLECTION
    ) -> StoredDocument:
        collection_id = self._index(collection).collection.id
        async with (
            self._read() as db,
            db.execute(sql.GET_DOCUMENT, (collection_id, path)) as cursor,
        ):
            row = await cursor.fetchone()
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
        collection_id = self._index(collection).collection.id
        condition, params = compile_filter(where, metadata="d.metadata", path="d.path")
        query = sql.LIST_DOCUMENTS.format(columns=sql.DOCUMENT_COLUMNS, where=condition)
        async with self._read() as db:
            rows = await db.execute_fetchall(query, (collection_id, after, *params, limit))
        return [stored_document(collection, row) for row in rows]

    # Search -----------------------------------------------------------------------------

    async def _admitted(
        self, index: CollectionIndex, where: Filter | None
    ) -> npt.NDArray[np.int64] | None:
        """Ids of the collection's chunks that `where` admits (None: no filter); see
        `CollectionIndex` for how they are found and kept."""
        if where is None:
            return None
        key, generation = (index.collection.id, repr(where)), index.generation
        cached = self._admitted_ids.get(key)
        if cached is not None and cached[0] == generation:
            return cached[1]
        condition, params = compile_filter(where, metadata="d.metadata", path="d.path")
        async with self._read() as db:
            rows = await db.execute_fetchall(
                sql.MATCHING_DOCUMENT_IDS.format(where=condition), (index.collection.id, *params)
            )
        admitted = index.chunks_of(np.fromiter((r[0] for r in rows), dtype=np.int64))
        # Not kept if a write committed meanwhile, or if it alone would outgrow the cache.
        if generation == index.generation and admitted.nbytes < ADMITTED_CACHE_BYTES:
            self._admitted_ids[key] = (generation, admitted)
        return admitted

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
        index = self._index(collection)
        if not terms:
            return []
        only = await self._admitted(index, where)
        postings = index.postings
        found, exclude = postings.query(terms)
        return await top_chunks_off_loop(
            found,
            chunk_count=postings.chunk_count,
            token_count=postings.token_count,
            limit=limit,
            exclude=exclude,
            only=only,
        )

    async def chunks(self, ranked: Sequence[ScoredId]) -> list[StoredChunk]:
        if not ranked:
            return []
        async with self._read() as db:
            rows = await db.execute_fetchall(
                sql.CHUNKS_BY_IDS, (json.dumps([i for i, _ in ranked]),)
            )
        return ranked_chunks(ranked, rows)

    async def search_vector(
        self,
        vector: Vector,
        *,
        limit: int,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
    ) -> list[StoredChunk]:
        nearest = await self.rank_vector(vector, limit=limit, collection=collection, where=where)
        return await self.chunks(nearest)

    async def rank_vector(
        self,
        vector: Vector,
        *,
        limit: int,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
    ) -> list[ScoredId]:
        index = self._index(collection)
        only = await self._admitted(index, where)
        return await asyncio.to_thread(index.vectors.search, vector, limit=limit, only=only)

    # Clicks -----------------------------------------------------------------------------

    async def record_click(
        self, click: ClickRecord, *, judge: Callable[[ClickCounts], ClickOutcome]
    ) -> tuple[int, ClickOutcome]:
        event = click.event
        async with self._transaction() as db:
            async with db.execute(sql.DOCUMENT_OF_CHUNK, (event.chunk_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise NotFoundError(f"no chunk with id {event.chunk_id}")
            document_id = int(row[0])
            outcome = click.outcome
            if outcome is None:
                counts = {
                    "query_key": click.query_key,
                    "document": document_id,
                    "session": event.session_id,
                    "impression": click.impression,
                    "user": event.user_id,
                    "key": event.key_id,
                }
                async with db.execute(sql.COUNT_CLICKS, counts) as cursor:
                    duplicate, session, user, key = await cursor.fetchone() or (0, 0, 0, 0)
                outcome = judge(ClickCounts(bool(duplicate), int(session), int(user), int(key)))
            rows = await db.execute_fetchall(
                sql.INSERT_CLICK,
                (
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
                ),
            )
        return int(next(iter(rows))[0]), outcome

    async def create_api_key(self, key: ApiKey) -> None:
        async with self._transaction() as db:
            await db.execute(sql.INSERT_API_KEY, api_key_row(key))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        async with self._read() as db:
            rows = list(await db.execute_fetchall(sql.GET_API_KEY, (key_id,)))
        return api_key_from_row(rows[0]) if rows else None

    async def list_api_keys(self) -> list[ApiKey]:
        async with self._read() as db:
            rows = await db.execute_fetchall(sql.LIST_API_KEYS)
        return [api_key_from_row(r) for r in rows]

    async def revoke_api_key(self, key_id: str) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute(sql.REVOKE_API_KEY, (key_id,))
            return cursor.rowcount == 1

    async def has_clicks(self, query_key: str) -> bool:
        async with self._read() as db:
            [(found,)] = await db.execute_fetchall(sql.HAS_CLICKS, (query_key,))
        return bool(found)

    async def click_evidence(
        self, query_key: str, chunk_ids: Sequence[int], *, collection: str
    ) -> ClickEvidence:
        if not chunk_ids:
            return ClickEvidence(0, {})
        parameters = {
            "query_key": query_key,
            "collection": collection,
            "chunk_ids": json.dumps(list(chunk_ids)),
        }
        async with self._read() as db:
            rows = await db.execute_fetchall(sql.CLICK_EVIDENCE, parameters)
        return click_evidence_from_rows(rows)

    # Learned rankers ----------------------------------------------------------------------

    async def click_history(self, collection: str) -> list[ClickedQuery]:
        async with self._read() as db:
            rows = await db.execute_fetchall(sql.CLICK_HISTORY, (collection,))
        return clicked_queries_from_rows(rows)

    async def save_ranker(self, collection: str, model: str, *, live: bool) -> int:
        async with self._transaction() as db:
            found = list(await db.execute_fetchall(sql.COLLECTION_ID, (collection,)))
            if not found:
                raise no_such_collection(collection)
            collection_id = int(found[0][0])
            if live:
                await db.execute(sql.RETIRE_RANKERS, (collection_id,))
            parameters = {"collection": collection_id, "live": int(live), "model": model}
            [(version,)] = await db.execute_fetchall(sql.INSERT_RANKER, parameters)
        return int(version)

    async def live_rankers(self) -> dict[str, int]:
        async with self._read() as db:
            rows = await db.execute_fetchall(sql.LIVE_RANKERS)
        return {str(name): int(version) for name, version in rows}

    async def ranker_model(self, collection: str, version: int) -> str | None:
        async with self._read() as db:
            rows = list(await db.execute_fetchall(sql.RANKER_MODEL, (collection, version)))
        return str(rows[0][0]) if rows else None

    # Migration and health ---------------------------------------------------------------

    async def export_documents(self) -> AsyncIterator[tuple[str, Document, list[Chunk]]]:
        async with self._read() as db:
            documents = await db.execute_fetchall(sql.EXPORT_DOCUMENTS)
            for document_id, collection, path, title, source_url, digest, metadata in documents:
                rows = await db.execute_fetchall(sql.EXPORT_CHUNKS, (document_id,))
                chunks = [
                    Chunk(
                        heading,
                        anchor,
                        text,
                        chunk_tokens(title, heading, text),
                        np.frombuffer(blob, dtype=np.float32),
                    )
                    for heading, anchor, text, blob in rows
                ]
                document = Document(path, title, source_url, digest, metadata_from_json(metadata))
                yield str(collection), document, chunks

    async def export_clicks(self) -> AsyncIterator[StoredClick]:
        async with self._read() as db, db.execute(sql.EXPORT_CLICKS) as cursor:
            async for row in cursor:
                yield StoredClick(*row)

    async def import_clicks(self, clicks: Sequence[StoredClick]) -> int:
        async with self._transaction() as db:
            before = db.total_changes
            await db.executemany(
                sql.IMPORT_CLICK,
                [
                    {**asdict(c), "path": c.document_path, "ordinal": c.chunk_ordinal}
                    for c in clicks
                ],
            )
            return db.total_changes - before

    async def stats(self) -> StoreStats:
        async with self._read() as db, db.execute(sql.COUNTS) as cursor:
            documents, chunks, clicks = await cursor.fetchone() or (0, 0, 0)
        idle = self._readers.qsize()
        pool = PoolStats(
            size=self._reader_count,
            in_use=self._reader_count - idle,
            idle=idle,
            min_size=self._reader_count,
            max_size=self._reader_count,
            waiting=self._waiting,
        )
        return StoreStats(
            documents=documents,
            chunks=chunks,
            clicks=clicks,
            schema_version=SCHEMA_VERSION,
            embedding_dimension=self.dimension,
            pool=pool,
            fulltext_backlog=sum(i.postings.backlog_chunks for i in self._indexes.values()),
            vector_graph=self._graph_stats(),
        )

    def _graph_stats(self) -> VectorGraphStats:
        indexes = self._indexes.values()
        return VectorGraphStats(
            chunks=sum(len(i.vectors.graph or ()) for i in indexes),
            backlog=sum(i.vectors.backlog for i in indexes),
            building=sum(i.building for i in indexes),
        )

    async def ping(self) -> None:
        async with self._read() as db, db.execute("SELECT 1") as cursor:
            await cursor.fetchone()

    async def write_position(self) -> str:
        """One process on one file: every read sees every acknowledged write already."""
        return ""


def _build_postings(rows: Sequence[Any]) -> PostingIndex:
    return PostingIndex.build((int(r[0]), str(r[2]).split()) for r in rows)


def _by_collection(rows: Iterable[Sequence[Any]]) -> dict[int, list[Sequence[Any]]]:
    """Rows grouped by their second column, the collection id, in one pass."""
    grouped: dict[int, list[Sequence[Any]]] = {}
    for row in rows:
        grouped.setdefault(int(row[1]), []).append(row)
    return grouped


def _vector(chunk: Chunk) -> Vector:
    if chunk.embedding is None:
        raise ValueError("chunks reach storage with their embedding")
    return np.asarray(chunk.embedding, dtype=np.float32)


def _stack(chunks: Sequence[Chunk], dimension: int) -> Vector:
    if not chunks:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.stack([_vector(c) for c in chunks])
