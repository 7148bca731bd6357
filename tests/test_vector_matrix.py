"""The SQLite backend's vector matrix: exact search over the live rows, whatever the order of
writes, deletions and compactions, also a compaction running in a thread beside them."""

from __future__ import annotations

import random
import threading

import numpy as np
import numpy.typing as npt
import pytest

from docfoundry_grpc.storage.vector_matrix import VectorMatrix

DIMENSION = 8


def unit(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    vectors = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    normalized: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalized


def assert_searches_like(matrix: VectorMatrix, live: dict[int, npt.NDArray[np.float32]]) -> None:
    assert set(matrix.live_ids().tolist()) == set(live)
    assert len(matrix) == len(live)
    query = unit(np.random.default_rng(len(live)), 1)[0]
    ids = sorted(live)
    scores = np.stack([live[i] for i in ids]) @ query
    best = [ids[i] for i in np.argsort(-scores, kind="stable")[:10]]
    found = matrix.search(query, limit=10)
    assert [i for i, _ in found] == best
    assert [s for _, s in found] == pytest.approx(sorted(scores, reverse=True)[:10], abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_a_compaction_in_a_thread_beside_writes_keeps_search_exact(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    matrix = VectorMatrix(DIMENSION)
    live: dict[int, npt.NDArray[np.float32]] = {}
    next_id, compactions, during = 1, 0, 0
    for _ in range(30):
        vectors = unit(rng, 4000)
        ids = list(range(next_id, next_id + 4000))
        next_id += 4000
        matrix.add(ids, vectors)
        live.update(zip(ids, vectors, strict=True))
        gone = pick.sample(sorted(live), k=len(live) * 2 // 3)
        matrix.remove(gone)
        for chunk_id in gone:
            del live[chunk_id]
        if matrix.compaction_due:
            compacting = threading.Thread(target=matrix.compact)
            compacting.start()
            writes = 0
            while compacting.is_alive() and writes < 50:  # write and delete while it copies
                writes += 1
                more = unit(rng, 5)
                more_ids = list(range(next_id, next_id + 5))
                next_id += 5
                matrix.add(more_ids, more)
                live.update(zip(more_ids, more, strict=True))
                victim = more_ids[0] if writes % 2 else next(iter(live))
                matrix.remove([victim])
                del live[victim]
                during += 1
            compacting.join()
            compactions += 1
        assert_searches_like(matrix, live)
    assert compactions > 5 and during > 0  # some writes did land while a copy ran
    matrix.compact()
    assert not matrix.compaction_due
    assert_searches_like(matrix, live)


@pytest.mark.parametrize("seed", range(3))
def test_a_rerank_reads_every_live_row_the_graph_lacks_and_no_other(seed: int) -> None:
    """With every id the graph holds as its candidates, a rerank is the exact search; a
    rerank after each change (writes, deletions, a graph taking rows in, a compaction)
    shows whether the rows it keeps for the graph's tail followed the change."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    matrix = VectorMatrix(DIMENSION)
    in_graph: set[int] = set()  # the ids a graph would hold, deleted ones included
    next_id = 1
    for step in range(60):
        action = pick.choice(["add", "remove", "index", "compact"] if step else ["add"])
        if action == "add":
            ids = list(range(next_id, next_id + 50))
            next_id += 50
            matrix.add(ids, unit(rng, 50))
        elif action == "remove" and len(matrix):
            matrix.remove(pick.sample(sorted(matrix.live_ids().tolist()), k=len(matrix) // 4))
        elif action == "index":
            taken, _, dropped = matrix.unindexed()
            matrix.mark_indexed(taken, dropped)
            in_graph = (in_graph | set(taken.tolist())) - set(dropped.tolist())
            assert matrix.unindexed_count == 0
        elif action == "compact":
            matrix.compact()
        query = unit(rng, 1)[0]
        candidates = np.array(sorted(in_graph), dtype=np.int64)
        reranked = matrix.rerank(query, candidates, limit=20)
        exact = matrix.search(query, limit=20)
        assert [i for i, _ in reranked] == [i for i, _ in exact]
        assert [s for _, s in reranked] == pytest.approx([s for _, s in exact], abs=1e-6)
