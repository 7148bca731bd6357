"""The benchmark's recall figure: exact neighbours by brute force, and PostgreSQL's HNSW
index measured against them through the adapter."""

from __future__ import annotations

import numpy as np

from bench.recall import EF_SEARCH, exact_ranking, measure_recall
from docfoundry_grpc.models import Chunk, Document, DocumentChunks
from docfoundry_grpc.storage import build_store

from .conftest import PostgresServer, fresh_database, postgres_config

DIMENSION = 384


def test_exact_ranking_is_nearest_first_by_cosine_whatever_the_vector_lengths() -> None:
    rng = np.random.default_rng(3)
    stored = rng.normal(size=(500, 16)).astype(np.float32)
    stored *= rng.uniform(0.1, 10, size=(500, 1)).astype(np.float32)  # lengths must not matter
    ids = np.arange(1000, 1500, dtype=np.int64)
    queries = rng.normal(size=(20, 16)).astype(np.float32)

    found = exact_ranking(ids, stored, queries, 7)

    unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    for query, neighbours in zip(queries, found, strict=True):
        distance = 1 - unit @ (query / np.linalg.norm(query))
        assert neighbours == ids[np.argsort(distance)[:7]].tolist()


async def test_recall_of_the_hnsw_index_on_postgresql(postgres_server: PostgresServer) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(300, DIMENSION)).astype(np.float32)
    queries = rng.normal(size=(25, DIMENSION)).astype(np.float32)
    async with fresh_database(postgres_server) as dsn:
        config = postgres_config(dsn)
        store = build_store(config, dimension=DIMENSION)
        await store.open()
        try:
            for n in range(0, len(vectors), 50):
                chunks = [
                    Chunk("", "", f"chunk {n + i}", ("chunk",), v)
                    for i, v in enumerate(vectors[n : n + 50])
                ]
                await store.replace_documents(
                    [DocumentChunks(Document(f"d{n}", "", "", f"d{n}"), chunks)]
                )
        finally:
            await store.close()

        results = await measure_recall(config, queries, limits=(5, 60), dimension=DIMENSION)

    measured = [(r.ef_search, r.limit, r.beyond_breadth) for r in results]
    widened = [(ef, limit, "widen") for limit in (5, 60) for ef in EF_SEARCH]
    iterative = [(ef, 60, "iterative") for ef in EF_SEARCH if ef < 60]
    assert sorted(measured) == sorted(widened + iterative)
    for result in results:
        # 300 points: the graph search reaches nearly all of them at any breadth.
        assert result.recall >= 0.9, result
        assert result.latency.count == len(queries)
