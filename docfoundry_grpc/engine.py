"""SearchEngine: embed → retrieve → fuse → feedback. Knows nothing of gRPC or SQL."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from . import __version__
from .config import SearchConfig
from .embedding import Embedder
from .errors import DocFoundryError
from .ingest import DocumentInput, DocumentPreparer, check_document, content_hash
from .models import (
    ClickEvent,
    DeleteResult,
    DocumentChunks,
    DocumentClicks,
    Hit,
    LegResult,
    ScoredId,
    StoredChunk,
    StoreStats,
    UpsertOutcome,
    UpsertResult,
    Vector,
)
from .ranking import FusionParams, fuse
from .snippets import snippet
from .storage.base import StorageAdapter
from .text import query_terms
from .validation import SearchQuery, check_document_path

QUERY_CACHE_SIZE = 2048


@dataclass(frozen=True)
class HealthReport:
    serving: bool
    detail: str
    backend: str
    stats: StoreStats | None
    roundtrip_ms: float
    embedding_model: str
    embedding_dimension: int
    version: str = __version__


class _QueryVectorCache:
    """LRU of query embeddings: repeated queries skip the model (the slowest step)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, Vector] = OrderedDict()

    def get(self, text: str) -> Vector | None:
        vector = self._entries.get(text)
        if vector is not None:
            self._entries.move_to_end(text)
        return vector

    def put(self, text: str, vector: Vector) -> None:
        self._entries[text] = vector
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


SearchTimer = Callable[[str], AbstractContextManager[object]]


