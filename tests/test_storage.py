"""The storage contract, asserted once and run on every adapter (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from docfoundry_grpc.config import DatabaseConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.errors import (
    NotFoundError,
    SchemaMismatchError,
    StoreUnavailableError,
    UnauthenticatedError,
)
from docfoundry_grpc.filters import PathPrefix
from docfoundry_grpc.keys import new_key, parse_token, verify
from docfoundry_grpc.models import (
    Chunk,
    ClickCounts,
    ClickEvent,
    ClickEvidence,
    ClickOutcome,
    ClickRecord,
    Document,
    DocumentChunks,
    Scope,
    UpsertOutcome,
)
from docfoundry_grpc.storage import StorageAdapter, build_store
from docfoundry_grpc.text import analyze, query_terms

from .bm25_reference import bm25_scores
from .conftest import record_click

CORPUS = {
    "guides/install.md": (
        "Install",
        ["Install the server with pip and start it.", "Configure the port with GRPC_PORT."],
    ),
    "guides/search.md": (
        "Search",
        [
            "Hybrid search fuses full-text and semantic results.",
            "Semantic search uses embeddings of chunks.",
        ],
    ),
    "api/errors.md": ("Errors", ["Errors map to gRPC status codes such as NOT_FOUND."]),
    "blog/cats.md": ("Cats", ["Cats sleep most of the day and purr when content."]),
}


def make_chunks(embedder: MiniLMEmbedder, title: str, texts: list[str]) -> list[Chunk]:
    vectors = embedder.embed([f"{title}\n{t}" for t in texts])
    return [
        Chunk(
            heading=title,
            anchor=title.lower(),
            text=t,
            tokens=tuple(analyze(f"{title}\n{title}\n{t}")),
            embedding=v,
        )
        for t, v in zip(texts, vectors, strict=True)
    ]


async def store_one(
    store: StorageAdapter, document: Document, chunks: Sequence[Chunk]
) -> UpsertOutcome:
    [outcome] = await store.replace_documents([DocumentChunks(document, chunks)])
    return outcome


def corpus_documents(embedder: MiniLMEmbedder) -> list[DocumentChunks]:
    return [
        DocumentChunks(
            Document(path, title, f"https://docs.example/{path}", f"hash-{path}"),
            make_chunks(embedder, title, texts),
        )
        for path, (title, texts) in CORPUS.items()
    ]


async def load(store: StorageAdapter, embedder: MiniLMEmbedder) -> None:
    """One document per write, as a stream of single documents arrives."""
    for item in corpus_documents(embedder):
        assert await store_one(store, item.document, item.chunks) is UpsertOutcome.CREATED


def reference_bm25(query: str, extra: dict[str, list[str]] | None = None) -> dict[str, float]:
    """BM25 with FTS5's formula over CORPUS (plus `extra` text → tokens), keyed by text."""
    rows = {t: analyze(f"{title}\n{title}\n{t}") for title, texts in CORPUS.values() for t in texts}
    rows.update(extra or {})
    return bm25_scores(rows, query_terms(query))


async def test_upsert_counts_and_hash(store: StorageAdapter, embedder: MiniLMEmbedder) -> None:
    await load(store, embedder)
    stats = await store.stats()
    assert (stats.documents, stats.chunks, stats.clicks) == (4, 6, 0)
    assert await store.content_hashes(["guides/install.md", "missing.md"]) == {
        "guides/install.md": "hash-guides/install.md"
    }
    assert await store.content_hashes([]) == {}


@pytest.mark.parametrize("query", ["install server port", "search semantic embeddings", "cats"])
async def test_fulltext_scores_are_fts5_bm25(
    store: StorageAdapter, embedder: MiniLMEmbedder, query: str
) -> None:
    await load(store, embedder)
    found = await store.search_fulltext(query_terms(query), limit=10)
    expected = reference_bm25(query)
    assert {c.text for c in found} == set(expected)
    for chunk in found:
        assert chunk.score == pytest.approx(expected[chunk.text], rel=1e-6)
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)


