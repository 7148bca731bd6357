"""SQLiteAdapter: the embedded backend (aiosqlite; BM25 and exact cosine in numpy).

One writer connection, serialised by a lock, and a few reader connections: WAL mode gives
readers a consistent snapshot, so a search never sees half of a document replace. The
vectors and the full-text postings are also held in memory (loaded at open, updated after
each commit), because ranking there is an order of magnitude faster than in SQL.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
import numpy as np

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
from . import _sqlite_sql as sql
from .base import SCHEMA_VERSION, check_distinct_paths, ranked_chunks
from .posting_index import PostingIndex
from .vector_matrix import VectorMatrix


def fts_match_expression(terms: Sequence[str]) -> str:
    """An FTS5 query that ORs the distinct terms (bm25() would count a repeated one twice),
    each quoted so no character is FTS5 syntax."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in dict.fromkeys(terms))


class SQLiteAdapter:
    backend = "sqlite"

    def __init__(
        self, path: Path, *, dimension: int, readers: int = 2, acquire_timeout: float = 5.0
    ) -> None:
        self.path = path
        self.dimension = dimension
        self._reader_count = readers
        self._acquire_timeout = acquire_timeout
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._write_lock = asyncio.Lock()
        self._matrix = VectorMatrix(dimension)
        self._postings = PostingIndex()
        self._waiting = 0

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = await self._connect()
            await self._writer.executescript(sql.SCHEMA)
            await self._check_meta(self._writer)
            await self._writer.commit()
            for _ in range(self._reader_count):
                self._readers.put_nowait(await self._connect())
            await self._load_matrix()
            await self._load_postings()
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise StoreUnavailableError(f"cannot open SQLite database {self.path}: {exc}") from exc

    async def close(self) -> None:
        while not self._readers.empty():
            await self._readers.get_nowait().close()
        if self._writer is not None:
            await self._writer.close()
            self._writer = None

    async def _connect(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(self.path)
        for pragma in sql.PRAGMAS:
            await connection.execute(pragma)
        return connection

    async def _check_meta(self, db: aiosqlite.Connection) -> None:
        stored = {}
        for key in ("schema_version", "embedding_dimension"):
            async with db.execute(sql.GET_META, (key,)) as cursor:
                row = await cursor.fetchone()
            stored[key] = int(row[0]) if row else None
        if stored["embedding_dimension"] not in (None, self.dimension):
            raise SchemaMismatchError(
                f"database {self.path} holds {stored['embedding_dimension']}-d embeddings, "
                f"the embedder makes {self.dimension}-d: use another SQLITE_PATH or re-index"
            )
        if (stored["schema_version"] or 0) > SCHEMA_VERSION:
            raise SchemaMismatchError(
                f"database schema {stored['schema_version']} is newer than this server's "
                f"({SCHEMA_VERSION}): upgrade DocFoundry"
            )
        await db.execute(sql.SET_META, ("schema_version", str(SCHEMA_VERSION)))
        await db.execute(sql.SET_META, ("embedding_dimension", str(self.dimension)))

    async def _load_matrix(self) -> None:
        async with self._read() as db, db.execute(sql.ALL_EMBEDDINGS) as cursor:
            while rows := list(await cursor.fetchmany(4096)):
                vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32)
                self._matrix.add(
                    [r[0] for r in rows], [r[1] for r in rows], vectors.reshape(len(rows), -1)
                )

    async def _load_postings(self) -> None:
        async with self._read() as db:
            rows = await db.execute_fetchall(sql.ALL_CHUNK_TERMS)
        self._postings = PostingIndex.build((int(r[0]), str(r[1]).split()) for r in rows)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
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

    async def content_hash(self, path: str) -> str | None:
        async with self._read() as db, db.execute(sql.GET_HASH, (path,)) as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else None

    async def replace_documents(self, documents: Sequence[DocumentChunks]) -> list[UpsertOutcome]:
        check_distinct_paths(documents)
        written: list[tuple[dict[int, list[str]] | None, list[int], DocumentChunks]] = []
        async with self._transaction() as db:
            for item in documents:
                document_id = await self._stored_id(db, item.document.path)
                old = None if document_id is None else await self._remove_chunks(db, document_id)
                document_id = await self._write_document(db, item.document, document_id)
                new_ids = await self._insert_chunks(db, document_id, item)
                written.append((old, new_ids, item))
        # No await from the commit to here: the next writer sees these updates applied.
        for old, new_ids, item in written:
            self._forget(old or {})
            self._matrix.add(
                new_ids, [item.document.path] * len(new_ids), _stack(item.chunks, self.dimension)
            )
            for chunk_id, chunk in zip(new_ids, item.chunks, strict=True):
                self._postings.add(chunk_id, chunk.tokens)
        self._postings.rebuild_if_due()
        created = (old is None for old, _, _ in written)
        return [UpsertOutcome.CREATED if new else UpsertOutcome.REPLACED for new in created]

    async def _write_document(
        self, db: aiosqlite.Connection, document: Document, document_id: int | None
    ) -> int:
        """Inserts the document, or updates it under its stored id; returns its id."""
        if document_id is None:
            rows = await db.execute_fetchall(
                sql.INSERT_DOCUMENT,
                (document.path, document.title, document.source_url, document.content_hash),
            )
            return int(next(iter(rows))[0])
        await db.execute(
            sql.UPDATE_DOCUMENT,
            (document.title, document.source_url, document.content_hash, document_id),
        )
        return document_id

    def _forget(self, removed: dict[int, list[str]]) -> None:
        self._matrix.remove(list(removed))
        for chunk_id, tokens in removed.items():
            self._postings.remove(chunk_id, tokens)

    async def _stored_id(self, db: aiosqlite.Connection, path: str) -> int | None:
        async with db.execute(sql.GET_DOCUMENT_ID, (path,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else int(row[0])

    async def _remove_chunks(
        self, db: aiosqlite.Connection, document_id: int
    ) -> dict[int, list[str]]:
        """Deletes the document's chunks and returns their index terms by chunk id."""
        rows = await db.execute_fetchall(sql.CHUNK_TERMS_OF_DOCUMENT, (document_id,))
        await db.execute(sql.DELETE_FTS_OF_DOCUMENT, (document_id,))
        await db.execute(sql.DELETE_CHUNKS_OF_DOCUMENT, (document_id,))
        return {int(r[0]): str(r[1]).split() for r in rows}

    async def _insert_chunks(
        self, db: aiosqlite.Connection, document_id: int, item: DocumentChunks
    ) -> list[int]:
        path, chunks = item.document.path, item.chunks
        async with db.execute(sql.NEXT_CHUNK_ID) as cursor:
            row = await cursor.fetchone()
        first_id = int(row[0]) if row else 1
        ids = list(range(first_id, first_id + len(chunks)))
        await db.executemany(
            sql.INSERT_CHUNK,
            [
                (
                    chunk_id,
                    document_id,
                    path,
                    ordinal,
                    c.heading,
                    c.anchor,
                    c.text,
                    len(c.tokens),
                    _vector(c).tobytes(),
                )
                for ordinal, (chunk_id, c) in enumerate(zip(ids, chunks, strict=True))
            ],
        )
        await db.executemany(
            sql.INSERT_FTS, [(i, " ".join(c.tokens)) for i, c in zip(ids, chunks, strict=True)]
        )
        return ids

    async def delete_document(self, path: str) -> DeleteResult:
        async with self._transaction() as db:
            document_id = await self._stored_id(db, path)
            if document_id is None:
                raise NotFoundError(f"no document with path {path!r}")
            async with db.execute(sql.COUNT_CLICKS_OF_DOCUMENT, (document_id,)) as cursor:
                clicks = int((await cursor.fetchone() or (0,))[0])
            removed = await self._remove_chunks(db, document_id)
            await db.execute(sql.DELETE_DOCUMENT, (document_id,))
        self._forget(removed)
        return DeleteResult(path, chunks_deleted=len(removed), clicks_deleted=clicks)

    async def search_fulltext(
        self, terms: Sequence[str], *, limit: int, path_prefix: str = ""
    ) -> list[StoredChunk]:
        if not terms:
            return []
        if not path_prefix:
            return await self.chunks(self._postings.search(terms, limit))
        params = {"match": fts_match_expression(terms), "prefix": path_prefix, "limit": limit}
        async with self._read() as db:
            rows = await db.execute_fetchall(sql.SEARCH_FULLTEXT_PREFIX, params)
        return [StoredChunk(*row) for row in rows]

    async def rank_fulltext(
        self, terms: Sequence[str], *, limit: int, path_prefix: str = ""
    ) -> list[ScoredId]:
        if not terms:
            return []
        if path_prefix:
            found = await self.search_fulltext(terms, limit=limit, path_prefix=path_prefix)
            return [(c.chunk_id, c.score) for c in found]
        return self._postings.search(terms, limit)

    async def chunks(self, ranked: Sequence[ScoredId]) -> list[StoredChunk]:
        if not ranked:
            return []
        async with self._read() as db:
            rows = await db.execute_fetchall(
                sql.CHUNKS_BY_IDS, (json.dumps([i for i, _ in ranked]),)
            )
        return ranked_chunks(ranked, rows)

    async def search_vector(
        self, vector: Vector, *, limit: int, path_prefix: str = ""
    ) -> list[StoredChunk]:
        nearest = await self.rank_vector(vector, limit=limit, path_prefix=path_prefix)
        return await self.chunks(nearest)

    async def rank_vector(
        self, vector: Vector, *, limit: int, path_prefix: str = ""
    ) -> list[ScoredId]:
        return await asyncio.to_thread(
            self._matrix.search, vector, limit=limit, path_prefix=path_prefix
        )

    async def record_click(self, click: ClickEvent, *, query_key: str) -> int:
        async with self._transaction() as db:
            async with db.execute(sql.DOCUMENT_OF_CHUNK, (click.chunk_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise NotFoundError(f"no chunk with id {click.chunk_id}")
            rows = await db.execute_fetchall(
                sql.INSERT_CLICK,
                (
                    click.query,
                    query_key,
                    click.chunk_id,
                    row[0],
                    click.position,
                    click.session_id,
                    click.user_id,
                    click.dwell_time,
                ),
            )
        return int(next(iter(rows))[0])

    async def has_clicks(self, query_key: str) -> bool:
        async with self._read() as db:
            [(found,)] = await db.execute_fetchall(sql.HAS_CLICKS, (query_key,))
        return bool(found)

    async def document_clicks(
        self, query_key: str, chunk_ids: Sequence[int]
    ) -> dict[int, DocumentClicks]:
        if not chunk_ids:
            return {}
        async with self._read() as db:
            rows = await db.execute_fetchall(
                sql.DOCUMENT_CLICKS, (query_key, json.dumps(list(chunk_ids)))
            )
        return {int(r[0]): DocumentClicks(int(r[1]), int(r[2])) for r in rows}

    async def export_documents(self) -> AsyncIterator[tuple[Document, list[Chunk]]]:
        async with self._read() as db:
            documents = await db.execute_fetchall(sql.EXPORT_DOCUMENTS)
            for document_id, path, title, source_url, digest in documents:
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
                yield Document(path, title, source_url, digest), chunks

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
                    {
                        "id": c.id,
                        "query": c.query,
                        "query_key": c.query_key,
                        "ordinal": c.chunk_ordinal,
                        "position": c.position,
                        "session_id": c.session_id,
                        "user_id": c.user_id,
                        "dwell_time": c.dwell_time,
                        "created_at": c.created_at,
                        "path": c.document_path,
                    }
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
            fulltext_backlog=self._postings.backlog_chunks,
        )

    async def ping(self) -> None:
        async with self._read() as db, db.execute("SELECT 1") as cursor:
            await cursor.fetchone()


def _vector(chunk: Chunk) -> Vector:
    if chunk.embedding is None:
        raise ValueError("chunks reach storage with their embedding")
    return np.asarray(chunk.embedding, dtype=np.float32)


def _stack(chunks: Sequence[Chunk], dimension: int) -> Vector:
    if not chunks:
        return np.zeros((0, dimension), dtype=np.float32)
    return np.stack([_vector(c) for c in chunks])
