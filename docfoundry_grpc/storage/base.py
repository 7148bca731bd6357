"""The storage contract. Every adapter passes the same contract suite (tests/test_storage.py).

Adapters translate their driver's errors into `errors.StoreUnavailableError` /
`StoreBusyError`; nothing above this layer sees a driver exception or writes SQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from ..errors import InvalidArgumentError, NotFoundError
from ..filters import Filter
from ..models import (
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
    Metadata,
    MetadataValue,
    Scope,
    ScoredId,
    StoredChunk,
    StoredClick,
    StoredDocument,
    StoreStats,
    UpsertOutcome,
    Vector,
    VectorSource,
)

SCHEMA_VERSION = 5

# Every method that touches documents takes the collection's name (default: "default") and
# raises NotFoundError for a collection that does not exist. Filters (`where`) follow the
# semantics in `..filters`; None matches everything.


class StorageAdapter(Protocol):
    backend: str

    async def open(self) -> None:
        """Connects and creates or upgrades the schema (idempotent), with the `default`
        collection for the server's model.

        Raises SchemaMismatchError if the default collection holds vectors of another
        dimension than the model's, or the schema is newer than this code.
        """

    async def close(self) -> None:
        """Releases connections; safe to call twice."""

    async def create_collection(self, spec: CollectionSpec) -> Collection:
        """Creates an empty collection (with its own vector index where the backend has one).
        Raises AlreadyExistsError if the name is taken."""

    async def describe_collection(self, name: str) -> Collection:
        """The collection's id and settings without counts: cheap enough for every search
        (an adapter may keep them a few seconds; ids are never reused)."""

    async def get_collection(self, name: str) -> Collection:
        """The collection with its document and chunk counts."""

    async def list_collections(self) -> list[Collection]:
        """Every collection, by name, with counts."""

    async def delete_collection(self, name: str) -> DeleteManyResult:
        """Removes the collection with every document, chunk and click it held. The default
        collection cannot be deleted (InvalidArgumentError)."""

    async def content_hashes(
        self, paths: Sequence[str], *, collection: str = DEFAULT_COLLECTION
    ) -> dict[str, str]:
        """The stored content hash of each document at one of `paths` (absent ones are left
        out). One read for a whole batch: ingest asks it of every batch it receives."""

    async def replace_documents(
        self, documents: Sequence[DocumentChunks], *, collection: str = DEFAULT_COLLECTION
    ) -> list[UpsertOutcome]:
        """Stores each document (with its metadata) and swaps in its chunks (each with tokens
        and an embedding of the collection's dimension), all in one transaction: readers see
        the batch's old chunks or its new ones, never a mix. One transaction per batch, not
        per document, is what makes bulk loads fast. Paths must be distinct (see
        `check_distinct_paths`). Outcomes are in input order.

        Clicks on a document survive a replace (their chunk reference is cleared).
        """

    async def delete_document(
        self, path: str, *, collection: str = DEFAULT_COLLECTION
    ) -> DeleteResult:
        """Removes the document, its chunks and its clicks. Raises NotFoundError."""

    async def delete_documents(
        self, where: Filter | None, *, collection: str = DEFAULT_COLLECTION
    ) -> DeleteManyResult:
        """Removes every document matching `where`, in one transaction."""

    async def get_document(
        self, path: str, *, collection: str = DEFAULT_COLLECTION
    ) -> StoredDocument:
        """The stored document. Raises NotFoundError."""

    async def list_documents(
        self,
        *,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
        after: str = "",
        limit: int,
    ) -> list[StoredDocument]:
        """Up to `limit` documents matching `where` with paths after `after`, by path: a
        page of a listing that the next call continues from its last path."""

    async def search_fulltext(
        self,
        terms: Sequence[str],
        *,
        limit: int,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
    ) -> list[StoredChunk]:
        """Chunks matching any of `terms` (already analysed), best BM25 first.

        The score is BM25 with FTS5's formula: idf = ln((N - n + 0.5) / (n + 0.5)), floored
        at 1e-6; k1 = 1.2, b = 0.75; document length = number of index terms of the chunk.
        N, n and the average length are the collection's, whatever the filter: a filter
        narrows what is returned, not how it is scored.
        """

    async def search_vector(
        self,
        vector: Vector,
        *,
        limit: int,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
    ) -> list[StoredChunk]:
        """Nearest chunks by cosine similarity (the score), most similar first: `limit` of
        them whenever that many match `where`, however selective it is."""

    async def rank_fulltext(
        self,
        terms: Sequence[str],
        *,
        limit: int,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
    ) -> list[ScoredId]:
        """`search_fulltext`'s ranking without reading the rows: hybrid search fuses a
        wide window of both legs but shows only a few of them."""

    async def rank_vector(
        self,
        vector: Vector,
        *,
        limit: int,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
    ) -> list[ScoredId]:
        """`search_vector`'s ranking without reading the rows."""

    async def chunks(self, ranked: Sequence[ScoredId]) -> list[StoredChunk]:
        """The rows of ranked chunk ids, in that order, each with its given score; a chunk
        deleted since it was ranked is left out."""

    async def record_click(
        self, click: ClickRecord, *, judge: Callable[[ClickCounts], ClickOutcome]
    ) -> tuple[int, ClickOutcome]:
        """Stores a click with its outcome and returns its id and outcome. A click whose
        `outcome` is None is judged by `judge`, from the counted clicks already stored for
        its query, in the same transaction as the insert: concurrent clicks cannot both
        slip under a cap. Raises NotFoundError for an unknown chunk."""

    async def has_clicks(self, query_key: str) -> bool:
        """Whether any counted click is recorded for `query_key`. Needs no candidates, so
        Hybrid asks while its rankings run and skips `click_evidence`, a round trip after
        them, for the queries nobody has clicked on."""

    async def click_evidence(
        self, query_key: str, chunk_ids: Sequence[int], *, collection: str
    ) -> ClickEvidence:
        """The counted clicks of `query_key` in `collection`: the number of distinct
        sources, and for each of `chunk_ids` whose document was clicked, the summed weight
        of each source that clicked it."""

    async def click_history(self, collection: str) -> list[ClickedQuery]:
        """Every query with counted clicks in `collection`, with its votes (for training
        the learned ranker)."""

    async def save_ranker(self, collection: str, model: str, *, live: bool) -> int:
        """Stores a trained ranker as the collection's next version and returns it; a live
        one retires the live one before it. Raises NotFoundError for an unknown collection."""

    async def live_rankers(self) -> dict[str, int]:
        """The live ranker version of each collection that has one."""

    async def ranker_model(self, collection: str, version: int) -> str | None:
        """A stored ranker version, as `save_ranker` got it; None if there is none."""

    def export_documents(self) -> AsyncIterator[tuple[str, Document, list[Chunk]]]:
        """Every document with its collection's name and its chunks in order, embeddings
        included (for migrations)."""

    def export_clicks(self) -> AsyncIterator[StoredClick]:
        """Every click, oldest first (for migrations)."""

    async def import_clicks(self, clicks: Sequence[StoredClick]) -> int:
        """Inserts clicks under their own ids, skipping ids already present; clicks whose
        document is absent are skipped too. Returns how many were inserted."""

    async def create_api_key(self, key: ApiKey) -> None:
        """Stores a new key (its secret's hash, never the secret)."""

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not; None if there is none."""

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""

    async def revoke_api_key(self, key_id: str) -> bool:
        """Marks a key revoked; False if there is no such key or it was revoked already."""

    async def stats(self) -> StoreStats:
        """Counts for health and metrics."""

    async def ping(self) -> None:
        """One round trip to the database; raises StoreUnavailableError if it fails."""

    async def write_position(self) -> str:
        """A consistency token covering every write acknowledged so far: a read that
        carries it sees them (see `consistency`); "" where every read already does."""


def no_such_collection(name: str) -> NotFoundError:
    return NotFoundError(f"no collection named {name!r}")


def check_deletable(name: str) -> None:
    if name == DEFAULT_COLLECTION:
        raise InvalidArgumentError(
            "the default collection cannot be deleted; delete its documents instead",
            field="name",
        )


def default_collection_spec(dimension: int) -> CollectionSpec:
    return CollectionSpec(DEFAULT_COLLECTION, VectorSource.MODEL, dimension)


def collection_from_row(row: Sequence[Any]) -> Collection:
    """A collection from its columns (id, name, vectors, dimension, description, created
    at), with its document and chunk counts when the row carries them. A creation time
    read as a datetime is written 'YYYY-MM-DD HH:MM:SS' (UTC), as SQLite stores it."""
    collection_id, name, vectors, dimension, description, created_at = row[:6]
    documents, chunks = (int(row[6]), int(row[7] or 0)) if len(row) > 6 else (0, 0)
    if isinstance(created_at, datetime):
        created_at = created_at.strftime("%Y-%m-%d %H:%M:%S")
    return Collection(
        int(collection_id),
        str(name),
        VectorSource(vectors),
        int(dimension),
        str(description),
        str(created_at),
        documents,
        chunks,
    )


def stored_document(collection: str, row: Sequence[Any]) -> StoredDocument:
    """A document from the columns path, title, source URL, hash, metadata JSON, chunk
    count and update time."""
    path, title, source_url, digest, metadata, chunks, updated_at = row
    return StoredDocument(
        collection,
        path,
        title,
        source_url,
        digest,
        metadata_from_json(metadata),
        int(chunks),
        str(updated_at),
    )


def metadata_json(metadata: Metadata) -> str:
    """The stored form of metadata: JSON with sorted keys (lists as arrays)."""
    return json.dumps(
        {k: list(v) if isinstance(v, tuple) else v for k, v in metadata.items()},
        sort_keys=True,
        ensure_ascii=False,
    )


def metadata_from_json(text: str | None) -> dict[str, MetadataValue]:
    if not text:
        return {}
    loaded: dict[str, Any] = json.loads(text)
    return {
        k: tuple(v) if isinstance(v, list) else (float(v) if _is_number(v) else v)
        for k, v in loaded.items()
    }


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_distinct_paths(documents: Sequence[DocumentChunks]) -> None:
    """A batch names each path once: two versions of one document in one transaction
    would leave it unclear which one a reader should see."""
    paths = [d.document.path for d in documents]
    if len(set(paths)) != len(paths):
        raise ValueError("a batch of documents names a path twice")


def ranked_chunks(ranked: Sequence[ScoredId], rows: Iterable[Sequence[Any]]) -> list[StoredChunk]:
    """Chunks for (chunk id, score) pairs ranked outside SQL, in that order, from rows of the
    hit columns (chunk id, document id, path, title, source URL, heading, anchor, text,
    metadata JSON). A chunk deleted since it was ranked has no row and is left out, not
    shown half-gone."""
    by_id = {row[0]: row for row in rows}
    return [stored_chunk(by_id[i], score) for i, score in ranked if i in by_id]


def stored_chunk(row: Sequence[Any], score: float) -> StoredChunk:
    chunk_id, document_id, path, title, source_url, heading, anchor, text, metadata = row[:9]
    return StoredChunk(
        chunk_id,
        document_id,
        path,
        title,
        source_url,
        heading,
        anchor,
        text,
        score,
        metadata_from_json(metadata),
    )


def api_key_from_row(row: Sequence[Any]) -> ApiKey:
    key_id, name, secret_hash, scopes, collections, created_at, revoked_at = row
    return ApiKey(
        key_id=key_id,
        name=name,
        secret_hash=secret_hash,
        scopes=frozenset(Scope(s) for s in scopes.split()),
        collections=tuple(collections.split()),
        created_at=str(created_at),
        revoked_at=str(revoked_at or ""),
    )


def api_key_row(key: ApiKey) -> tuple[str, str, str, str, str]:
    """The stored columns: scopes and collections as space-separated words (neither can
    contain a space)."""
    scopes = " ".join(sorted(s.value for s in key.scopes))
    return key.key_id, key.name, key.secret_hash, scopes, " ".join(key.collections)


def click_evidence_from_rows(rows: Iterable[Sequence[Any]]) -> ClickEvidence:
    """ClickEvidence from CLICK_EVIDENCE rows: (sources, chunk id, its document, the counted
    clicks on the chunk itself, one source's vote)."""
    sources = 0
    votes: dict[int, list[float]] = {}
    documents: dict[int, int] = {}
    own: dict[int, int] = {}
    for count, chunk_id, document_id, own_clicks, vote in rows:
        sources = int(count)
        votes.setdefault(int(chunk_id), []).append(float(vote))
        documents[int(chunk_id)] = int(document_id)
        own[int(chunk_id)] = int(own_clicks)
    return ClickEvidence(sources, votes, documents, own)


def clicked_queries_from_rows(rows: Iterable[Sequence[Any]]) -> list[ClickedQuery]:
    """ClickedQuery per query from CLICK_HISTORY rows: (query key, first click id, source,
    document id, vote, that click's query), in an order that does not depend on the
    database's collation: by key, sources and documents sorted, the text of the query's
    first click."""
    first: dict[str, tuple[int, str]] = {}
    sources: dict[str, set[str]] = {}
    votes: dict[str, dict[int, list[float]]] = {}
    ordered = sorted(rows, key=lambda r: (str(r[0]), str(r[2]), int(r[3])))
    for raw_key, click_id, source, document_id, vote, query in ordered:
        key = str(raw_key)
        if key not in first or int(click_id) < first[key][0]:
            first[key] = (int(click_id), str(query))
        sources.setdefault(key, set()).add(str(source))
        votes.setdefault(key, {}).setdefault(int(document_id), []).append(float(vote))
    return [
        ClickedQuery(key, first[key][1], len(sources[key]), votes[key]) for key in sorted(first)
    ]
