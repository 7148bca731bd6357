"""The storage contract. Every adapter passes the same contract suite (tests/test_storage.py).

Adapters translate their driver's errors into `errors.StoreUnavailableError` /
`StoreBusyError`; nothing above this layer sees a driver exception or writes SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Protocol

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

SCHEMA_VERSION = 1


class StorageAdapter(Protocol):
    backend: str

    async def open(self) -> None:
        """Connects and creates or upgrades the schema (idempotent).

        Raises SchemaMismatchError if the database holds vectors of another dimension.
        """

    async def close(self) -> None:
        """Releases connections; safe to call twice."""

    async def content_hash(self, path: str) -> str | None:
        """The stored content hash of the document at `path`, or None if absent."""

    async def replace_documents(self, documents: Sequence[DocumentChunks]) -> list[UpsertOutcome]:
        """Stores each document and swaps in its chunks (each with tokens and an embedding),
        all in one transaction: readers see the batch's old chunks or its new ones, never a
        mix. One transaction per batch, not per document, is what makes bulk loads fast.
        Paths must be distinct (see `check_distinct_paths`). Outcomes are in input order.

        Clicks on a document survive a replace (their chunk reference is cleared).
        """

    async def delete_document(self, path: str) -> DeleteResult:
        """Removes the document, its chunks and its clicks. Raises NotFoundError."""

    async def search_fulltext(
        self, terms: Sequence[str], *, limit: int, path_prefix: str = ""
    ) -> list[StoredChunk]:
        """Chunks matching any of `terms` (already analysed), best BM25 first.

        The score is BM25 with FTS5's formula: idf = ln((N - n + 0.5) / (n + 0.5)), floored
        at 1e-6; k1 = 1.2, b = 0.75; document length = number of index terms of the chunk.
        """

    async def search_vector(
        self, vector: Vector, *, limit: int, path_prefix: str = ""
    ) -> list[StoredChunk]:
        """Nearest chunks by cosine similarity (the score), most similar first."""

    async def rank_fulltext(
        self, terms: Sequence[str], *, limit: int, path_prefix: str = ""
    ) -> list[ScoredId]:
        """`search_fulltext`'s ranking without reading the rows: hybrid search fuses a
        wide window of both legs but shows only a few of them."""

    async def rank_vector(
        self, vector: Vector, *, limit: int, path_prefix: str = ""
    ) -> list[ScoredId]:
        """`search_vector`'s ranking without reading the rows."""

    async def chunks(self, ranked: Sequence[ScoredId]) -> list[StoredChunk]:
        """The rows of ranked chunk ids, in that order, each with its given score; a chunk
        deleted since it was ranked is left out."""

    async def record_click(self, click: ClickEvent, *, query_key: str) -> int:
        """Stores a click and returns its id. Raises NotFoundError for an unknown chunk."""

    async def has_clicks(self, query_key: str) -> bool:
        """Whether any click is recorded for `query_key`. Needs no candidates, so Hybrid
        asks while its rankings run and skips `document_clicks`, a round trip after them,
        for the queries nobody has clicked on."""

    async def document_clicks(
        self, query_key: str, chunk_ids: Sequence[int]
    ) -> dict[int, DocumentClicks]:
        """For each of `chunk_ids` whose document has clicks recorded for `query_key`: that
        document and its click count (absent means no clicks)."""

    def export_documents(self) -> AsyncIterator[tuple[Document, list[Chunk]]]:
        """Every document with its chunks in order, embeddings included (for migrations)."""

    def export_clicks(self) -> AsyncIterator[StoredClick]:
        """Every click, oldest first (for migrations)."""

    async def import_clicks(self, clicks: Sequence[StoredClick]) -> int:
        """Inserts clicks under their own ids, skipping ids already present; clicks whose
        document is absent are skipped too. Returns how many were inserted."""

    async def stats(self) -> StoreStats:
        """Counts for health and metrics."""

    async def ping(self) -> None:
        """One round trip to the database; raises StoreUnavailableError if it fails."""


def check_distinct_paths(documents: Sequence[DocumentChunks]) -> None:
    """A batch names each path once: two versions of one document in one transaction
    would leave it unclear which one a reader should see."""
    paths = [d.document.path for d in documents]
    if len(set(paths)) != len(paths):
        raise ValueError("a batch of documents names a path twice")


def ranked_chunks(ranked: Sequence[ScoredId], rows: Iterable[Sequence[Any]]) -> list[StoredChunk]:
    """Chunks for (chunk id, score) pairs ranked outside SQL, in that order, from rows of the
    hit columns (chunk id, document id, path, title, source URL, heading, anchor, text).
    A chunk deleted since it was ranked has no row and is left out, not shown half-gone."""
    by_id = {row[0]: row for row in rows}
    return [_with_score(by_id[i], score) for i, score in ranked if i in by_id]


def _with_score(row: Sequence[Any], score: float) -> StoredChunk:
    chunk_id, document_id, path, title, source_url, heading, anchor, text = row[:8]
    return StoredChunk(chunk_id, document_id, path, title, source_url, heading, anchor, text, score)
