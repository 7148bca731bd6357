"""Where each statement of the storage adapters must stop, run on every adapter: a
collection sees only its own documents, counts and clicks; a path prefix is a prefix;
exports keep chunk order; a reopened store ranks and deletes as before.

These are the storage contract's edges that a dropped `WHERE` condition, a flipped
comparison or a prefix turned into a substring match would cross (see
docs/mutation-testing.md)."""

from __future__ import annotations

import asyncio

import numpy as np

from docfoundry_grpc.config import DatabaseConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.filters import Exists, PathPrefix
from docfoundry_grpc.keys import new_key
from docfoundry_grpc.models import (
    Chunk,
    ClickEvent,
    CollectionSpec,
    Document,
    DocumentChunks,
    Scope,
    StoredClick,
    UpsertOutcome,
    VectorSource,
)
from docfoundry_grpc.storage import StorageAdapter, build_store

from .conftest import PostgresServer, fresh_database, postgres_config, record_click

DIMENSION = 3


def vector(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def chunks(*texts: str, direction: tuple[float, float, float] = (1, 0, 0)) -> list[Chunk]:
    return [
        Chunk(f"h{i}", f"a{i}", text, tuple(text.lower().split()), vector(*direction))
        for i, text in enumerate(texts)
    ]


async def put(
    store: StorageAdapter,
    collection: str,
    path: str,
    *texts: str,
    title: str = "",
    direction: tuple[float, float, float] = (1, 0, 0),
) -> UpsertOutcome:
    document = Document(path, title or path, f"https://x/{path}", f"hash-{collection}-{title}")
    [outcome] = await store.replace_documents(
        [DocumentChunks(document, chunks(*texts, direction=direction))], collection=collection
    )
    return outcome


async def two_collections(store: StorageAdapter) -> None:
    """'one' (created first, so the lower id) and 'two' hold a document at the same path."""
    for name in ("one", "two"):
        await store.create_collection(CollectionSpec(name, VectorSource.CALLER, DIMENSION))
    await put(store, "one", "same.md", "alpha words", "alpha more", title="One")
    await put(store, "one", "only-one.md", "alpha only", title="Solo")
    await put(store, "two", "same.md", "alpha other", title="Two")


async def test_a_path_in_two_collections_is_two_documents(store: StorageAdapter) -> None:
    await two_collections(store)
    assert await store.content_hashes(["same.md"], collection="one") == {"same.md": "hash-one-One"}
    assert await store.content_hashes(["same.md"], collection="two") == {"same.md": "hash-two-Two"}
    assert (await store.get_document("same.md", collection="one")).title == "One"
    assert (await store.get_document("same.md", collection="two")).title == "Two"
    assert await put(store, "two", "same.md", "alpha again", title="Two again") is (
        UpsertOutcome.REPLACED
    )
    one = await store.get_document("same.md", collection="one")
    assert (one.title, one.chunks) == ("One", 2)
    two = await store.get_document("same.md", collection="two")
    assert (two.title, two.chunks) == ("Two again", 1)


async def test_each_collection_counts_lists_and_deletes_its_own(store: StorageAdapter) -> None:
    await two_collections(store)
    counts = {c.name: (c.documents, c.chunks) for c in await store.list_collections()}
    assert counts["one"] == (2, 3) and counts["two"] == (1, 1)
    for name, expected in (("one", (2, 3)), ("two", (1, 1))):
        got = await store.get_collection(name)
        assert (got.documents, got.chunks) == expected
    listed = await store.list_documents(collection="two", limit=10)
    assert [(d.path, d.title) for d in listed] == [("same.md", "Two")]
    filtered = await store.list_documents(collection="two", where=Exists("x"), limit=10)
    assert filtered == []
    deleted = await store.delete_documents(None, collection="one")
    assert (deleted.documents_deleted, deleted.chunks_deleted) == (2, 3)
    assert (await store.get_document("same.md", collection="two")).title == "Two"
    assert (await store.get_collection("two")).documents == 1


async def test_filtered_searches_stay_in_their_collection(store: StorageAdapter) -> None:
    await two_collections(store)
    where = PathPrefix("same")
    found = await store.search_fulltext(["alpha"], limit=10, collection="two", where=where)
    assert [c.text for c in found] == ["alpha other"]
    near = await store.search_vector(vector(1, 0, 0), limit=10, collection="two", where=where)
    assert [c.text for c in near] == ["alpha other"]
    ranked = await store.rank_vector(vector(1, 0, 0), limit=10, collection="two", where=where)
    assert [i for i, _ in ranked] == [near[0].chunk_id]


async def test_deleting_a_collection_leaves_the_others(store: StorageAdapter) -> None:
    await two_collections(store)
    await store.delete_collection("one")
    assert [c.name for c in await store.list_collections()] == ["default", "two"]
    assert (await store.get_document("same.md", collection="two")).title == "Two"


async def test_a_path_prefix_matches_the_start_only(store: StorageAdapter) -> None:
    await store.create_collection(CollectionSpec("docs", VectorSource.CALLER, DIMENSION))
    for path in ("guides/a.md", "old/guides/b.md", "guidesx.md", "Guides/c.md", "guide/d.md"):
        await put(store, "docs", path, "alpha text")
    where = PathPrefix("guides/")
    listed = await store.list_documents(collection="docs", where=where, limit=10)
    assert [d.path for d in listed] == ["guides/a.md"]
    found = await store.search_fulltext(["alpha"], limit=10, collection="docs", where=where)
    assert [c.document_path for c in found] == ["guides/a.md"]
    near = await store.search_vector(vector(1, 0, 0), limit=10, collection="docs", where=where)
    assert [c.document_path for c in near] == ["guides/a.md"]
    deleted = await store.delete_documents(where, collection="docs")
    assert deleted.documents_deleted == 1
    assert len(await store.list_documents(collection="docs", limit=10)) == 4


async def test_deleting_a_document_counts_its_own_clicks(store: StorageAdapter) -> None:
    await store.create_collection(CollectionSpec("docs", VectorSource.CALLER, DIMENSION))
    await put(store, "docs", "first.md", "alpha first")
    await put(store, "docs", "second.md", "beta second")
    [first] = await store.search_fulltext(["alpha"], limit=1, collection="docs")
    [second] = await store.search_fulltext(["beta"], limit=1, collection="docs")
    await record_click(store, ClickEvent("alpha", first.chunk_id, 1), query_key="alpha")
    for _ in range(2):
        await record_click(store, ClickEvent("beta", second.chunk_id, 1), query_key="beta")
    result = await store.delete_document("first.md", collection="docs")
    assert (result.chunks_deleted, result.clicks_deleted) == (1, 1)
    assert (await store.stats()).clicks == 2


async def test_exports_keep_chunk_order_and_imports_find_their_collection(
    store: StorageAdapter,
) -> None:
    await two_collections(store)
    texts = ["zeta first", "alpha second", "mu third"]
    await put(store, "two", "ordered.md", *texts)
    exported = {
        (name, document.path): [c.text for c in stored]
        async for name, document, stored in store.export_documents()
    }
    assert exported[("two", "ordered.md")] == texts
    assert exported[("one", "same.md")] == ["alpha words", "alpha more"]
    click = StoredClick(
        id=7,
        query="q",
        query_key="q",
        collection="two",
        document_path="same.md",
        chunk_ordinal=0,
        position=1,
        session_id="",
        user_id="",
        dwell_time=0.0,
        created_at="2024-01-02 03:04:05",
    )
    assert await store.import_clicks([click]) == 1
    [back] = [c async for c in store.export_clicks()]
    assert (back.id, back.collection, back.document_path, back.chunk_ordinal) == (
        7,
        "two",
        "same.md",
        0,
    )


async def test_api_keys_are_listed_oldest_first(store: StorageAdapter) -> None:
    made = set()
    for name in ("first", "second", "third"):
        _, key = new_key(name, frozenset({Scope.SEARCH}))
        await store.create_api_key(key)
        made.add(key.key_id)
    listed = await store.list_api_keys()
    assert {k.key_id for k in listed} == made
    assert [k.created_at for k in listed] == sorted(k.created_at for k in listed)


async def test_a_reopened_store_ranks_ties_by_id_and_forgets_deleted_chunks(
    store: StorageAdapter, database: DatabaseConfig, embedder: MiniLMEmbedder
) -> None:
    await store.create_collection(CollectionSpec("docs", VectorSource.CALLER, DIMENSION))
    for path in ("a.md", "b.md", "c.md"):
        await put(store, "docs", path, f"alpha {path}", direction=(1, 1, 0))
    before = await store.rank_vector(vector(1, 1, 0), limit=10, collection="docs")
    await store.close()
    reopened = build_store(database, dimension=embedder.dimension)
    await reopened.open()
    try:
        after = await reopened.rank_vector(vector(1, 1, 0), limit=10, collection="docs")
        assert [i for i, _ in after] == [i for i, _ in before] == sorted(i for i, _ in before)
        await reopened.delete_document("a.md", collection="docs")
        rest = await reopened.rank_vector(vector(1, 1, 0), limit=10, collection="docs")
        assert [i for i, _ in rest] == [i for i, _ in before][1:]
    finally:
        await reopened.close()
        await asyncio.sleep(0)


async def test_a_filtered_postgresql_index_walk_keeps_the_filter(
    postgres_server: PostgresServer, embedder: MiniLMEmbedder
) -> None:
    """PostgreSQL walks the vector index with the filter applied when the filter admits
    more chunks than it searches exactly (here: always); the nearest chunks it walks past
    must not come back."""
    async with fresh_database(postgres_server) as dsn:
        store = build_store(postgres_config(dsn, filter_exact_max=0), dimension=embedder.dimension)
        await store.open()
        try:
            await store.create_collection(CollectionSpec("docs", VectorSource.CALLER, DIMENSION))
            for n in range(3):
                await put(store, "docs", f"keep/{n}.md", "alpha", direction=(n + 1, 5, 0))
                await put(store, "docs", f"drop/{n}.md", "alpha", direction=(5, n, 0))
            where = PathPrefix("keep/")
            near = await store.search_vector(
                vector(1, 0, 0), limit=2, collection="docs", where=where
            )
            assert [c.document_path for c in near] == ["keep/2.md", "keep/1.md"]
        finally:
            await store.close()
