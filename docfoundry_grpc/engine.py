"""SearchEngine: embed → retrieve → fuse → feedback. Knows nothing of gRPC or SQL."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace

from . import __version__, sibling_tasks
from .admission import Admission, AdmissionConfig
from .config import SearchConfig
from .embedding import Embedder
from .errors import DocFoundryError, InvalidArgumentError, NotFoundError
from .feedback import (
    ImpressionTokens,
    apply_boosts,
    click_boosts,
    click_source,
    click_vote,
    judge_caps,
    one_chunk_per_document,
)
from .filters import Filter
from .ingest import DocumentInput, DocumentPreparer, check_document, content_hash
from .learned_ranker import HEAD, Candidate, LearnedRanker, LiveRankers, score_head
from .models import (
    DEFAULT_COLLECTION,
    ClickEvent,
    ClickEvidence,
    ClickOutcome,
    ClickRecord,
    Collection,
    CollectionSpec,
    DeleteManyResult,
    DeleteResult,
    DocumentChunks,
    Hit,
    LegResult,
    Rejection,
    RejectionCode,
    ScoredId,
    StoredChunk,
    StoredDocument,
    StoreStats,
    UpsertOutcome,
    UpsertResult,
    Vector,
    VectorSource,
)
from .paging import PageTokens
from .ranking import FusedCandidate, FusionParams, fuse
from .snippets import snippet
from .storage.base import StorageAdapter
from .text import query_key, query_terms
from .tracing import STEPS_OFF, Attributes, StepSpans
from .validation import SearchQuery, check_click, check_document_path, check_vector

QUERY_CACHE_SIZE = 2048


@dataclass(frozen=True)
class SearchPage:
    hits: list[Hit]
    next_page_token: str = ""
    impression_id: str = ""  # names the hits for RecordClick (see feedback.py)


@dataclass(frozen=True)
class _Page:
    """A search page: results offset … end − 1 of a ranking of `ranked` results."""

    offset: int
    end: int
    ranked: int


@dataclass(frozen=True)
class DocumentPage:
    documents: list[StoredDocument]
    next_page_token: str = ""


@dataclass(frozen=True)
class HealthReport:
    serving: bool
    detail: str
    backend: str
    stats: StoreStats | None
    roundtrip_ms: float
    embedding_model: str
    embedding_dimension: int
    click_model: str = ""
    rankers: dict[str, str] = field(default_factory=dict)
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
    """`timer(mode)` wraps each search, end to end, so metrics can see it per mode;
    `spans` traces its steps (embedding, each leg, fusion, snippets, ingest batches);
    `on_click` hears each stored click's outcome."""

    def __init__(
        self,
        store: StorageAdapter,
        embedder: Embedder,
        config: SearchConfig,
        *,
        timer: SearchTimer = lambda mode: nullcontext(),
        page_token_secret: str = "",
        admission: Admission | None = None,
        spans: StepSpans = STEPS_OFF,
        on_click: Callable[[ClickOutcome], None] = lambda outcome: None,
    ) -> None:
        self.store = store
        self._spans = spans
        self._on_click = on_click
        self.admission = admission or Admission(AdmissionConfig())
        self.embedder = embedder
        self.config = config
        self.timer = timer
        # Query embeddings get as many threads as admission lets run at once (one by
        # default), ingest batches one of their own: the model has its own threads
        # (EMBEDDING_THREADS), so more side by side only oversubscribes the CPU, and a long
        # ingest batch never queues a query.
        self._query_model = ThreadPoolExecutor(
            self.admission.embedding.config.concurrency, thread_name_prefix="embed-query"
        )
        self._ingest_model = ThreadPoolExecutor(1, thread_name_prefix="embed-ingest")
        self.preparer = DocumentPreparer(
            embedder, max_chars=config.chunk_max_chars, executor=self._ingest_model, spans=spans
        )
        self._query_vectors = _QueryVectorCache(QUERY_CACHE_SIZE)
        self._pages = PageTokens(page_token_secret)
        self._impressions = ImpressionTokens(page_token_secret)
        self.rankers = LiveRankers(store)

    def close(self) -> None:
        self._query_model.shutdown(wait=False, cancel_futures=True)
        self._ingest_model.shutdown(wait=False, cancel_futures=True)

    # Collections ------------------------------------------------------------------------

    async def collection(self, name: str) -> Collection:
        """A collection's settings (vector source, dimension), which searches need."""
        return await self.store.describe_collection(name)

    async def create_collection(self, spec: CollectionSpec) -> Collection:
        if spec.vectors is VectorSource.MODEL and spec.dimension not in (
            0,
            self.embedder.dimension,
        ):
            raise InvalidArgumentError(
                f"the server's model makes {self.embedder.dimension}-d vectors; a collection "
                f"for it cannot be {spec.dimension}-d",
                field="dimension",
            )
        if spec.vectors is VectorSource.MODEL:
            spec = CollectionSpec(
                spec.name, spec.vectors, self.embedder.dimension, spec.description
            )
        return await self.store.create_collection(spec)

    async def write_position(self) -> str:
        """The consistency token of the writes acknowledged so far (see `consistency`)."""
        return await self.store.write_position()

    async def get_collection(self, name: str) -> Collection:
        return await self.store.get_collection(name)

    async def list_collections(self) -> list[Collection]:
        return await self.store.list_collections()

    async def delete_collection(self, name: str) -> DeleteManyResult:
        return await self.store.delete_collection(name)

    # Search -----------------------------------------------------------------------------

    async def fulltext(self, query: SearchQuery) -> SearchPage:
        with self.timer("fulltext"):
            await self.collection(query.collection)
            page = self._page(query, "fulltext")
            terms = query_terms(query.q)
            found = await self.store.search_fulltext(
                terms, limit=page.ranked, collection=query.collection, where=query.where
            )
            hits = self._hits(found[page.offset : page.end], terms)
            return self._search_page(query, "fulltext", page, hits, len(found) > page.end)

    async def semantic(self, query: SearchQuery) -> SearchPage:
        with self.timer("semantic"):
            collection = await self.collection(query.collection)
            page = self._page(query, "semantic")
            vector = await self._query_vector(query, collection)
            if vector is None:
                return self._search_page(query, "semantic", page, [], False)
            found = await self.store.search_vector(
                vector, limit=page.ranked, collection=query.collection, where=query.where
            )
            similar = [c for c in found if _similar_enough(c.score, query)]
            terms = query_terms(query.q)
            hits = self._hits(similar[page.offset : page.end], terms)
            return self._search_page(query, "semantic", page, hits, len(similar) > page.end)

    async def hybrid(self, query: SearchQuery) -> SearchPage:
        with self.timer("hybrid"):
            collection = await self.collection(query.collection)
            page = self._page(query, "hybrid")
            hits, more = await self._hybrid(query, collection, page)
            return self._search_page(query, "hybrid", page, hits, more)

    def _page(self, query: SearchQuery, mode: str) -> _Page:
        """Which slice of the ranking the query's page is: pages are slices of one ranking,
        so following the tokens gives each result once while the index is still."""
        offset = 0
        if query.page_token:
            position = self._pages.decode(query.page_token, _fingerprint(mode, query))
            if not isinstance(position, int) or not 0 < position < self.config.max_k:
                raise InvalidArgumentError("page_token is out of range", field="page_token")
            offset = position
        end = min(offset + query.k, self.config.max_k)
        # One past the page tells whether there is another, unless the page ends the depth.
        return _Page(offset, end, end + 1 if end < self.config.max_k else end)

    def _search_page(
        self, query: SearchQuery, mode: str, page: _Page, hits: list[Hit], more: bool
    ) -> SearchPage:
        """A page, with a token for the next one if the ranking has more (at most
        SEARCH_MAX_K results in all), and the impression a click on its hits sends back."""
        impression = self._impressions.issue(
            query.q,
            query.collection,
            [h.chunk.chunk_id for h in hits],
            first_rank=page.offset + 1,
        )
        next_page = self._pages.encode(_fingerprint(mode, query), page.end) if more else ""
        return SearchPage(hits, next_page, impression)

    async def _hybrid(
        self, query: SearchQuery, collection: Collection, page: _Page
    ) -> tuple[list[Hit], bool]:
        """Both legs rank a window of chunk ids side by side, while the store says whether
        the query has counted clicks at all; only then is the whole window fused and the
        clicks read for it. Rows are read only for the page's results, not for the whole
        window. Returns the page's hits and whether more follow."""
        window = max(self.config.candidate_window, 2 * page.ranked)
        terms = query_terms(query.q)
        (fulltext, semantic), clicked, ranker = await sibling_tasks.gather(
            self._legs(query, collection, terms, window),
            self._has_clicks(query, terms),
            self._live_ranker(query),
        )
        params = self._fusion_params(query)
        with self._spans("fuse", {"docfoundry.fusion.method": params.method.value}) as span:
            whole = clicked or ranker is not None
            fused = fuse(fulltext, semantic, params, limit=None if whole else page.ranked)
            span.set_attribute("docfoundry.fusion.results", len(fused))
        rows: dict[int, StoredChunk] = {}
        if ranker is not None and fused:
            fused, rows = await self._learned(ranker, query, terms, fused)
        if clicked and fused:
            evidence = await self.store.click_evidence(
                query_key(terms), [f.chunk_id for f in fused], collection=query.collection
            )
            fused = self._with_clicks(fused, evidence)
        shown = fused[page.offset : page.end]
        if all(f.chunk_id in rows for f in shown):  # read already, for the ranker
            chunks = [replace(rows[f.chunk_id], score=f.score) for f in shown]
        else:
            chunks = await self.store.chunks([(f.chunk_id, f.score) for f in shown])
        legs = {f.chunk_id: f for f in shown}
        with self._spans("snippets", {"docfoundry.hits": len(chunks)}):
            hits = [
                self._hit(
                    c,
                    c.score,
                    terms,
                    fulltext=legs[c.chunk_id].fulltext,
                    semantic=legs[c.chunk_id].semantic,
                )
                for c in chunks
            ]
        return hits, len(fused) > page.end

    async def _fulltext_ranking(
        self, query: SearchQuery, terms: Sequence[str], *, limit: int
    ) -> list[ScoredId]:
        with self._spans("fulltext leg", {"docfoundry.search.window": limit}) as span:
            found = await self.store.rank_fulltext(
                terms, limit=limit, collection=query.collection, where=query.where
            )
            span.set_attribute("docfoundry.search.candidates", len(found))
            return found

    async def _semantic_ranking(
        self, query: SearchQuery, collection: Collection, *, limit: int
    ) -> list[ScoredId]:
        with self._spans("semantic leg", {"docfoundry.search.window": limit}) as span:
            vector = await self._query_vector(query, collection)
            if vector is None:
                return []
            found = await self.store.rank_vector(
                vector, limit=limit, collection=query.collection, where=query.where
            )
            similar = [(i, score) for i, score in found if _similar_enough(score, query)]
            span.set_attribute("docfoundry.search.candidates", len(similar))
            return similar

    async def _query_vector(self, query: SearchQuery, collection: Collection) -> Vector | None:
        """The request's vector (checked against the collection's dimension), or the query
        text embedded by the model for a collection of the model's vectors."""
        if query.vector is not None:
            return check_vector(query.vector, collection.dimension, what="query_vector")
        if collection.vectors is VectorSource.CALLER:
            raise InvalidArgumentError(
                f"collection {collection.name!r} takes caller vectors: send query_vector",
                field="query_vector",
            )
        return await self.embed_query(query.q)

    async def embed_query(self, text: str) -> Vector | None:
        """The query's embedding (cached), or None for text with nothing to embed."""
        key = " ".join(text.split())
        if not key:
            return None
        with self._spans(
            "embed query", {"docfoundry.embedding.model": self.embedder.model_name}
        ) as span:
            vector = self._query_vectors.get(key)
            span.set_attribute("docfoundry.embedding.cached", vector is not None)
            if vector is None:
                # Admitted against the call's deadline; a call cancelled while it waits
                # leaves the queue and its text is never embedded.
                async with self.admission.embedding.slot():
                    span.add_event("admitted")
                    loop = asyncio.get_running_loop()
                    embedded = await loop.run_in_executor(
                        self._query_model, self.embedder.embed, [key]
                    )
                vector = embedded[0]
                self._query_vectors.put(key, vector)
            return vector

    async def embed_texts(self, texts: Sequence[str]) -> Vector:
        """Many texts embedded at once, on the ingest thread (training, not queries)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._ingest_model, self.embedder.embed, list(texts))

    async def _has_clicks(self, query: SearchQuery, terms: Sequence[str]) -> bool:
        """False without asking when clicks cannot count: no terms to group them by, click
        feedback off, or a request for the plain ranking."""
        if not terms or not self.config.clicks.enabled or query.plain_ranking:
            return False
        return await self.store.has_clicks(query_key(terms))

    async def _live_ranker(self, query: SearchQuery) -> LearnedRanker | None:
        if query.plain_ranking or not query.q.strip() or not self.config.clicks.enabled:
            return None  # the ranker is made of clicks: feedback off turns it off too
        return await self.rankers.get(query.collection)

    async def _learned(
        self,
        ranker: LearnedRanker,
        query: SearchQuery,
        terms: Sequence[str],
        fused: list[FusedCandidate],
    ) -> tuple[list[FusedCandidate], dict[int, StoredChunk]]:
        """The head of the fused list re-ordered by the learned ranker, and its rows."""
        with self._spans("learned ranker", {"docfoundry.ranker.version": ranker.version}):
            candidates = await self.head_candidates(fused[:HEAD])
            vector = await self.embed_query(query.q)
            order = await asyncio.to_thread(score_head, ranker, terms, candidates, vector)
        head = [
            FusedCandidate(
                candidates[i].chunk.chunk_id, score, candidates[i].fulltext, candidates[i].semantic
            )
            for i, score in order
        ]
        return head + fused[HEAD:], {c.chunk.chunk_id: c.chunk for c in candidates}

    async def head_candidates(self, head: Sequence[FusedCandidate]) -> list[Candidate]:
        """The head's candidates with their rows (a chunk deleted meanwhile is left out)."""
        found = await self.store.chunks([(f.chunk_id, f.score) for f in head])
        by_id = {c.chunk_id: c for c in found}
        return [
            Candidate(by_id[f.chunk_id], f.score, f.fulltext, f.semantic)
            for f in head
            if f.chunk_id in by_id
        ]

    async def plain_head(self, text: str, collection: str) -> list[Candidate]:
        """What the learned ranker sees for a query: the head of its plain fused list."""
        query = SearchQuery(q=text, k=HEAD, collection=collection, plain_ranking=True)
        described = await self.collection(collection)
        window = max(self.config.candidate_window, 2 * HEAD)
        legs = await self._legs(query, described, query_terms(text), window)
        fused = fuse(*legs, self._fusion_params(query), limit=HEAD)
        return await self.head_candidates(fused)

    async def _legs(
        self, query: SearchQuery, collection: Collection, terms: Sequence[str], window: int
    ) -> tuple[list[ScoredId], list[ScoredId]]:
        """Both legs' rankings of `window` candidates, side by side."""
        fulltext, semantic = await sibling_tasks.gather(
            self._fulltext_ranking(query, terms, limit=window),
            self._semantic_ranking(query, collection, limit=window),
        )
        return fulltext, semantic

    def _fusion_params(self, query: SearchQuery) -> FusionParams:
        return FusionParams(
            method=query.fusion or self.config.fusion,
            rrf_k=query.rrf_k,
            fulltext_weight=query.fulltext_weight,
            semantic_weight=query.semantic_weight,
        )

    def _with_clicks(
        self, fused: list[FusedCandidate], evidence: ClickEvidence
    ) -> list[FusedCandidate]:
        """The fused candidates with what the query's clicks add, re-ranked."""
        boosts = click_boosts(evidence, fused[0].score, self.config.clicks)
        boosts = one_chunk_per_document(
            boosts, [f.chunk_id for f in fused], evidence.documents, evidence.own_clicks
        )
        if not boosts:
            return fused
        by_id = {f.chunk_id: f for f in fused}
        boosted = apply_boosts([(f.chunk_id, f.score) for f in fused], boosts)
        return [replace(by_id[chunk_id], score=score) for chunk_id, score in boosted]

    def _hits(self, chunks: Sequence[StoredChunk], terms: Sequence[str]) -> list[Hit]:
        with self._spans("snippets", {"docfoundry.hits": len(chunks)}):
            return [self._hit(c, c.score, terms) for c in chunks]

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

    async def record_click(self, click: ClickEvent) -> tuple[int, ClickOutcome]:
        """Stores the click, and whether it counts: only a click on a hit of an impression
        this service issued counts, within the caps (see feedback.py)."""
        check_click(click, self.config)
        config = self.config.clicks
        record = self._click_record(click)
        click_id, outcome = await self.store.record_click(
            record, judge=lambda counts: judge_caps(click, counts, config)
        )
        self._on_click(outcome)
        return click_id, outcome

    def _click_record(self, click: ClickEvent) -> ClickRecord:
        key = query_key(query_terms(click.query))
        if not click.impression_id:
            source = click_source(click, "")
            return ClickRecord(
                click, key, click.position, "", source, 0.0, ClickOutcome.NO_IMPRESSION
            )
        impression = self._impressions.read(click.impression_id)
        if click.query and key != impression.query_key:
            raise InvalidArgumentError("query is not the query of the impression", field="query")
        if not click.query:
            click = replace(click, query=impression.query)
        source = click_source(click, impression.nonce)
        position = impression.position_of(click.chunk_id)
        expired = time.time() - impression.issued_at > self.config.clicks.impression_ttl_seconds
        if position is None or expired:
            outcome = ClickOutcome.NOT_SHOWN if position is None else ClickOutcome.NO_IMPRESSION
            return ClickRecord(
                click,
                impression.query_key,
                position or click.position,
                impression.nonce,
                source,
                0.0,
                outcome,
            )
        vote = click_vote(position, click.dwell_time, self.config.clicks)
        return ClickRecord(click, impression.query_key, position, impression.nonce, source, vote)

    # Indexing ---------------------------------------------------------------------------

    async def index(
        self, docs: Sequence[DocumentInput], *, collection: str = DEFAULT_COLLECTION
    ) -> list[UpsertResult]:
        """Adds or replaces documents in one transaction (a path that comes twice starts a
        second one). A document that fails validation is rejected on its own, with the field
        at fault; the others are stored. Documents for a collection that does not exist are
        rejected too (NOT_FOUND), not the stream. Unchanged documents cost one lookup.
        Each call is one unit of ingest work for admission control."""
        attributes: Attributes = {
            "docfoundry.collection": collection,
            "docfoundry.documents": len(docs),
        }
        with self._spans("index batch", attributes):
            async with self.admission.ingest.slot():
                return await self._index(docs, collection)

    async def _index(self, docs: Sequence[DocumentInput], collection: str) -> list[UpsertResult]:
        try:
            target = await self.collection(collection)
        except NotFoundError as exc:
            missing = Rejection("collection", str(exc), RejectionCode.NOT_FOUND)
            return [UpsertResult(d.path, UpsertOutcome.REJECTED, 0, missing) for d in docs]
        results: dict[int, UpsertResult] = {}
        valid: list[int] = []
        given: dict[int, dict[int, Vector]] = {}
        for i, doc in enumerate(docs):
            try:
                given[i] = check_document(doc, target, max_bytes=self.config.max_document_bytes)
            except InvalidArgumentError as exc:
                rejection = Rejection.invalid(exc)
                results[i] = UpsertResult(doc.path, UpsertOutcome.REJECTED, 0, rejection)
            else:
                valid.append(i)
        hashes = {i: content_hash(docs[i], chunking=self.preparer.chunking) for i in valid}
        paths = [docs[i].path for i in valid]
        stored = await self.store.content_hashes(paths, collection=collection) if paths else {}
        changed = [i for i in valid if hashes[i] != stored.get(docs[i].path)]
        for i in valid:
            results[i] = UpsertResult(docs[i].path, UpsertOutcome.UNCHANGED, 0)
        prepared = await self.preparer.prepare(
            [docs[i] for i in changed], [hashes[i] for i in changed], [given[i] for i in changed]
        )
        for run in _distinct_path_runs(list(zip(changed, prepared, strict=True))):
            items = [item for _, item in run]
            outcomes = await self.store.replace_documents(items, collection=collection)
            for (i, item), outcome in zip(run, outcomes, strict=True):
                results[i] = UpsertResult(item.document.path, outcome, len(item.chunks))
        return [results[i] for i in range(len(docs))]

    async def delete(self, path: str, *, collection: str = DEFAULT_COLLECTION) -> DeleteResult:
        return await self.store.delete_document(check_document_path(path), collection=collection)

    async def delete_documents(
        self, where: Filter | None, *, collection: str = DEFAULT_COLLECTION
    ) -> DeleteManyResult:
        return await self.store.delete_documents(where, collection=collection)

    async def get_document(
        self, path: str, *, collection: str = DEFAULT_COLLECTION
    ) -> StoredDocument:
        return await self.store.get_document(check_document_path(path), collection=collection)

    async def list_documents(
        self,
        *,
        collection: str = DEFAULT_COLLECTION,
        where: Filter | None = None,
        page_size: int,
        page_token: str = "",
    ) -> DocumentPage:
        fingerprint = f"list|{collection}|{where!r}"
        after = self._pages.decode(page_token, fingerprint) if page_token else ""
        if not isinstance(after, str):
            raise InvalidArgumentError("page_token is not a listing's token", field="page_token")
        found = await self.store.list_documents(
            collection=collection, where=where, after=after, limit=page_size + 1
        )
        if len(found) <= page_size:  # one past the page tells whether there is another
            return DocumentPage(found)
        shown = found[:page_size]
        return DocumentPage(shown, self._pages.encode(fingerprint, shown[-1].path))

    # Health -----------------------------------------------------------------------------

    async def health(self) -> HealthReport:
        started = time.perf_counter()
        try:
            await self.store.ping()
            roundtrip_ms = (time.perf_counter() - started) * 1000
            stats = await self.store.stats()
            rankers = await self.store.live_rankers()
        except DocFoundryError as exc:
            return self._report(False, str(exc), None, 0.0)
        return self._report(True, "", stats, roundtrip_ms, rankers)

    def _report(
        self,
        serving: bool,
        detail: str,
        stats: StoreStats | None,
        roundtrip_ms: float,
        rankers: Mapping[str, int] | None = None,
    ) -> HealthReport:
        return HealthReport(
            serving=serving,
            detail=detail,
            backend=self.store.backend,
            stats=stats,
            roundtrip_ms=roundtrip_ms,
            embedding_model=self.embedder.model_name,
            embedding_dimension=self.embedder.dimension,
            click_model=self.config.clicks.describe(),
            rankers={name: f"v{v}" for name, v in sorted((rankers or {}).items())},
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


def _fingerprint(mode: str, query: SearchQuery) -> str:
    """What decides a query's ranking, page size aside: a page token is good only for it."""
    vector = b"" if query.vector is None else query.vector.tobytes()
    parts = (
        mode,
        query.collection,
        query.q,
        repr(query.where),
        repr(query.min_similarity),
        query.rrf_k,
        query.fulltext_weight,
        query.semantic_weight,
        query.fusion,
        hashlib.sha256(vector).hexdigest(),
    )
    return "|".join(map(str, parts))


def _similar_enough(score: float, query: SearchQuery) -> bool:
    return query.min_similarity is None or score >= query.min_similarity
