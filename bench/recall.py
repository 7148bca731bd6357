"""What the approximate vector index gives up, and what each search breadth costs.

PostgreSQL answers vector queries from an HNSW graph, which may miss true neighbours;
SQLite scans every vector, so it has nothing to measure here. The exact answer comes from
the vectors PostgreSQL stores, read back once and ranked by cosine distance in numpy.
Each breadth (`hnsw.ef_search`) is measured through the storage adapter opened with that
setting, at k (Semantic) and at Hybrid's candidate window, so the figures include what the
adapter does when a limit exceeds the breadth: it widens the breadth to the limit for that
query. The alternative, leaving pgvector's iterative scan to fetch past the breadth, is
measured beside it on a plain connection running the adapter's own statement.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

import asyncpg
import numpy as np
import numpy.typing as npt
from pgvector.asyncpg import register_vector

from docfoundry_grpc.config import DatabaseConfig
from docfoundry_grpc.storage import build_store
from docfoundry_grpc.storage.postgres import sql as adapter_sql

from .floor import WARMUP
from .results import Latency, RecallResult

# The bench's corpus lives in the default collection (id 1) of the server's model.
RANK_VECTOR = adapter_sql.nearest(1, 384, "true", rows=False)

F32 = npt.NDArray[np.float32]
EF_SEARCH = (40, 64, 100, 200)
_ALL_VECTORS = "SELECT id, embedding FROM chunks"


async def _stored_vectors(dsn: str) -> tuple[npt.NDArray[np.int64], F32]:
    connection = await asyncpg.connect(dsn)
    try:
        await register_vector(connection)
        rows = await connection.fetch(_ALL_VECTORS)
    finally:
        await connection.close()
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    vectors = np.stack([row[1].to_numpy() for row in rows]).astype(np.float32)
    return ids, vectors


def _unit(vectors: F32) -> F32:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1, norms)).astype(np.float32)


def exact_ranking(
    ids: npt.NDArray[np.int64], stored: F32, queries: F32, limit: int
) -> list[list[int]]:
    """The `limit` chunk ids nearest each query by cosine distance, nearest first."""
    similarity = _unit(queries) @ _unit(stored).T
    top = np.argpartition(-similarity, min(limit, len(ids) - 1), axis=1)[:, :limit]
    nearest_first = np.take_along_axis(
        top, np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1), axis=1
    )
    return [ids[row].tolist() for row in nearest_first]


async def _timed_ranking(
    rank: Callable[[F32], Awaitable[Iterable[int]]], queries: F32
) -> tuple[list[set[int]], Latency]:
    """The ids each query's ranking returned, and the ranking's latency after a warm-up."""
    for vector in queries[:WARMUP]:
        await rank(vector)
    found, samples = [], []
    for vector in queries:
        started = time.perf_counter()
        ranked = await rank(vector)
        samples.append((time.perf_counter() - started) * 1000)
        found.append(set(ranked))
    return found, Latency.of(samples)


async def _approximate(
    config: DatabaseConfig, ef_search: int, queries: F32, limit: int, dimension: int
) -> tuple[list[set[int]], Latency]:
    postgres = dataclasses.replace(config.postgres, hnsw_ef_search=ef_search)
    store = build_store(dataclasses.replace(config, postgres=postgres), dimension=dimension)
    await store.open()

    async def rank(vector: F32) -> list[int]:
        return [chunk_id for chunk_id, _ in await store.rank_vector(vector, limit=limit)]

    try:
        return await _timed_ranking(rank, queries)
    finally:
        await store.close()


async def _iterative(
    dsn: str, ef_search: int, queries: F32, limit: int
) -> tuple[list[set[int]], Latency]:
    settings = {"hnsw.ef_search": str(ef_search), "hnsw.iterative_scan": "relaxed_order"}
    connection = await asyncpg.connect(dsn, server_settings=settings)

    async def rank(vector: F32) -> list[int]:
        rows = await connection.fetch(RANK_VECTOR, vector, limit)
        return [int(row[0]) for row in rows]

    try:
        await register_vector(connection)
        return await _timed_ranking(rank, queries)
    finally:
        await connection.close()


def _recall(found: Sequence[set[int]], exact: Sequence[set[int]]) -> float:
    return float(np.mean([len(f & e) / max(len(e), 1) for f, e in zip(found, exact, strict=True)]))


async def measure_recall(
    config: DatabaseConfig, queries: F32, *, limits: Sequence[int], dimension: int
) -> list[RecallResult]:
    """Recall@limit of the HNSW index against exact search, per ef_search and limit; where
    the limit exceeds the breadth, also with an iterative scan in place of widening."""
    dsn = config.postgres.dsn()
    ids, stored = await _stored_vectors(dsn)
    ranking = exact_ranking(ids, stored, queries, max(limits))
    out = []
    for limit in limits:
        exact = [set(nearest[:limit]) for nearest in ranking]
        for ef_search in EF_SEARCH:
            found, latency = await _approximate(config, ef_search, queries, limit, dimension)
            out.append(RecallResult(ef_search, limit, "widen", _recall(found, exact), latency))
            if limit > ef_search:
                found, latency = await _iterative(dsn, ef_search, queries, limit)
                out.append(
                    RecallResult(ef_search, limit, "iterative", _recall(found, exact), latency)
                )
    return out