@pytest.mark.parametrize("path_prefix", ["", "guides/"])
async def test_a_repeated_term_counts_once(
    store: StorageAdapter, embedder: MiniLMEmbedder, path_prefix: str
) -> None:
    await load(store, embedder)
    terms = query_terms("install server port")
    once = await store.rank_fulltext(
        terms, limit=10, where=PathPrefix(path_prefix) if path_prefix else None
    )
    twice = await store.rank_fulltext(
        [*terms, *terms], limit=10, where=PathPrefix(path_prefix) if path_prefix else None
    )
    assert once and twice == once


async def test_fulltext_filters_by_path_prefix_and_limit(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    await load(store, embedder)
    found = await store.search_fulltext(
        query_terms("search errors"), limit=10, where=PathPrefix("api/")
    )
    assert [c.document_path for c in found] == ["api/errors.md"]
    assert len(await store.search_fulltext(query_terms("search semantic"), limit=1)) == 1
    assert await store.search_fulltext([], limit=10) == []


async def test_vector_search_ranks_by_cosine(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    await load(store, embedder)
    query = embedder.embed(["my kitten naps all afternoon"])[0]
    found = await store.search_vector(query, limit=3)
    assert found[0].document_path == "blog/cats.md"
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    stored = make_chunks(embedder, "Cats", CORPUS["blog/cats.md"][1])[0].embedding
    assert stored is not None
    assert found[0].score == pytest.approx(float(np.dot(query, stored)), abs=1e-5)
    filtered = await store.search_vector(query, limit=3, where=PathPrefix("guides/"))
    assert len(filtered) == 3
    assert all(c.document_path.startswith("guides/") for c in filtered)


@pytest.mark.parametrize("path_prefix", ["", "guides/"])
async def test_rankings_are_the_searches_without_rows(
    store: StorageAdapter, embedder: MiniLMEmbedder, path_prefix: str
) -> None:
    await load(store, embedder)
    terms = query_terms("search install semantic port")
    vector = embedder.embed(["how do I install it"])[0]
    searched = [
        await store.search_fulltext(
            terms, limit=4, where=PathPrefix(path_prefix) if path_prefix else None
        ),
        await store.search_vector(
            vector, limit=4, where=PathPrefix(path_prefix) if path_prefix else None
        ),
    ]
    ranked = [
        await store.rank_fulltext(
            terms, limit=4, where=PathPrefix(path_prefix) if path_prefix else None
        ),
        await store.rank_vector(
            vector, limit=4, where=PathPrefix(path_prefix) if path_prefix else None
        ),
    ]
    for found, ranking in zip(searched, ranked, strict=True):
        assert len(found) == 4
        assert [i for i, _ in ranking] == [c.chunk_id for c in found]
        assert [s for _, s in ranking] == pytest.approx([c.score for c in found], abs=1e-6)
    assert await store.rank_fulltext([], limit=4) == []


async def test_chunks_keep_the_given_order_and_scores(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    await load(store, embedder)
    [cat] = await store.search_fulltext(["purr"], limit=5)
    others = await store.search_fulltext(query_terms("install search"), limit=3)
    ranked = [(others[2].chunk_id, 3.0), (cat.chunk_id, 2.0), (others[0].chunk_id, 1.0)]
    found = await store.chunks(ranked)
    assert [(c.chunk_id, c.score) for c in found] == ranked
    assert found[1] == dataclasses.replace(cat, score=2.0)
    await store.delete_document("blog/cats.md")
    assert [c.chunk_id for c in await store.chunks(ranked)] == [ranked[0][0], ranked[2][0]]
    assert await store.chunks([]) == []


async def test_replace_swaps_chunks_and_keeps_clicks(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    await load(store, embedder)
    [old] = await store.search_fulltext(["cat"], limit=5)
    await record_click(store, ClickEvent("cats", old.chunk_id, 1), query_key="cat")
    new_doc = Document("blog/cats.md", "Dogs", "", "hash-2")
    outcome = await store_one(
        store, new_doc, make_chunks(embedder, "Dogs", ["Dogs bark at the mailman."])
    )
    assert outcome is UpsertOutcome.REPLACED
    assert await store.search_fulltext(["purr"], limit=5) == []
    [new] = await store.search_fulltext(["bark"], limit=5)
    assert new.title == "Dogs" and new.chunk_id != old.chunk_id
    clicked = await store.click_evidence("cat", [new.chunk_id, old.chunk_id], collection="default")
    # The click's chunk went with the replace: the document's clicks stay, no chunk's own.
    assert clicked == ClickEvidence(
        1, {new.chunk_id: [1.0]}, {new.chunk_id: new.document_id}, {new.chunk_id: 0}
    )
    stats = await store.stats()
    assert (stats.documents, stats.chunks, stats.clicks) == (4, 6, 1)


async def test_replace_keeps_bm25_statistics_exact(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    """After replacing and deleting, scores equal those of a corpus loaded from scratch."""
    await load(store, embedder)
    extra = Document("tmp/x.md", "Install", "", "h")
    await store_one(store, extra, make_chunks(embedder, "Install", ["install " * 5]))
    await store_one(store, extra, make_chunks(embedder, "Install", ["install twice"]))
    await store.delete_document("tmp/x.md")
    found = await store.search_fulltext(query_terms("install server"), limit=10)
    expected = reference_bm25("install server")
    assert {c.text: pytest.approx(c.score, rel=1e-6) for c in found} == expected


async def test_a_batch_creates_and_replaces_in_input_order(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    """One write of several documents, new and replaced mixed, leaves the same statistics
    and outcomes as writing them one by one."""
    outcomes = await store.replace_documents(corpus_documents(embedder))
    assert outcomes == [UpsertOutcome.CREATED] * len(CORPUS)
    extra_text = "install the server twice"
    batch = [
        DocumentChunks(
            Document("tmp/x.md", "Install", "", "h"), make_chunks(embedder, "Install", [extra_text])
        ),
        DocumentChunks(
            Document("blog/cats.md", "Install", "", "h2"),
            make_chunks(embedder, "Install", ["install the port"]),
        ),
    ]
    assert await store.replace_documents(batch) == [UpsertOutcome.CREATED, UpsertOutcome.REPLACED]
    stats = await store.stats()
    assert (stats.documents, stats.chunks) == (5, 7)
    rows = {
        t: analyze(f"{title}\n{title}\n{t}")
        for path, (title, texts) in CORPUS.items()
        if path != "blog/cats.md"
        for t in texts
    }
    rows[extra_text] = analyze(f"Install\nInstall\n{extra_text}")
    rows["install the port"] = analyze("Install\nInstall\ninstall the port")
    found = await store.search_fulltext(query_terms("install server port purr"), limit=20)
    expected = bm25_scores(rows, query_terms("install server port purr"))
    assert {c.text: pytest.approx(c.score, rel=1e-6) for c in found} == expected
    assert await store.replace_documents([]) == []


async def test_a_failed_batch_stores_none_of_it(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    """The batch is one transaction: a document that cannot be stored takes the ones
    before it back out, and a batch naming a path twice is refused before writing."""
    await load(store, embedder)
    before = await store.stats()
    good = DocumentChunks(Document("new/a.md", "A", "", "a"), make_chunks(embedder, "A", ["alpha"]))
    broken = DocumentChunks(
        Document("api/errors.md", "B", "", "b"), [Chunk("", "", "beta", ("beta",), None)]
    )
    with pytest.raises(Exception):  # noqa: B017 - each backend's own error for a missing vector
        await store.replace_documents([good, broken])
    with pytest.raises(ValueError, match="path twice"):
        await store.replace_documents([good, good])
    after = await store.stats()
    assert (after.documents, after.chunks) == (before.documents, before.chunks)
    assert await store.content_hashes(["new/a.md", "api/errors.md"]) == {
        "api/errors.md": "hash-api/errors.md"
    }
    assert await store.search_fulltext(["alpha"], limit=5) == []
    [hit] = await store.search_fulltext(["status"], limit=5)
    assert (hit.document_path, hit.title) == ("api/errors.md", "Errors")


async def test_delete_removes_chunks_and_clicks(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    await load(store, embedder)
    [hit] = await store.search_fulltext(["purr"], limit=5)
    await record_click(store, ClickEvent("purr", hit.chunk_id, 1), query_key="purr")
    result = await store.delete_document("blog/cats.md")
    assert (result.chunks_deleted, result.clicks_deleted) == (1, 1)
    assert await store.search_fulltext(["purr"], limit=5) == []
    query = embedder.embed(["cats purring"])[0]
    nearest = await store.search_vector(query, limit=10)
    assert all(c.document_path != "blog/cats.md" for c in nearest)
    stats = await store.stats()
    assert (stats.documents, stats.chunks, stats.clicks) == (3, 5, 0)
    with pytest.raises(NotFoundError):
        await store.delete_document("blog/cats.md")


async def test_clicks(store: StorageAdapter, embedder: MiniLMEmbedder) -> None:
    await load(store, embedder)
    [hit] = await store.search_fulltext(["purr"], limit=5)
    assert not await store.has_clicks("purr")
    event = ClickEvent("purr", hit.chunk_id, 1)
    uncounted = ClickRecord(event, "purr", 1, "", "x", 1.0, ClickOutcome.NO_IMPRESSION)
    await store.record_click(uncounted, judge=lambda _: ClickOutcome.COUNTED)
    assert not await store.has_clicks("purr")  # stored, but it does not count
    first = await record_click(
        store, ClickEvent("purr", hit.chunk_id, 2, "s1", "u1", 3.5), query_key="purr", weight=2
    )
    second = await record_click(store, ClickEvent("purr", hit.chunk_id, 1), query_key="purr")
    again = await record_click(store, ClickEvent("purr", hit.chunk_id, 1, "s1"), query_key="purr")
    assert first < second < again
    assert await store.has_clicks("purr")
    assert not await store.has_clicks("other")
    [other, *_] = await store.search_fulltext(query_terms("install"), limit=5)
    candidates = [hit.chunk_id, other.chunk_id, 999]
    clicked = await store.click_evidence("purr", candidates, collection="default")
    assert clicked.sources == 2  # "s1" twice, and the session-less click
    assert sorted(clicked.votes[hit.chunk_id]) == [1.0, 3.0] and len(clicked.votes) == 1
    assert clicked.documents == {hit.chunk_id: hit.document_id}
    assert clicked.own_clicks == {hit.chunk_id: 3}
    assert await store.click_evidence("other", [hit.chunk_id], collection="default") == (
        ClickEvidence(0, {})
    )
    assert await store.click_evidence("purr", [], collection="default") == ClickEvidence(0, {})
    elsewhere = await store.click_evidence("purr", [hit.chunk_id], collection="nowhere")
    assert elsewhere == ClickEvidence(0, {})
    with pytest.raises(NotFoundError):
        await record_click(store, ClickEvent("purr", 987654, 1), query_key="purr")


async def test_a_click_is_judged_on_the_counted_clicks_of_its_query(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    """What each cap is decided on: counted clicks only, of the same query, per session,
    impression (for the duplicate), user and key; an uncounted click stays uncounted."""
    await load(store, embedder)
    [hit] = await store.search_fulltext(["purr"], limit=5)
    [bark, *_] = await store.search_fulltext(query_terms("install"), limit=5)
    seen: list[ClickCounts] = []

    async def judged(event: ClickEvent, *, impression: str = "", key: str = "purr") -> ClickOutcome:
        def judge(counts: ClickCounts) -> ClickOutcome:
            seen.append(counts)
            return ClickOutcome.COUNTED

        record = ClickRecord(event, key, 1, impression, "src", 1.0)
        return (await store.record_click(record, judge=judge))[1]

    click = ClickEvent("purr", hit.chunk_id, 1, "s", "u", 0.0, "k")
    await judged(click, impression="i1")
    await judged(ClickEvent("purr", bark.chunk_id, 1, "s", "u", 0.0, "k"))
    await judged(ClickEvent("purr", bark.chunk_id, 1, "t", "", 0.0, ""), impression="i1")
    await judged(ClickEvent("purr", hit.chunk_id, 1, "", "", 0.0, ""), impression="i1")
    await judged(click, key="other query")
    uncounted = ClickRecord(click, "purr", 1, "", "src", 1.0, ClickOutcome.SESSION_CAP)
    assert (await store.record_click(uncounted, judge=lambda _: ClickOutcome.COUNTED))[1] is (
        ClickOutcome.SESSION_CAP
    )
    await judged(click)
    assert seen == [
        ClickCounts(False, 0, 0, 0),
        ClickCounts(False, 1, 1, 1),
        ClickCounts(False, 0, 0, 0),  # another session; another document of impression i1
        ClickCounts(True, 0, 0, 0),  # impression i1 already clicked this document
        ClickCounts(False, 0, 0, 0),  # another query
        ClickCounts(True, 2, 2, 2),  # session "s" clicked it; the capped click is not counted
    ]


async def test_reopen_keeps_data_and_checks_dimension(
    store: StorageAdapter, embedder: MiniLMEmbedder, database: DatabaseConfig
) -> None:
    await load(store, embedder)
    await store.close()
    reopened = build_store(database, dimension=embedder.dimension)
    await reopened.open()
    try:
        assert (await reopened.stats()).chunks == 6
        found = await reopened.search_fulltext(query_terms("install server port"), limit=10)
        expected = reference_bm25("install server port")
        assert {c.text: pytest.approx(c.score, rel=1e-6) for c in found} == expected
        query = embedder.embed(["cats"])[0]
        assert (await reopened.search_vector(query, limit=1))[0].document_path == "blog/cats.md"
    finally:
        await reopened.close()
    wrong = build_store(database, dimension=128)
    before = sum("_connection_worker_thread" in t.name for t in threading.enumerate())
    with pytest.raises(SchemaMismatchError):
        await wrong.open()
    assert await _connection_threads_settle_at(before)  # a failed open leaves none behind
    await wrong.close()


async def _connection_threads_settle_at(count: int, timeout: float = 5.0) -> bool:
    """Whether aiosqlite's threads (one per open connection, each keeping the process
    alive) come down to `count`; a closed connection's thread ends a moment after."""
    deadline = asyncio.get_running_loop().time() + timeout
    while sum("_connection_worker_thread" in t.name for t in threading.enumerate()) > count:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_export_and_import_round_trip(
    store: StorageAdapter, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    """What one adapter exports, another SQLite store imports with the same content."""
    await load(store, embedder)
    [hit] = await store.search_fulltext(["purr"], limit=5)
    await record_click(store, ClickEvent("purr", hit.chunk_id, 1, "s"), query_key="purr")
    exported = [(d, c) async for name, d, c in store.export_documents() if name == "default"]
    assert [d.path for d, _ in exported] == list(CORPUS)
    assert [len(c) for _, c in exported] == [len(t) for _, t in CORPUS.values()]
    [click] = [c async for c in store.export_clicks()]
    assert (click.collection, click.document_path, click.chunk_ordinal, click.session_id) == (
        "default",
        "blog/cats.md",
        0,
        "s",
    )

    copy = build_store(
        DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "copy.db"),
        dimension=embedder.dimension,
    )
    await copy.open()
    try:
        for document, chunks in exported:
            await store_one(copy, document, chunks)
        assert await copy.import_clicks([click]) == 1
        assert await copy.import_clicks([click]) == 0
        assert (await copy.stats()).clicks == 1
        query = embedder.embed(["kitten naps"])[0]
        mine = await store.search_vector(query, limit=3)
        theirs = await copy.search_vector(query, limit=3)
        assert [c.text for c in mine] == [c.text for c in theirs]
        assert [c.score for c in mine] == pytest.approx([c.score for c in theirs], abs=1e-6)
    finally:
        await copy.close()


async def test_vector_search_returns_more_than_the_index_search_breadth(
    store: StorageAdapter,
) -> None:
    """Asking for more neighbours than hnsw.ef_search (100), as many, or for a path that
    holds a third of the chunks, still returns them all."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(150, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for n in range(0, 150, 50):
        chunks = [Chunk("", "", f"text {i}", (f"t{i}",), vectors[i]) for i in range(n, n + 50)]
        await store_one(store, Document(f"bulk/{n}", "", "", str(n)), chunks)
    found = await store.search_vector(vectors[0], limit=140)
    assert len(found) == 140 and found[0].text == "text 0"
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)
    for _ in range(3):  # the search settings outlive each connection's return to the pool
        assert len(await store.search_vector(vectors[0], limit=100)) == 100
        assert len(await store.rank_vector(vectors[0], limit=100)) == 100
        assert (
            len(await store.search_vector(vectors[0], limit=50, where=PathPrefix("bulk/50"))) == 50
        )


async def test_concurrent_writers_keep_bm25_statistics_exact(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    """Writers replacing documents at once (sharing terms, so they contend for the same
    statistics rows) leave the statistics of the final corpus, without deadlock."""
    await load(store, embedder)
    vector = embedder.embed(["install"])[0]

    def text_of(writer: int, round_: int) -> str:
        return f"install server round {round_} " + "port " * (writer + round_ % 3)

    async def writer(w: int) -> None:
        for round_ in range(6):
            text = text_of(w, round_)
            chunk = Chunk("", "", text, tuple(analyze(text)), vector)
            await store_one(store, Document(f"w/{w}", "", "", f"{w}-{round_}"), [chunk])

    await asyncio.gather(*(writer(w) for w in range(6)))
    final = {text_of(w, 5): analyze(text_of(w, 5)) for w in range(6)}
    found = await store.search_fulltext(query_terms("install port server"), limit=50)
    expected = reference_bm25("install port server", final)
    assert {c.text: pytest.approx(c.score, rel=1e-6) for c in found} == expected
    assert (await store.stats()).chunks == 6 + 6


async def test_api_keys_are_stored_hashed_listed_and_revoked(store: StorageAdapter) -> None:
    token, key = new_key("ci pipeline", [Scope.WRITE, Scope.SEARCH], ["docs", "blog"])
    _, other = new_key("reader", [Scope.SEARCH])
    await store.create_api_key(key)
    await store.create_api_key(other)
    stored = await store.get_api_key(key.key_id)
    assert stored is not None
    assert (stored.name, stored.scopes, stored.collections) == (
        "ci pipeline",
        frozenset({Scope.WRITE, Scope.SEARCH}),
        ("blog", "docs"),
    )
    assert stored.secret_hash == key.secret_hash and token.split("_", 2)[2] not in repr(stored)
    assert stored.created_at and not stored.revoked_at
    assert verify(stored, parse_token(token)[1]) == stored
    assert await store.get_api_key("0" * 16) is None
    assert {k.key_id for k in await store.list_api_keys()} == {key.key_id, other.key_id}
    assert await store.revoke_api_key(key.key_id) is True
    assert await store.revoke_api_key(key.key_id) is False
    assert await store.revoke_api_key("0" * 16) is False
    revoked = await store.get_api_key(key.key_id)
    assert revoked is not None and revoked.revoked_at
    with pytest.raises(UnauthenticatedError, match="revoked"):
        verify(revoked, parse_token(token)[1])
    still = await store.get_api_key(other.key_id)
    assert still is not None and not still.revoked_at


async def test_sqlite_close_ends_every_reader_thread_even_one_in_use(tmp_path: Path) -> None:
    """A call cancelled at shutdown may still hold a reader while the store closes; its
    thread must end anyway, or it keeps the process alive after "DocFoundry stopped"."""
    from docfoundry_grpc.storage.sqlite import SQLiteAdapter

    before = sum("_connection_worker_thread" in t.name for t in threading.enumerate())
    store = SQLiteAdapter(tmp_path / "r.db", dimension=8)
    await store.open()
    release = asyncio.Event()
    held = asyncio.Event()

    async def hold_a_reader() -> None:
        async with store._read():
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold_a_reader())
    await held.wait()
    await store.close()
    release.set()
    await holder
    assert await _connection_threads_settle_at(before)


async def test_a_closed_sqlite_store_refuses_reads_at_once(tmp_path: Path) -> None:
    """Not after the reader wait (5 s) with a misleading "busy": the database is closed."""
    from docfoundry_grpc.storage.sqlite import SQLiteAdapter

    store = SQLiteAdapter(tmp_path / "c.db", dimension=8)
    await store.open()
    await store.close()
    started = asyncio.get_running_loop().time()
    with pytest.raises(StoreUnavailableError, match="not open"):
        await store.ping()
    assert asyncio.get_running_loop().time() - started < 1
