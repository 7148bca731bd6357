"""The SQLite backend's approximate vector search: exact below the threshold; above it the
graph's candidates plus the exact tail, re-ranked exactly, in step with writes, deletions,
compactions and filters, and a build that stops when its server closes."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.config import AnnConfig, DatabaseConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.models import Chunk, Document, DocumentChunks, VectorGraphStats
from docfoundry_grpc.storage.sqlite import SQLiteAdapter
from docfoundry_grpc.storage.vector_index import VectorIndex

from .conftest import start_harness, stop_harness
from .test_metrics import scraped

DIMENSION = 16
SMALL = AnnConfig(threshold=500)  # the default graph, over a small collection


def clustered(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    """Unit vectors around a few centres, as embeddings cluster by topic."""
    centres = rng.standard_normal((8, DIMENSION))
    vectors = centres[rng.integers(0, 8, n)] + 0.5 * rng.standard_normal((n, DIMENSION))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def exact(
    vectors: dict[int, npt.NDArray[np.float32]], query: npt.NDArray[np.float32], k: int
) -> list[int]:
    ids = sorted(vectors)
    scores = np.stack([vectors[i] for i in ids]) @ query
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


def loaded(n: int, seed: int = 0) -> tuple[VectorIndex, dict[int, npt.NDArray[np.float32]]]:
    rng = np.random.default_rng(seed)
    vectors = clustered(rng, n)
    index = VectorIndex(DIMENSION, SMALL)
    index.add(list(range(n)), vectors)
    return index, dict(enumerate(vectors))


def recall(index: VectorIndex, live: dict[int, npt.NDArray[np.float32]], k: int = 10) -> float:
    queries = clustered(np.random.default_rng(99), 50)
    hits = 0
    for query in queries:
        found = [i for i, _ in index.search(query, limit=k)]
        hits += len(set(found) & set(exact(live, query, k)))
    return hits / (k * len(queries))


def test_below_the_threshold_search_is_exact_and_no_graph_is_due() -> None:
    index, live = loaded(400)
    assert not index.graph_due
    query = clustered(np.random.default_rng(1), 1)[0]
    assert [i for i, _ in index.search(query, limit=10)] == exact(live, query, 10)
    assert not index.approximate


def test_above_the_threshold_the_graph_answers_with_exact_scores() -> None:
    index, live = loaded(3000)
    assert index.graph_due
    index.build_graph()
    assert index.approximate and index.graph is not None and len(index.graph) == 3000
    assert not index.graph_due
    assert recall(index, live) >= 0.95
    query = clustered(np.random.default_rng(2), 1)[0]
    for chunk_id, score in index.search(query, limit=10):
        assert score == pytest.approx(float(live[chunk_id] @ query), abs=1e-6)


def test_a_build_is_urgent_once_the_waiting_rows_reach_the_graph_size() -> None:
    index, _ = loaded(900)  # past the threshold (500), not twice past it
    assert index.graph_due and not index.graph_urgent
    index.add(list(range(900, 3000)), clustered(np.random.default_rng(14), 2100))
    assert index.graph_urgent  # 3,000 rows wait: over twice the threshold
    index.build_graph()
    index.add(list(range(3000, 5100)), clustered(np.random.default_rng(15), 2100))
    assert index.graph_due and not index.graph_urgent  # 2,100 wait; the graph holds 3,000
    index.remove(list(range(900)))  # deleted rows the graph holds count as waiting
    assert index.graph_urgent


def test_rows_written_after_the_build_are_found_before_the_next_one() -> None:
    index, live = loaded(3000)
    index.build_graph()
    query = clustered(np.random.default_rng(3), 1)[0]
    index.add([5000], query[None, :])
    live[5000] = query
    assert index.search(query, limit=1)[0][0] == 5000
    assert not index.graph_due  # one row: the tail is searched exactly until it grows


def test_deleted_chunks_never_come_back_and_the_next_build_drops_them() -> None:
    index, live = loaded(3000)
    index.build_graph()
    queries = clustered(np.random.default_rng(4), 20)
    nearest = {i for q in queries for i, _ in index.search(q, limit=10)}
    index.remove(sorted(nearest))
    for chunk_id in nearest:
        del live[chunk_id]
    for query in queries:
        found = [i for i, _ in index.search(query, limit=10)]
        assert not set(found) & nearest and len(found) == 10
    doomed = [i for i in range(3000) if i % 10 < 7]  # enough tombstones to make a build due
    index.remove(doomed)
    for chunk_id in doomed:
        live.pop(chunk_id, None)
    assert index.graph_due
    index.build_graph()
    assert index.graph is not None and len(index.graph) == len(live)
    assert recall(index, live) >= 0.95


def test_a_compaction_keeps_which_rows_the_graph_holds() -> None:
    index, live = loaded(3000)
    index.build_graph()
    index.remove(list(range(1500)))
    for chunk_id in range(1500):
        del live[chunk_id]
    index.add([7000, 7001], clustered(np.random.default_rng(5), 2))
    index.compact()
    assert index.matrix.unindexed_count == 2  # the two new rows, not the moved ones
    query = clustered(np.random.default_rng(6), 1)[0]
    found = {i for i, _ in index.search(query, limit=3000)}
    assert found == set(live) | {7000, 7001}


def test_filters_selective_ones_exactly_broad_ones_through_the_graph() -> None:
    index, live = loaded(3000)
    index.build_graph()
    query = clustered(np.random.default_rng(7), 1)[0]
    few = np.arange(0, 3000, 10, dtype=np.int64)  # 300 chunks: below the threshold
    found = [i for i, _ in index.search(query, limit=10, only=few)]
    assert found == exact({i: live[i] for i in few.tolist()}, query, 10)
    many = np.arange(0, 3000, 2, dtype=np.int64)  # half the collection: the graph
    found = [i for i, _ in index.search(query, limit=10, only=many)]
    assert set(found) <= set(many.tolist()) and len(found) == 10
    best = exact({i: live[i] for i in many.tolist()}, query, 10)
    assert len(set(found) & set(best)) >= 8


def test_a_stopped_build_leaves_no_graph_and_searches_stay_exact() -> None:
    index, live = loaded(3000)
    index.stop()
    assert not index.graph_due
    index.build_graph()
    assert index.graph is None
    query = clustered(np.random.default_rng(8), 1)[0]
    assert [i for i, _ in index.search(query, limit=10)] == exact(live, query, 10)


def test_searches_beside_a_build_in_a_thread_stay_right() -> None:
    index, live = loaded(6000)
    builder = threading.Thread(target=index.build_graph)
    builder.start()
    queries = clustered(np.random.default_rng(9), 30)
    while builder.is_alive():
        for query in queries:
            found = index.search(query, limit=10)
            assert len(found) == 10
    builder.join()
    assert index.approximate
    assert recall(index, live) >= 0.95


async def test_a_reopened_sqlite_store_builds_its_graph_and_finds_the_same(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(10)
    vectors = clustered(rng, 800)
    documents = [
        DocumentChunks(
            Document(f"d{i}.md", "", "", f"d{i}"), [Chunk("", "", f"chunk {i}", ("chunk",), v)]
        )
        for i, v in enumerate(vectors)
    ]
    store = SQLiteAdapter(tmp_path / "a.db", dimension=DIMENSION, ann=SMALL)
    await store.open()
    await store.replace_documents(documents)
    await store.close()
    exact_store = SQLiteAdapter(tmp_path / "a.db", dimension=DIMENSION, ann=AnnConfig(0))
    await exact_store.open()
    queries = clustered(np.random.default_rng(11), 20)
    expected = [await exact_store.rank_vector(q, limit=10) for q in queries]
    await exact_store.close()

    store = SQLiteAdapter(tmp_path / "a.db", dimension=DIMENSION, ann=SMALL)
    await store.open()
    try:
        index = store._index("default")
        while store._tasks:  # the build the open started
            await next(iter(store._tasks))
        assert index.vectors.approximate
        got = [await store.rank_vector(q, limit=10) for q in queries]
        pairs = zip(got, expected, strict=True)
        overlap = sum(len({i for i, _ in g} & {i for i, _ in e}) for g, e in pairs)
        assert overlap / (10 * len(queries)) >= 0.95
    finally:
        await store.close()


async def test_a_server_past_the_threshold_searches_its_graph_and_reports_it(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    """Through gRPC: 60 chunks over a threshold of 50, caller vectors, a graph built in the
    background; Semantic then answers from the graph as the exact scan would, and the
    metrics say how many chunks the graph holds."""
    database = DatabaseConfig(sqlite_path=tmp_path / "g.db", sqlite_ann=AnnConfig(threshold=50))
    harness = await start_harness(database, embedder)
    try:
        await harness.collections.CreateCollection(
            pb.CreateCollectionRequest(
                name="own", vectors=pb.VECTOR_SOURCE_CALLER, dimension=DIMENSION
            )
        )
        vectors = clustered(np.random.default_rng(12), 60)
        requests = [
            pb.IndexDocumentsRequest(
                document=pb.Document(
                    path=f"d{i}.md",
                    chunks=[pb.ChunkInput(text=f"chunk {i}", embedding=v.tolist())],
                ),
                collection="own",
            )
            for i, v in enumerate(vectors)
        ]
        async for _ in harness.index.IndexDocuments(iter(requests)):
            pass
        store = harness.app.store
        # A build waits for writes to pause (GRAPH_QUIET_SECONDS): none has begun yet.
        assert (await store.stats()).vector_graph == VectorGraphStats(0, 60, 0)
        for _ in range(200):  # the build runs in the background: a few ms for 60 chunks
            if (await store.stats()).vector_graph == VectorGraphStats(60, 0, 0):
                break
            await asyncio.sleep(0.05)
        assert await scraped(harness, "docfoundry_vector_graph_chunks", backend="sqlite") == 60
        assert (
            await scraped(harness, "docfoundry_vector_graph_backlog_chunks", backend="sqlite") == 0
        )
        live = dict(enumerate(vectors))
        for query in clustered(np.random.default_rng(13), 5):
            reply = await harness.search.Semantic(
                pb.SemanticRequest(query_vector=query.tolist(), k=5, collection="own")
            )
            found = [int(hit.document_path[1:-3]) for hit in reply.hits]
            assert found == exact(live, query, 5)
    finally:
        await stop_harness(harness)


def documents_of(vectors: npt.NDArray[np.float32], start: int = 0) -> list[DocumentChunks]:
    return [
        DocumentChunks(
            Document(f"d{i}.md", "", "", f"d{i}"), [Chunk("", "", f"chunk {i}", ("chunk",), v)]
        )
        for i, v in enumerate(vectors, start=start)
    ]


async def settled(store: SQLiteAdapter) -> None:
    while store._tasks:
        await next(iter(store._tasks))


async def stored(path: Path, vectors: npt.NDArray[np.float32], *, graph: bool) -> None:
    """A SQLite file holding `vectors`, closed by a server; with `graph`, one whose graph
    was built before it closed (and so kept)."""
    store = SQLiteAdapter(path, dimension=DIMENSION, ann=SMALL)
    await store.open()
    await store.replace_documents(documents_of(vectors))
    if graph:
        store._index("default").graph_start.poke(now=True)
        await settled(store)
    await store.close()


async def test_a_graph_kept_at_close_is_taken_up_at_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "k.db"
    vectors = clustered(np.random.default_rng(20), 800)
    await stored(path, vectors, graph=True)
    saved = path.with_name("k.db.graphs") / "1.usearch"
    assert saved.exists()

    # Meanwhile a tool (not the server: it keeps no graph) deletes some chunks and adds one.
    tool = SQLiteAdapter(path, dimension=DIMENSION, ann=SMALL, exclusive=False)
    await tool.open()
    await tool.delete_document("d799.md")
    for n in range(10):
        await tool.delete_document(f"d{n}.md")
    newcomer = clustered(np.random.default_rng(21), 1)
    await tool.replace_documents(documents_of(newcomer, start=900))
    await tool.close()

    with caplog.at_level(logging.INFO, logger="docfoundry_grpc.storage.sqlite.adapter"):
        store = SQLiteAdapter(path, dimension=DIMENSION, ann=SMALL)
        await store.open()
    try:
        assert "took up the saved vector graph of 'default' (789 chunks)" in caplog.text
        index = store._index("default").vectors
        assert index.approximate and not store._tasks  # nothing to build: 1 row waits
        assert index.matrix.unindexed_count == 1 and index.matrix.dropped_count == 11
        hits = await store.search_vector(newcomer[0], limit=3)
        assert hits[0].text == "chunk 900"
        live = {i: v for i, v in enumerate(vectors) if 10 <= i < 799} | {900: newcomer[0]}
        queries = clustered(np.random.default_rng(22), 20)
        for query in queries:
            found = [c.text for c in await store.search_vector(query, limit=10)]
            expected = [f"chunk {i}" for i in exact(live, query, 10)]
            assert len(set(found) & set(expected)) >= 9
    finally:
        await store.close()


async def test_a_saved_graph_of_another_database_under_the_same_name_is_not_taken_up(
    tmp_path: Path,
) -> None:
    """Same chunk ids, other vectors (a restore, a file replaced): no entry of the old
    graph counts, and the server builds its own."""
    path = tmp_path / "s.db"
    await stored(path, clustered(np.random.default_rng(24), 1200), graph=True)
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    other = clustered(np.random.default_rng(25), 1200)
    tool = SQLiteAdapter(path, dimension=DIMENSION, ann=SMALL, exclusive=False)
    await tool.open()
    await tool.replace_documents(documents_of(other))
    await tool.close()

    store = SQLiteAdapter(path, dimension=DIMENSION, ann=SMALL)
    await store.open()
    try:
        index = store._index("default").vectors
        assert index.matrix.unindexed_count == 1200 and index.matrix.dropped_count == 1200
        await settled(store)  # the build the open started
        assert index.matrix.unindexed_count == 0 and index.matrix.dropped_count == 0
        for n in (3, 600, 1199):
            assert (await store.search_vector(other[n], limit=1))[0].text == f"chunk {n}"
    finally:
        await store.close()


async def test_an_unusable_saved_graph_is_replaced_by_a_build(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "u.db"
    vectors = clustered(np.random.default_rng(23), 800)
    await stored(path, vectors, graph=False)
    saved = path.with_name("u.db.graphs") / "1.usearch"
    saved.parent.mkdir(exist_ok=True)
    saved.write_bytes(b"not a graph" * 100)
    with caplog.at_level(logging.WARNING, logger="docfoundry_grpc.storage.vector_index"):
        store = SQLiteAdapter(path, dimension=DIMENSION, ann=SMALL)
        await store.open()
    try:
        assert "ignoring the saved vector graph" in caplog.text
        await settled(store)
        assert store._index("default").vectors.approximate
        query = vectors[5]
        assert (await store.search_vector(query, limit=1))[0].text == "chunk 5"
    finally:
        await store.close()
    assert saved.stat().st_size > 1100  # the new graph took its place
