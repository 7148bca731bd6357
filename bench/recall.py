"""What the approximate vector indexes give up, and what each search breadth costs.

PostgreSQL answers vector queries from an HNSW graph over the float32 vectors
(POSTGRES_HNSW_PRECISION=full, the default) or over their half-precision casts (half);
SQLite, past SQLITE_ANN_THRESHOLD chunks, from a usearch HNSW graph in the server.
Either may miss true neighbours. The exact answer comes from the stored vectors, read back
once and ranked by cosine in numpy.

PostgreSQL: both precisions are measured on the same rows in one run (the bench builds the
index the server does not use, measures, and drops it), each at the breadths of
`EF_SEARCH`, at k (Semantic) and at Hybrid's candidate window, running the adapter's own
statement with hnsw.ef_search at max(breadth, limit): a walk returns at most that many rows,
and the adapter widens it so. SQLite: the adapter itself, exact and with its graph, at k
and at the window.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

import asyncpg
import numpy as np
import numpy.typing as npt
from pgvector.asyncpg import register_vector

from docfoundry_grpc.config import AnnConfig, DatabaseConfig
from docfoundry_grpc.storage import StorageAdapter
from docfoundry_grpc.storage.postgres import sql as adapter_sql

from .floor import WARMUP, open_settled
from .results import Latency, RecallResult

F32 = npt.NDArray[np.float32]
EF_SEARCH = (40, 64, 100, 200)
PRECISIONS = ("full", "half")
# Every stored vector; the bench's corpus is the default collection (id 1).
_ALL_VECTORS = "SELECT id, embedding FROM chunks"
log = logging.getLogger("bench")


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


def _sqlite_vectors(path: Path, dimension: int) -> tuple[npt.NDArray[np.int64], F32]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute(_ALL_VECTORS).fetchall()
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
    return ids, vectors.reshape(len(rows), dimension)


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


def _recall(found: Sequence[set[int]], exact: Sequence[set[int]]) -> float:
    return float(np.mean([len(f & e) / max(len(e), 1) for f, e in zip(found, exact, strict=True)]))


async def _walks(
    connection: asyncpg.Connection,
    precision: str,
    queries: F32,
    limit: int,
    exact: list[set[int]],
    dimension: int,
) -> list[RecallResult]:
    statement = adapter_sql.nearest(1, dimension, "true", rows=False, half=precision == "half")

    async def rank(vector: F32) -> list[int]:
        rows = await connection.fetch(statement, vector, limit)
        return [int(row[0]) for row in rows]

    out = []
    for ef_search in EF_SEARCH:
        await connection.execute(f"SET hnsw.ef_search = {max(ef_search, limit)}")
        found, latency = await _timed_ranking(rank, queries)
        out.append(
            RecallResult(f"hnsw {precision}", ef_search, limit, _recall(found, exact), latency)
        )
    return out


async def measure_recall(
    config: DatabaseConfig, queries: F32, *, limits: Sequence[int], dimension: int
) -> list[RecallResult]:
    """Recall@limit of PostgreSQL's HNSW index at both precisions against exact search, per
    breadth and limit. Builds the index of the precision the server does not use (logged:
    minutes at 100k chunks) and drops it afterwards."""
    dsn = config.postgres.dsn()
    ids, stored = await _stored_vectors(dsn)
    ranking = exact_ranking(ids, stored, queries, max(limits))
    served = config.postgres.hnsw_precision
    other = "full" if served == "half" else "half"
    pg = config.postgres
    extra = adapter_sql.hnsw_create(1, dimension, pg.hnsw_m, pg.hnsw_ef_construction, other)
    connection = await asyncpg.connect(dsn)
    try:
        await register_vector(connection)
        await connection.execute(f"SET maintenance_work_mem = '{pg.index_build_memory}'")
        started = time.perf_counter()
        await connection.execute(extra)
        log.info("built the %s-precision index in %.0f s", other, time.perf_counter() - started)
        out = []
        for limit in limits:
            exact = [set(nearest[:limit]) for nearest in ranking]
            for precision in PRECISIONS:
                out += await _walks(connection, precision, queries, limit, exact, dimension)
        return out
    finally:
        await connection.execute(adapter_sql.hnsw_drop(1, other))
        await connection.close()


async def measure_sqlite_recall(
    config: DatabaseConfig, queries: F32, *, limits: Sequence[int], dimension: int
) -> list[RecallResult]:
    """Recall@limit of the SQLite adapter with its graph (the server's settings; none below
    SQLITE_ANN_THRESHOLD) against exact search, and the exact scan's own latency."""
    ids, stored = _sqlite_vectors(config.sqlite_path, dimension)
    ranking = exact_ranking(ids, stored, queries, max(limits))
    out = []
    exact_config = dataclasses.replace(config, sqlite_ann=AnnConfig(threshold=0))
    for name, variant in (("exact scan", exact_config), ("usearch f16", config)):
        store = await open_settled(variant, dimension)
        try:
            graph = (await store.stats()).vector_graph
            if variant is config and (graph is None or not graph.chunks):
                break  # below SQLITE_ANN_THRESHOLD: no graph, exact search only
            for limit in limits:
                exact = [set(nearest[:limit]) for nearest in ranking]
                found, latency = await _timed_ranking(_ranker(store, limit), queries)
                ef_search = variant.sqlite_ann.ef_search if variant.sqlite_ann.threshold else 0
                out.append(RecallResult(name, ef_search, limit, _recall(found, exact), latency))
        finally:
            await store.close()
    return out


def _ranker(store: StorageAdapter, limit: int) -> Callable[[F32], Awaitable[list[int]]]:
    async def rank(vector: F32) -> list[int]:
        return [chunk_id for chunk_id, _ in await store.rank_vector(vector, limit=limit)]

    return rank