class SearchEngine:
    """`timer(mode)` wraps each search, end to end, so metrics can see it per mode."""

    def __init__(
        self,
        store: StorageAdapter,
        embedder: Embedder,
        config: SearchConfig,
        *,
        timer: SearchTimer = lambda mode: nullcontext(),
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config
        self.timer = timer
        # One thread for query embeddings, another for ingest batches: the model has its
        # own threads (EMBEDDING_THREADS), so running calls side by side only
        # oversubscribes the CPU, and a long ingest batch never queues a query.
        self._query_model = ThreadPoolExecutor(1, thread_name_prefix="embed-query")
        self._ingest_model = ThreadPoolExecutor(1, thread_name_prefix="embed-ingest")
        self.preparer = DocumentPreparer(
            embedder, max_chars=config.chunk_max_chars, executor=self._ingest_model
        )
        self._query_vectors = _QueryVectorCache(QUERY_CACHE_SIZE)

    def close(self) -> None:
        self._query_model.shutdown(wait=False, cancel_futures=True)
        self._ingest_model.shutdown(wait=False, cancel_futures=True)

    # Search -----------------------------------------------------------------------------

    async def fulltext(self, query: SearchQuery) -> list[Hit]:
        with self.timer("fulltext"):
            terms = query_terms(query.q)
            found = await self.store.search_fulltext(
                terms, limit=query.k, path_prefix=query.path_prefix
            )
            return [self._hit(c, c.score, terms) for c in found]

    async def semantic(self, query: SearchQuery) -> list[Hit]:
        with self.timer("semantic"):
            vector = await self._query_vector(query)
            if vector is None:
                return []
            found = await self.store.search_vector(
                vector, limit=query.k, path_prefix=query.path_prefix
            )
            terms = query_terms(query.q)
            return [self._hit(c, c.score, terms) for c in found if _similar_enough(c.score, query)]

    async def hybrid(self, query: SearchQuery) -> list[Hit]:
        with self.timer("hybrid"):
            return await self._hybrid(query)

    async def _hybrid(self, query: SearchQuery) -> list[Hit]:
        """Both legs rank a window of chunk ids side by side, while the store says whether
        the query has clicks at all; rows are read only for the `k` fused results, not for
        the whole window."""
        window = max(self.config.candidate_window, 2 * query.k)
        terms = query_terms(query.q)
        fulltext, semantic, clicked = await asyncio.gather(
            self.store.rank_fulltext(terms, limit=window, path_prefix=query.path_prefix),
            self._semantic_ranking(query, limit=window),
            self._has_clicks(terms),
        )
        clicks: dict[int, DocumentClicks] = {}
        if clicked:
            clicks = await self.store.document_clicks(
                query_key(terms), sorted({i for i, _ in (*fulltext, *semantic)})
            )
        params = FusionParams(
            method=query.fusion or self.config.fusion,
            rrf_k=query.rrf_k,
            fulltext_weight=query.fulltext_weight,
            semantic_weight=query.semantic_weight,
            click_weight=self.config.click_weight,
        )
        fused = fuse(fulltext, semantic, params, clicks=clicks, limit=query.k)
        chunks = await self.store.chunks([(f.chunk_id, f.score) for f in fused])
        legs = {f.chunk_id: f for f in fused}
        return [
            self._hit(
                c,
                c.score,
                terms,
                fulltext=legs[c.chunk_id].fulltext,
                semantic=legs[c.chunk_id].semantic,
            )
            for c in chunks
        ]

    async def _semantic_ranking(self, query: SearchQuery, *, limit: int) -> list[ScoredId]:
        vector = await self._query_vector(query)
        if vector is None:
            return []
        found = await self.store.rank_vector(vector, limit=limit, path_prefix=query.path_prefix)
        return [(i, score) for i, score in found if _similar_enough(score, query)]

    async def _query_vector(self, query: SearchQuery) -> Vector | None:
        return query.vector if query.vector is not None else await self.embed_query(query.q)

    async def embed_query(self, text: str) -> Vector | None:
        """The query's embedding (cached), or None for text with nothing to embed."""
        key = " ".join(text.split())
        if not key:
            return None
        vector = self._query_vectors.get(key)
        if vector is None:
            loop = asyncio.get_running_loop()
            vector = (await loop.run_in_executor(self._query_model, self.embedder.embed, [key]))[0]
            self._query_vectors.put(key, vector)
        return vector

    async def _has_clicks(self, terms: Sequence[str]) -> bool:
        """False without asking when clicks cannot count: no terms to group them by, or
        a click weight of 0."""
        if not terms or self.config.click_weight == 0:
            return False
        return await self.store.has_clicks(query_key(terms))

    @staticmethod
    def _hit(
        chunk: StoredChunk,
        score: float,
        terms: Sequence[str],
        *,
        fulltext: LegResult | None = None,
        semantic: LegResult | None = None,
    ) -> Hit:
        text_snippet = snippet(chunk.text, frozenset(terms))
        return Hit(chunk, score, text_snippet, fulltext=fulltext, semantic=semantic)

    # Feedback ---------------------------------------------------------------------------

    async def record_click(self, click: ClickEvent) -> int:
        return await self.store.record_click(click, query_key=query_key(query_terms(click.query)))

    # Indexing ---------------------------------------------------------------------------

    async def index(self, docs: Sequence[DocumentInput]) -> list[UpsertResult]:
        """Adds or replaces documents in one transaction, so a failure stores none of them
        (a path that comes twice starts a second one). Unchanged documents cost one lookup."""
        for doc in docs:
            check_document(doc, self.embedder.dimension)
        hashes = [content_hash(doc, chunking=self.preparer.chunking) for doc in docs]
        stored = await asyncio.gather(*(self.store.content_hash(doc.path) for doc in docs))
        changed = [i for i, (new, old) in enumerate(zip(hashes, stored, strict=True)) if new != old]
        prepared = await self.preparer.prepare(
            [docs[i] for i in changed], [hashes[i] for i in changed]
        )
        results = {
            i: UpsertResult(doc.path, UpsertOutcome.UNCHANGED, 0) for i, doc in enumerate(docs)
        }
        for run in _distinct_path_runs(list(zip(changed, prepared, strict=True))):
            outcomes = await self.store.replace_documents([item for _, item in run])
            for (i, item), outcome in zip(run, outcomes, strict=True):
                results[i] = UpsertResult(item.document.path, outcome, len(item.chunks))
        return [results[i] for i in range(len(docs))]

    async def delete(self, path: str) -> DeleteResult:
        return await self.store.delete_document(check_document_path(path))

    # Health -----------------------------------------------------------------------------

    async def health(self) -> HealthReport:
        started = time.perf_counter()
        try:
            await self.store.ping()
            roundtrip_ms = (time.perf_counter() - started) * 1000
            stats = await self.store.stats()
        except DocFoundryError as exc:
            return self._report(False, str(exc), None, 0.0)
        return self._report(True, "", stats, roundtrip_ms)

    def _report(
        self, serving: bool, detail: str, stats: StoreStats | None, roundtrip_ms: float
    ) -> HealthReport:
        return HealthReport(
            serving=serving,
            detail=detail,
            backend=self.store.backend,
            stats=stats,
            roundtrip_ms=roundtrip_ms,
            embedding_model=self.embedder.model_name,
            embedding_dimension=self.embedder.dimension,
        )


def _distinct_path_runs(
    items: Sequence[tuple[int, DocumentChunks]],
) -> Iterator[list[tuple[int, DocumentChunks]]]:
    """Consecutive runs without a repeated path: a stream may send one document twice,
    and the later version must replace the earlier, so they go in separate writes."""
    run: list[tuple[int, DocumentChunks]] = []
    paths: set[str] = set()
    for item in items:
        path = item[1].document.path
        if path in paths:
            yield run
            run, paths = [], set()
        run.append(item)
        paths.add(path)
    if run:
        yield run


def _similar_enough(score: float, query: SearchQuery) -> bool:
    return query.min_similarity is None or score >= query.min_similarity


def query_key(terms: Sequence[str]) -> str:
    """The form under which clicks are grouped: 'Install guides' and 'install guide' meet."""
    return " ".join(sorted(terms))
