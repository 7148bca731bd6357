"""Collections, metadata and filters: the storage contract, run on every adapter.

Filters are checked against a reference evaluator written here from the documented
semantics (not the product's SQL), over documents whose metadata mixes the types a filter
must keep apart: numbers and numeric strings, booleans and 1, scalars and lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest

from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from docfoundry_grpc.filters import (
    All,
    AnyOf,
    Equals,
    Exists,
    Filter,
    Not,
    OneOf,
    PathPrefix,
    Range,
)
from docfoundry_grpc.models import (
    Chunk,
    ClickEvent,
    CollectionSpec,
    Document,
    DocumentChunks,
    MetadataValue,
    VectorSource,
)
from docfoundry_grpc.storage import StorageAdapter
from docfoundry_grpc.text import analyze, query_terms

from .conftest import record_click
from .test_storage import load, reference_bm25

META: dict[str, dict[str, MetadataValue]] = {
    "docs/api/v1.md": {"product": "api", "version": 1.0, "beta": False, "tags": ("rest", "x")},
    "docs/api/v2.md": {"product": "api", "version": 2.0, "beta": True, "tags": ("rest",)},
    "docs/cli/v2.md": {"product": "cli", "version": 2.5, "beta": False},
    "docs/cli/v3.md": {"product": "cli", "version": 3.0, "tags": ("x", "shell")},
    "docs/web/a.md": {"product": "web", "version": "2", "beta": 1.0},
    "docs/web/b.md": {"product": "web", "rank": -4.5, "tags": ()},
    "blog/news.md": {"product": "api", "version": 2.0, "label": "api"},
    "blog/empty.md": {},
}

FILTERS: list[Filter] = [
    Equals("product", "api"),
    Equals("version", 2.0),
    Equals("version", "2"),
    Equals("beta", True),
    Equals("beta", 1.0),
    Equals("tags", "x"),
    Equals("missing", "api"),
    OneOf("product", ("cli", "web")),
    OneOf("version", (1.0, 3.0, "2")),
    Range("version", gte=2.0),
    Range("version", gt=2.0, lt=3.0),
    Range("version", lte=1.0),
    Range("rank", lt=0.0),
    Exists("tags"),
    Exists("beta"),
    PathPrefix("docs/"),
    PathPrefix("docs/cli/"),
    All(()),
    AnyOf(()),
    Not(Equals("product", "api")),
    Not(Exists("version")),
    All((Equals("product", "api"), Not(Exists("label")))),
    AnyOf((PathPrefix("blog/"), Equals("tags", "shell"))),
    Not(AnyOf((Range("version", gte=2.0), Equals("beta", False)))),
]


def _equal(stored: MetadataValue, wanted: MetadataValue) -> bool:
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if isinstance(stored, str) or isinstance(wanted, str):
        return isinstance(stored, str) and isinstance(wanted, str) and stored == wanted
    return stored == wanted


def matches(node: Filter, path: str, metadata: Mapping[str, MetadataValue]) -> bool:
    """The reference: filter semantics as docs/api.md states them."""
    if isinstance(node, Equals | OneOf):
        wanted = (node.value,) if isinstance(node, Equals) else node.values
        if node.field not in metadata:
            return False
        stored = metadata[node.field]
        items = stored if isinstance(stored, tuple) else (stored,)
        return any(_equal(item, value) for item in items for value in wanted)
    if isinstance(node, Range):
        value = metadata.get(node.field)
        if isinstance(value, bool) or not isinstance(value, float):
            return False
        return (
            (node.gt is None or value > node.gt)
            and (node.gte is None or value >= node.gte)
            and (node.lt is None or value < node.lt)
            and (node.lte is None or value <= node.lte)
        )
    if isinstance(node, Exists):
        return node.field in metadata
    if isinstance(node, PathPrefix):
        return path.startswith(node.prefix)
    if isinstance(node, Not):
        return not matches(node.filter, path, metadata)
    if isinstance(node, All):
        return all(matches(child, path, metadata) for child in node.filters)
    assert isinstance(node, AnyOf)
    return any(matches(child, path, metadata) for child in node.filters)


def unit(seed: int, dimension: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


def guide_chunk(path: str, embedding: np.ndarray) -> Chunk:
    text = f"A guide to {path}."
    return Chunk("Guide", "guide", text, tuple(analyze(f"Guide\nGuide\n{text}")), embedding)


async def load_metadata_corpus(store: StorageAdapter, *, collection: str = "default") -> None:
    await store.replace_documents(
        [
            DocumentChunks(
                Document(path, "Guide", "", f"hash-{path}", metadata),
                [guide_chunk(path, unit(n, 384))],
            )
            for n, (path, metadata) in enumerate(META.items())
        ],
        collection=collection,
    )


@pytest.mark.parametrize("where", FILTERS, ids=[repr(f)[:60] for f in FILTERS])
async def test_every_filter_operator_matches_the_reference(
    store: StorageAdapter, where: Filter
) -> None:
    await load_metadata_corpus(store)
    expected = {path for path, metadata in META.items() if matches(where, path, metadata)}

    ranked = await store.rank_fulltext(["guid"], limit=100, where=where)
    nearest = await store.search_vector(unit(99, 384), limit=100, where=where)
    listed = await store.list_documents(where=where, limit=100)

    by_id = {c.chunk_id: c.document_path for c in await store.chunks(ranked)}
    assert set(by_id.values()) == expected
    assert {c.document_path for c in nearest} == expected
    assert [d.path for d in listed] == sorted(expected)


async def test_metadata_is_returned_by_hits_and_documents(store: StorageAdapter) -> None:
    await load_metadata_corpus(store)
    [hit] = await store.search_fulltext(["guid"], limit=1, where=PathPrefix("docs/api/v1"))
    assert hit.metadata == META["docs/api/v1.md"]
    document = await store.get_document("docs/cli/v3.md")
    assert (document.path, document.chunks, document.metadata) == (
        "docs/cli/v3.md",
        1,
        META["docs/cli/v3.md"],
    )
    assert document.collection == "default" and document.updated_at
    with pytest.raises(NotFoundError):
        await store.get_document("docs/none.md")


async def test_listing_pages_by_path(store: StorageAdapter) -> None:
    await load_metadata_corpus(store)
    seen: list[str] = []
    after = ""
    for _ in range(len(META)):  # bounded: a listing that repeats itself fails, not hangs
        page = await store.list_documents(after=after, limit=3)
        if not page:
            break
        seen += [d.path for d in page]
        after = page[-1].path
    assert seen == sorted(META)


async def test_delete_by_filter_removes_matching_documents_only(store: StorageAdapter) -> None:
    await load_metadata_corpus(store)
    where = Equals("product", "cli")
    result = await store.delete_documents(where)
    assert (result.documents_deleted, result.chunks_deleted) == (2, 2)
    remaining = {d.path for d in await store.list_documents(limit=100)}
    assert remaining == {p for p in META if META[p].get("product") != "cli"}
    assert {c for c, _ in await store.rank_fulltext(["guid"], limit=100)} == {
        c.chunk_id for c in await store.search_vector(unit(1, 384), limit=100)
    }
    assert (await store.stats()).chunks == len(remaining)


async def test_collections_are_created_listed_and_refused_twice(store: StorageAdapter) -> None:
    created = await store.create_collection(
        CollectionSpec("team-b", VectorSource.CALLER, 1536, "OpenAI vectors")
    )
    assert (created.name, created.vectors, created.dimension) == (
        "team-b",
        VectorSource.CALLER,
        1536,
    )
    with pytest.raises(AlreadyExistsError):
        await store.create_collection(CollectionSpec("team-b", VectorSource.MODEL, 384))
    names = [c.name for c in await store.list_collections()]
    assert names == ["default", "team-b"]
    default = await store.get_collection("default")
    assert (default.vectors, default.dimension) == (VectorSource.MODEL, 384)
    with pytest.raises(NotFoundError):
        await store.get_collection("nope")
    with pytest.raises(InvalidArgumentError):
        await store.delete_collection("default")
    with pytest.raises(NotFoundError):
        await store.search_fulltext(["x"], limit=3, collection="nope")


async def test_collections_keep_their_documents_and_statistics_apart(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    await load(store, embedder)
    query = "install server port"
    before = await store.search_fulltext(query_terms(query), limit=10)
    await store.create_collection(CollectionSpec("other", VectorSource.MODEL, 384))
    noisy = [
        DocumentChunks(
            Document(f"guides/install-{n}.md", "Install", "", f"h{n}"),
            [guide_chunk(f"install server {n}", unit(100 + n, 384))],
        )
        for n in range(5)
    ]
    await store.replace_documents(noisy, collection="other")

    after = await store.search_fulltext(query_terms(query), limit=10)
    assert [(c.chunk_id, c.score) for c in after] == [(c.chunk_id, c.score) for c in before]
    expected = reference_bm25(query)
    assert all(c.score == pytest.approx(expected[c.text], rel=1e-6) for c in after)
    theirs = await store.search_fulltext(query_terms(query), limit=10, collection="other")
    assert {c.document_path for c in theirs} == {d.document.path for d in noisy}
    vector = await store.search_vector(unit(100, 384), limit=20, collection="other")
    assert {c.document_path for c in vector} == {d.document.path for d in noisy}
    default_paths = {c.document_path for c in await store.search_vector(unit(100, 384), limit=20)}
    assert not default_paths & {d.document.path for d in noisy}
    assert await store.content_hashes(["guides/install-0.md"]) == {}
    assert await store.content_hashes(["guides/install-0.md"], collection="other") == {
        "guides/install-0.md": "h0"
    }


async def test_deleting_a_collection_removes_everything_it_held(
    store: StorageAdapter,
) -> None:
    await store.create_collection(CollectionSpec("gone", VectorSource.MODEL, 384))
    await load_metadata_corpus(store, collection="gone")
    [hit] = await store.search_fulltext(["guid"], limit=1, collection="gone")
    await record_click(store, ClickEvent("guide", hit.chunk_id, 1), query_key="guid")
    result = await store.delete_collection("gone")
    assert (result.documents_deleted, result.chunks_deleted, result.clicks_deleted) == (
        len(META),
        len(META),
        1,
    )
    stats = await store.stats()
    assert (stats.documents, stats.chunks, stats.clicks) == (0, 0, 0)
    with pytest.raises(NotFoundError):
        await store.get_collection("gone")
    await store.create_collection(CollectionSpec("gone", VectorSource.MODEL, 384))
    assert await store.search_fulltext(["guid"], limit=5, collection="gone") == []
    assert (await store.get_collection("gone")).documents == 0


async def test_a_1536_dimension_collection_with_caller_vectors(store: StorageAdapter) -> None:
    await store.create_collection(CollectionSpec("openai", VectorSource.CALLER, 1536))
    documents = [
        DocumentChunks(
            Document(f"doc-{n}.md", f"Doc {n}", "", f"h{n}"),
            [guide_chunk(f"doc {n}", unit(1000 + n, 1536))],
        )
        for n in range(30)
    ]
    await store.replace_documents(documents, collection="openai")
    for n in (0, 17, 29):
        [best, *_] = await store.search_vector(unit(1000 + n, 1536), limit=3, collection="openai")
        assert best.document_path == f"doc-{n}.md"
        assert math.isclose(best.score, 1.0, abs_tol=1e-5)
    # A selective filter still gets its hit from the 1536-d index.
    [only] = await store.search_vector(
        unit(5, 1536), limit=5, collection="openai", where=PathPrefix("doc-17")
    )
    assert only.document_path == "doc-17.md"


async def test_a_repeated_filter_sees_every_write(store: StorageAdapter) -> None:
    """Whatever a backend keeps of a filter between queries, writes are seen at once."""
    await load_metadata_corpus(store)
    cli = Equals("product", "cli")
    before = await store.rank_fulltext(["guid"], limit=100, where=cli)
    added = DocumentChunks(
        Document("docs/cli/v4.md", "Guide", "", "h4", {"product": "cli"}),
        [guide_chunk("docs/cli/v4.md", unit(50, 384))],
    )
    await store.replace_documents([added])
    after_add = await store.rank_fulltext(["guid"], limit=100, where=cli)
    near = await store.rank_vector(unit(50, 384), limit=100, where=cli)
    assert len(after_add) == len(before) + 1 and len(near) == len(before) + 1
    moved = DocumentChunks(
        Document("docs/cli/v4.md", "Guide", "", "h5", {"product": "web"}),
        [guide_chunk("docs/cli/v4.md", unit(50, 384))],
    )
    await store.replace_documents([moved])
    assert len(await store.rank_fulltext(["guid"], limit=100, where=cli)) == len(before)
    await store.delete_document("docs/cli/v3.md")
    assert len(await store.rank_vector(unit(50, 384), limit=100, where=cli)) == len(before) - 1
