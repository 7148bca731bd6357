"""SearchEngine's own rules, on a real SQLite store: pages never reach past the server's
SEARCH_MAX_K, whatever a token says; the query-vector cache is an LRU of its size; health
times one ping."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from docfoundry_grpc.config import ClickConfig, DatabaseConfig, SearchConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.engine import SearchEngine, _QueryVectorCache
from docfoundry_grpc.errors import InvalidArgumentError
from docfoundry_grpc.ingest import ChunkInput, DocumentInput
from docfoundry_grpc.models import ClickEvent, CollectionSpec, ContentType, VectorSource
from docfoundry_grpc.storage import StorageAdapter, build_store
from docfoundry_grpc.validation import SearchQuery, search_query

SECRET = "shared by both servers"


@pytest.fixture
async def sqlite_store(tmp_path: Path, embedder: MiniLMEmbedder) -> AsyncIterator[StorageAdapter]:
    config = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "engine.db")
    store = build_store(config, dimension=embedder.dimension)
    await store.open()
    yield store
    await store.close()


def engine_for(store: StorageAdapter, embedder: MiniLMEmbedder, max_k: int) -> SearchEngine:
    return SearchEngine(store, embedder, SearchConfig(max_k=max_k), page_token_secret=SECRET)


def query(k: int, page_token: str = "") -> SearchQuery:
    return search_query(
        q="alpha", k=k, config=SearchConfig(), dimension=None, page_token=page_token
    )


async def twelve_alphas(engine: SearchEngine) -> None:
    docs = [
        DocumentInput(
            f"doc{i:02}.txt", content=f"alpha {'beta ' * i}", content_type=ContentType.PLAIN_TEXT
        )
        for i in range(12)
    ]
    await engine.index(docs)


async def test_a_token_past_this_servers_depth_is_refused(
    sqlite_store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    """A server with a deeper SEARCH_MAX_K (same secret) hands out a token for result 10;
    a server that ranks only 5 must refuse it, not serve an empty page."""
    deep, shallow = engine_for(sqlite_store, embedder, 50), engine_for(sqlite_store, embedder, 5)
    try:
        await twelve_alphas(deep)
        first = await deep.fulltext(query(10))
        assert len(first.hits) == 10 and first.next_page_token
        with pytest.raises(InvalidArgumentError, match="out of range"):
            await shallow.fulltext(query(10, first.next_page_token))
        third = await deep.fulltext(query(3))
        # Within its depth the shallow server serves the rest of its ranking, and no more.
        rest = await shallow.fulltext(query(3, third.next_page_token))
        everything = await deep.fulltext(query(12))
        assert [h.chunk.chunk_id for h in rest.hits] == [
            h.chunk.chunk_id for h in everything.hits[3:5]
        ]
        assert rest.next_page_token == ""
    finally:
        deep.close()
        shallow.close()


async def test_pages_follow_each_other_to_the_end_of_the_ranking(
    sqlite_store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    engine = engine_for(sqlite_store, embedder, 50)
    try:
        await twelve_alphas(engine)
        everything = [h.chunk.chunk_id for h in (await engine.fulltext(query(12))).hits]
        assert len(everything) == 12
        seen: list[int] = []
        token = ""
        for _ in range(3):
            page = await engine.fulltext(query(5, token))
            seen += [h.chunk.chunk_id for h in page.hits]
            token = page.next_page_token
        assert seen == everything and token == ""
    finally:
        engine.close()


async def test_hybrid_ranks_a_window_of_twice_the_page_depth(
    sqlite_store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    """Each leg ranks at least twice as deep as the page needs, so a page deeper than the
    configured candidate window is still full; a deep page asks for no absurd window."""
    config = SearchConfig(candidate_window=4, max_k=1000)
    engine = SearchEngine(sqlite_store, embedder, config)
    try:
        await twelve_alphas(engine)
        for k in (12, 100):
            page = await engine.hybrid(query(k))
            assert len(page.hits) == 12
    finally:
        engine.close()


async def test_each_leg_ranks_twice_the_page_depth_no_more_no_less(
    sqlite_store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    """A page of 2 ranks 3 (one more tells whether a next page exists), so each leg ranks
    6 candidates: the chunk 6th by full text gets its full-text share, the 7th does not.
    Vectors are the caller's, so the semantic leg is exactly known: only A and B point
    along the query; the others are orthogonal and score 0."""
    engine = SearchEngine(sqlite_store, embedder, SearchConfig(candidate_window=1))
    try:
        await engine.create_collection(CollectionSpec("window", VectorSource.CALLER, 2))
        names = ["r1", "r2", "r3", "r4", "r5", "A", "B", "r8"]  # full-text rank order
        docs = []
        for rank, name in enumerate(names, start=1):
            tf = 9 - rank  # same length, fewer 'alpha' further down
            text = " ".join(["alpha"] * tf + ["beta"] * (10 - tf))
            along = name in ("A", "B")
            chunk = ChunkInput("", "", text, (1.0, 0.0) if along else (0.0, 1.0))
            docs.append(DocumentInput(f"{name}.txt", chunks=[chunk]))
        await engine.index(docs, collection="window")

        def ask(k: int) -> SearchQuery:
            return search_query(
                q="alpha",
                k=k,
                vector=[1.0, 0.0],
                collection="window",
                config=SearchConfig(),
                dimension=None,
            )

        fulltext = {h.chunk.document_path: h.score for h in (await engine.fulltext(ask(8))).hits}
        assert list(fulltext) == [f"{n}.txt" for n in names]
        hits = (await engine.hybrid(ask(2))).hits
        assert [h.chunk.document_path for h in hits] == ["A.txt", "r1.txt"]
        assert hits[0].score == pytest.approx(1.0 + fulltext["A.txt"] / fulltext["r1.txt"])
        assert hits[1].score == pytest.approx(1.0)
    finally:
        engine.close()


async def test_a_click_weight_of_one_still_lets_clicks_lift(
    sqlite_store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    engine = SearchEngine(sqlite_store, embedder, SearchConfig(clicks=ClickConfig(weight=1.0)))
    try:
        await engine.create_collection(CollectionSpec("clicks", VectorSource.CALLER, 2))
        docs = [
            DocumentInput(f"d{tf}.txt", chunks=[ChunkInput("", "", "alpha " * tf, (0.0, 1.0))])
            for tf in (3, 2, 1)
        ]
        await engine.index(docs, collection="clicks")
        ask = search_query(
            q="alpha",
            k=3,
            vector=[1.0, 0.0],
            collection="clicks",
            config=SearchConfig(),
            dimension=None,
        )
        page = await engine.hybrid(ask)
        before = [h.chunk for h in page.hits]
        assert [c.document_path for c in before] == ["d3.txt", "d2.txt", "d1.txt"]
        shown = ClickEvent("alpha", before[2].chunk_id, 0, impression_id=page.impression_id)
        await engine.record_click(shown)
        after = [h.chunk.document_path for h in (await engine.hybrid(ask)).hits]
        assert after == ["d1.txt", "d3.txt", "d2.txt"]
    finally:
        engine.close()


async def test_documents_for_a_missing_collection_are_each_rejected(
    sqlite_store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    engine = engine_for(sqlite_store, embedder, 50)
    try:
        docs = [DocumentInput(f"{n}.txt", content="alpha") for n in "ab"]
        results = await engine.index(docs, collection="nowhere")
        assert [(r.path, r.outcome.name, r.chunk_count) for r in results] == [
            ("a.txt", "REJECTED", 0),
            ("b.txt", "REJECTED", 0),
        ]
        assert all(r.rejection and r.rejection.code.name == "NOT_FOUND" for r in results)
    finally:
        engine.close()


async def test_a_rejected_document_reports_no_chunks(
    sqlite_store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    engine = engine_for(sqlite_store, embedder, 50)
    try:
        [result] = await engine.index([DocumentInput("bad\x00path.txt", content="alpha")])
        assert (result.outcome.name, result.chunk_count) == ("REJECTED", 0)
        assert result.rejection is not None and result.rejection.field == "document.path"
    finally:
        engine.close()


async def test_health_times_one_ping(
    sqlite_store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    engine = engine_for(sqlite_store, embedder, 50)
    try:
        started = time.perf_counter()
        report = await engine.health()
        elapsed_ms = (time.perf_counter() - started) * 1000
        assert report.serving and report.stats is not None
        assert 0 < report.roundtrip_ms <= elapsed_ms  # the ping's own milliseconds
    finally:
        engine.close()


async def test_health_of_a_store_that_cannot_answer(
    sqlite_store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    engine = engine_for(sqlite_store, embedder, 50)
    try:
        await sqlite_store.close()
        report = await engine.health()
        assert (report.serving, report.stats, report.roundtrip_ms) == (False, None, 0.0)
        assert report.detail and report.backend == "sqlite"
    finally:
        engine.close()


def test_the_query_vector_cache_drops_the_least_recently_used() -> None:
    cache = _QueryVectorCache(2)
    vectors = {name: np.full(2, i, dtype=np.float32) for i, name in enumerate("abc")}
    cache.put("a", vectors["a"])
    cache.put("b", vectors["b"])
    assert cache.get("a") is vectors["a"]  # now b is the least recently used
    cache.put("c", vectors["c"])
    assert cache.get("b") is None
    assert cache.get("a") is vectors["a"] and cache.get("c") is vectors["c"]
