"""A StorageAdapter wrapper that times every operation and counts failures by kind."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from ..metrics import ServiceMetrics
from ..models import (
    Chunk,
    ClickEvent,
    DeleteResult,
    Document,
    DocumentChunks,
    DocumentClicks,
    ScoredId,
    StoredChunk,
    StoredClick,
    StoreStats,
    UpsertOutcome,
    Vector,
)
from .base import StorageAdapter


class InstrumentedStore:
    def __init__(self, inner: StorageAdapter, metrics: ServiceMetrics) -> None:
        self.inner = inner
        self.backend = inner.backend
        self._metrics = metrics

    @asynccontextmanager
    async def _timed(self, operation: str) -> AsyncIterator[None]:
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self._metrics.storage_errors.labels(operation, self.backend, type(exc).__name__).inc()
            raise
        finally:
            self._metrics.storage_duration.labels(operation, self.backend).observe(
                time.perf_counter() - started
            )

    async def open(self) -> None:
        async with self._timed("open"):
            await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def content_hash(self, path: str) -> str | None:
        async with self._timed("content_hash"):
            return await self.inner.content_hash(path)

    async def replace_documents(self, documents: Sequence[DocumentChunks]) -> list[UpsertOutcome]:
        async with self._timed("upsert"):
            return await self.inner.replace_documents(documents)

    async def delete_document(self, path: str) -> DeleteResult:
        async with self._timed("delete"):
            return await self.inner.delete_document(path)

    async def search_fulltext(
        self, terms: Sequence[str], *, limit: int, path_prefix: str = ""
    ) -> list[StoredChunk]:
        async with self._timed("fulltext"):
            return await self.inner.search_fulltext(terms, limit=limit, path_prefix=path_prefix)

    async def search_vector(
        self, vector: Vector, *, limit: int, path_prefix: str = ""
    ) -> list[StoredChunk]:
        async with self._timed("semantic"):
            return await self.inner.search_vector(vector, limit=limit, path_prefix=path_prefix)

    async def rank_fulltext(
        self, terms: Sequence[str], *, limit: int, path_prefix: str = ""
    ) -> list[ScoredId]:
        async with self._timed("fulltext_rank"):
            return await self.inner.rank_fulltext(terms, limit=limit, path_prefix=path_prefix)

    async def rank_vector(
        self, vector: Vector, *, limit: int, path_prefix: str = ""
    ) -> list[ScoredId]:
        async with self._timed("semantic_rank"):
            return await self.inner.rank_vector(vector, limit=limit, path_prefix=path_prefix)

    async def chunks(self, ranked: Sequence[ScoredId]) -> list[StoredChunk]:
        async with self._timed("chunks"):
            return await self.inner.chunks(ranked)

    async def record_click(self, click: ClickEvent, *, query_key: str) -> int:
        async with self._timed("click"):
            return await self.inner.record_click(click, query_key=query_key)

    async def has_clicks(self, query_key: str) -> bool:
        async with self._timed("has_clicks"):
            return await self.inner.has_clicks(query_key)

    async def document_clicks(
        self, query_key: str, chunk_ids: Sequence[int]
    ) -> dict[int, DocumentClicks]:
        async with self._timed("document_clicks"):
            return await self.inner.document_clicks(query_key, chunk_ids)

    def export_documents(self) -> AsyncIterator[tuple[Document, list[Chunk]]]:
        return self.inner.export_documents()

    def export_clicks(self) -> AsyncIterator[StoredClick]:
        return self.inner.export_clicks()

    async def import_clicks(self, clicks: Sequence[StoredClick]) -> int:
        async with self._timed("import_clicks"):
            return await self.inner.import_clicks(clicks)

    async def stats(self) -> StoreStats:
        async with self._timed("stats"):
            return await self.inner.stats()

    async def ping(self) -> None:
        async with self._timed("ping"):
            await self.inner.ping()
