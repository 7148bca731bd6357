"""The PostgreSQL vector index: none for bulk loads, then built over the stored rows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import numpy as np
import pytest

from docfoundry_grpc.config import PostgresConfig
from docfoundry_grpc.filters import Range
from docfoundry_grpc.models import (
    Chunk,
    CollectionSpec,
    Document,
    DocumentChunks,
    VectorSource,
)
from docfoundry_grpc.storage.postgres import PostgresAdapter, filter_sql, schema, sql

from .conftest import PostgresServer, fresh_database, own_local_postgres

DIMENSION = 384


@pytest.fixture
async def config(postgres_server: PostgresServer) -> AsyncIterator[PostgresConfig]:
    async with fresh_database(postgres_server) as dsn:
        yield PostgresConfig(url=dsn, pool_min_size=1, pool_max_size=4, compact_interval=0)


async def vector_indexes(config: PostgresConfig) -> list[str]:
    connection = await asyncpg.connect(config.dsn())
    try:
        rows = await connection.fetch(
            "SELECT indexname FROM pg_indexes "
            "WHERE tablename = 'chunks' AND indexname LIKE 'chunks_embedding_%'"
        )
        return sorted(r[0] for r in rows)
    finally:
        await connection.close()


async def opened(config: PostgresConfig) -> PostgresAdapter:
    adapter = PostgresAdapter(config, dimension=DIMENSION)
    await adapter.open()
    return adapter


def unit_vectors(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIMENSION)).astype(np.float32)
    unit: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


async def load(adapter: PostgresAdapter, vectors: np.ndarray) -> None:
    await adapter.replace_documents(
        [
            DocumentChunks(
                Document(f"doc/{n}", "", "", f"h{n}"),
                [Chunk("", "", f"chunk {n}", ("chunk", str(n)), vector)],
            )
            for n, vector in enumerate(vectors)
        ]
    )


async def nearest_texts(adapter: PostgresAdapter, queries: np.ndarray, k: int) -> list[list[str]]:
    return [[c.text for c in await adapter.search_vector(q, limit=k)] for q in queries]


def exact_texts(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[list[str]]:
    order = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]
    return [[f"chunk {i}" for i in row] for row in order]


async def test_a_load_without_index_is_exact_then_a_start_builds_the_index(
    config: PostgresConfig, caplog: pytest.LogCaptureFixture
) -> None:
    vectors, queries = unit_vectors(300, seed=1), unit_vectors(5, seed=2)
    bulk = await opened(replace(config, vector_index="none"))
    try:
        assert await vector_indexes(config) == []
        await load(bulk, vectors)
        assert await nearest_texts(bulk, queries, 5) == exact_texts(vectors, queries, 5)
    finally:
        await bulk.close()

    with caplog.at_level(logging.INFO, logger="docfoundry_grpc.storage.postgres.schema"):
        indexed = await opened(config)
    try:
        assert await vector_indexes(config) == ["chunks_embedding_hnsw_1"]
        assert (
            "building the hnsw vector index of collection 'default' over 300 stored" in caplog.text
        )
        assert "built the hnsw vector index in" in caplog.text
        assert "shared_buffers" not in caplog.text  # 300 vectors fit any buffer cache
        # 300 points sit far below the graph's reach: HNSW finds the exact neighbours.
        assert await nearest_texts(indexed, queries, 5) == exact_texts(vectors, queries, 5)
    finally:
        await indexed.close()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="docfoundry_grpc.storage.postgres.schema"):
        await (await opened(config)).close()
    assert "building" not in caplog.text  # the index exists: nothing to build


async def test_a_start_warns_when_the_vector_index_outgrows_shared_buffers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = own_local_postgres({"shared_buffers": "256kB"})
    try:
        cluster.start()
        config = PostgresConfig(url=cluster.dsn, pool_min_size=1, pool_max_size=2)
        adapter = await opened(config)
        await load(adapter, unit_vectors(300, seed=1))
        await adapter.close()
        assert "shared_buffers" not in caplog.text  # the empty index fitted
        with caplog.at_level(logging.WARNING, logger="docfoundry_grpc.storage.postgres.schema"):
            await (await opened(config)).close()
    finally:
        cluster.destroy()
    assert "the vector indexes (" in caplog.text
    assert "larger than PostgreSQL's shared_buffers (256kB)" in caplog.text


async def test_switching_index_kinds_keeps_one_index(config: PostgresConfig) -> None:
    for kind, precision, expected in [
        ("ivfflat", "half", ["chunks_embedding_ivfflat_1"]),
        ("hnsw", "full", ["chunks_embedding_hnsw_1"]),
        ("hnsw", "half", ["chunks_embedding_hnsw_half_1"]),
        ("none", "half", []),
    ]:
        changed = replace(config, vector_index=kind, hnsw_precision=precision)
        await (await opened(changed)).close()
        assert await vector_indexes(config) == expected


async def vector_storage(config: PostgresConfig) -> tuple[str, list[str], int]:
    """The embedding column's storage, the chunks table's options and its TOAST bytes."""
    connection = await asyncpg.connect(config.dsn())
    try:
        row = await connection.fetchrow(
            "SELECT a.attstorage, c.reloptions, pg_relation_size(c.reltoastrelid) AS toast "
            "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE c.oid = 'chunks'::regclass AND a.attname = 'embedding'"
        )
        return row["attstorage"].decode(), list(row["reloptions"] or []), row["toast"]
    finally:
        await connection.close()


async def test_vectors_are_stored_in_their_rows(config: PostgresConfig) -> None:
    """A chunk of a few hundred words and its 384 floats pass the 2 kB past which PostgreSQL
    moves the vector out of line by default; it stays in the row, and a database set up
    before is set again at its next start."""
    adapter = await opened(replace(config, vector_index="none"))
    vectors, queries = unit_vectors(50, seed=5), unit_vectors(3, seed=6)
    words = " ".join(f"word{n}" for n in range(150))
    try:
        await adapter.replace_documents(
            [
                DocumentChunks(
                    Document(f"long/{n}", "", "", f"h{n}"),
                    [Chunk("", "", f"chunk {n} {words}", ("chunk",), vector)],
                )
                for n, vector in enumerate(vectors)
            ]
        )
        assert await vector_storage(config) == ("m", ["toast_tuple_target=8160"], 0)
        found = [
            [c.text.split()[1] for c in await adapter.search_vector(q, limit=3)] for q in queries
        ]
        assert found == [[t.split()[1] for t in row] for row in exact_texts(vectors, queries, 3)]
    finally:
        await adapter.close()

    connection = await asyncpg.connect(config.dsn())
    try:
        await connection.execute(
            "ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE EXTERNAL; "
            "ALTER TABLE chunks RESET (toast_tuple_target)"
        )
    finally:
        await connection.close()
    assert (await vector_storage(config))[:2] == ("e", [])
    await (await opened(config)).close()
    assert (await vector_storage(config))[:2] == ("m", ["toast_tuple_target=8160"])


async def test_packed_postings_are_stored_uncompressed(config: PostgresConfig) -> None:
    """Set at the first start, and set again at a start that finds them otherwise."""
    statement = (
        "SELECT string_agg(attstorage::text, '' ORDER BY attname) FROM pg_attribute "
        "WHERE attrelid = 'posting_segments'::regclass AND attname IN ('chunk_ids', 'tfs', 'dls')"
    )
    await (await opened(config)).close()
    connection = await asyncpg.connect(config.dsn())
    try:
        assert await connection.fetchval(statement) == "eee"
        await connection.execute(
            "ALTER TABLE posting_segments ALTER COLUMN tfs SET STORAGE EXTENDED"
        )
        assert await connection.fetchval(statement) == "eex"
        await (await opened(config)).close()
        assert await connection.fetchval(statement) == "eee"
    finally:
        await connection.close()


async def test_build_progress_reporting_stops_cleanly_when_cancelled(
    config: PostgresConfig,
) -> None:
    adapter = await opened(config)
    try:
        progress = asyncio.create_task(
            schema._log_build_progress(adapter._connections, "hnsw", every=0.01)
        )
        await asyncio.sleep(0.2)  # polls with no build running: nothing to report
        assert not progress.done()
        progress.cancel()
        with pytest.raises(asyncio.CancelledError):
            await progress
    finally:
        await adapter.close()


async def test_a_filter_that_starves_the_index_walk_still_gets_k_hits(
    config: PostgresConfig,
) -> None:
    """With the walk cut short (hnsw.max_scan_tuples 40, as a selective filter would leave
    it; sequential scans off, so the planner walks the index even over a small table), the
    few chunks the filter admits are searched exactly: k hits, the exact ones."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((3000, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[0]
    admin = await asyncpg.connect(config.dsn())
    try:
        database = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'ALTER DATABASE "{database}" SET hnsw.max_scan_tuples = 40')
        await admin.execute(f'ALTER DATABASE "{database}" SET enable_seqscan = off')
    finally:
        await admin.close()
    # filter_exact_max 0: every filter takes the walk, as a large collection's would.
    adapter = await opened(replace(config, hnsw_ef_search=10, filter_exact_max=0))
    try:
        await adapter.create_collection(CollectionSpec("small", VectorSource.CALLER, 8))
        await adapter.replace_documents(
            [
                DocumentChunks(
                    Document(f"doc/{n}", "", "", f"h{n}", {"bucket": float(n % 1000)}),
                    [Chunk("", "", f"chunk {n}", ("chunk",), vector)],
                )
                for n, vector in enumerate(vectors)
            ],
            collection="small",
        )
        collection = await adapter.get_collection("small")
        rare = Range("bucket", gte=7.0, lt=8.0)  # 3 chunks; no index serves a range
        condition, params = filter_sql.compile_filter(rare, alias="c", first_param=3)
        walk = sql.nearest(collection.id, 8, condition, rows=False, half=False)
        async with adapter._connections.acquire() as connection, connection.transaction():
            await connection.execute("SET LOCAL hnsw.ef_search = 320")  # the adapter's breadth
            assert len(await connection.fetch(walk, query, 3, *params)) < 3  # starved
        found = await adapter.search_vector(query, limit=3, where=rare, collection="small")
        admitted = np.arange(3000) % 1000 == 7
        order = np.argsort(-(vectors @ query) + np.where(admitted, 0, 10), kind="stable")[:3]
        assert [c.text for c in found] == [f"chunk {i}" for i in order]
        broad = Range("bucket", lt=500.0)
        walked = await adapter.search_vector(query, limit=5, where=broad, collection="small")
        assert len(walked) == 5 and all(int(c.text.split()[1]) % 1000 < 500 for c in walked)
    finally:
        await adapter.close()


@pytest.mark.parametrize("precision", ["half", "full"])
async def test_the_walk_scores_hits_in_full_precision(
    config: PostgresConfig, precision: str
) -> None:
    """The half-precision index only finds the candidates: every score is the float32
    cosine, as exact search and the SQLite backend give it, and the order follows it."""
    vectors, queries = unit_vectors(300, seed=3), unit_vectors(5, seed=4)
    adapter = await opened(replace(config, hnsw_precision=precision))
    try:
        await load(adapter, vectors)
        for query in queries:
            hits = await adapter.search_vector(query, limit=5)
            exact = [float(vectors[int(hit.text.split()[1])] @ query) for hit in hits]
            assert [hit.score for hit in hits] == pytest.approx(exact, abs=1e-6)
            assert exact == sorted(exact, reverse=True)
            assert [h.text for h in hits] == exact_texts(vectors, query[None, :], 5)[0]
    finally:
        await adapter.close()
