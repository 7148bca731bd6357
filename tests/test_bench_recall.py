"""The benchmark's recall figure: exact neighbours by brute force, and PostgreSQL's HNSW
index measured against them through the adapter."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import numpy as np
import numpy.typing as npt

from bench.recall import EF_SEARCH, exact_ranking, measure_recall, measure_sqlite_recall
from docfoundry_grpc.config import AnnConfig, DatabaseConfig
from docfoundry_grpc.models import Chunk, Document, DocumentChunks
from docfoundry_grpc.storage import StorageAdapter, build_store

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


async def stored(config: DatabaseConfig, vectors: npt.NDArray[np.float32]) -> None:
    store = build_store(config, dimension=DIMENSION)
    await store.open()
    try:
        await load(store, vectors)
    finally:
        await store.close()


async def load(store: StorageAdapter, vectors: npt.NDArray[np.float32]) -> None:
    for n in range(0, len(vectors), 50):
        chunks = [
            Chunk("", "", f"chunk {n + i}", ("chunk",), v)
            for i, v in enumerate(vectors[n : n + 50])
        ]
        await store.replace_documents([DocumentChunks(Document(f"d{n}", "", "", f"d{n}"), chunks)])


async def test_recall_of_the_hnsw_index_on_postgresql(postgres_server: PostgresServer) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(300, DIMENSION)).astype(np.float32)
    queries = rng.normal(size=(25, DIMENSION)).astype(np.float32)
    async with fresh_database(postgres_server) as dsn:
        config = postgres_config(dsn)
        await stored(config, vectors)
        results = await measure_recall(config, queries, limits=(5, 60), dimension=DIMENSION)
        connection = await asyncpg.connect(dsn)
        try:
            left = await connection.fetch(
                "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'chunks_embedding%'"
            )
        finally:
            await connection.close()

    assert [r[0] for r in left] == ["chunks_embedding_hnsw_1"]  # the extra one dropped
    measured = [(r.index, r.ef_search, r.limit) for r in results]
    expected = [
        (f"hnsw {precision}", ef, limit)
        for limit in (5, 60)
        for precision in ("full", "half")
        for ef in EF_SEARCH
    ]
    assert measured == expected
    for result in results:
        # 300 points: the graph search reaches nearly all of them at any breadth.
        assert result.recall >= 0.9, result
        assert result.latency.count == len(queries)


async def test_recall_of_the_sqlite_graph(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(300, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # as validation stores them
    queries = rng.normal(size=(25, DIMENSION)).astype(np.float32)
    config = DatabaseConfig(sqlite_path=tmp_path / "r.db", sqlite_ann=AnnConfig(threshold=100))
    await stored(config, vectors)
    results = await measure_sqlite_recall(config, queries, limits=(5, 60), dimension=DIMENSION)

    measured = [(r.index, r.ef_search, r.limit) for r in results]
    assert measured == [
        ("exact scan", 0, 5),
        ("exact scan", 0, 60),
        ("usearch f16", 300, 5),
        ("usearch f16", 300, 60),
    ]
    assert [r.recall for r in results[:2]] == [1.0, 1.0]
    assert min(r.recall for r in results[2:]) >= 0.9
