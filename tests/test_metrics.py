"""Metric values after real traffic, read back from the registry the server was given."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from prometheus_client import start_http_server

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.embedding import MiniLMEmbedder

from .conftest import (
    Harness,
    PostgresServer,
    fresh_database,
    postgres_config,
    start_harness,
    stop_harness,
)
from .test_grpc import expect_status, indexed


def sample(harness: Harness, name: str, **labels: str) -> float:
    return harness.registry.get_sample_value(name, labels) or 0.0


async def scraped(harness: Harness, name: str, **labels: str) -> float | None:
    """A value from a collector that reads the database: scrapes run off the event loop."""
    return await asyncio.to_thread(harness.registry.get_sample_value, name, labels)


async def test_rpc_counts_codes_and_latency(server: Harness) -> None:
    await indexed(server)
    for _ in range(7):
        await server.search.Fulltext(pb.FulltextRequest(q="port"))
    await expect_status(
        server.search.Fulltext(pb.FulltextRequest(q="")), grpc.StatusCode.INVALID_ARGUMENT
    )
    await expect_status(
        server.search.RecordClick(pb.RecordClickRequest(query="q", chunk_id=99999, position=1)),
        grpc.StatusCode.NOT_FOUND,
    )
    metric = "docfoundry_grpc_requests_total"
    assert sample(server, metric, method="Fulltext", code="OK") == 7
    assert sample(server, metric, method="Fulltext", code="INVALID_ARGUMENT") == 1
    assert sample(server, metric, method="RecordClick", code="NOT_FOUND") == 1
    assert sample(server, metric, method="IndexDocuments", code="OK") == 1
    assert sample(server, "docfoundry_grpc_request_duration_seconds_count", method="Fulltext") == 8
    assert sample(server, "docfoundry_grpc_request_duration_seconds_sum", method="Fulltext") > 0
    assert sample(server, "docfoundry_grpc_requests_in_flight", method="Fulltext") == 0


async def test_search_storage_and_embedding_metrics(server: Harness) -> None:
    await indexed(server)
    backend = server.app.store.backend
    for _ in range(3):
        await server.search.Hybrid(pb.HybridRequest(q="rank fusion"))
    assert (
        sample(server, "docfoundry_search_duration_seconds_count", mode="hybrid", backend=backend)
        == 3
    )
    for operation in ("fulltext_rank", "semantic_rank", "has_clicks", "chunks"):
        assert (
            sample(
                server,
                "docfoundry_storage_operation_duration_seconds_count",
                operation=operation,
                backend=backend,
            )
            == 3
        )
    # Nobody clicked for this query, so no Hybrid looked the candidates' clicks up.
    storage_count = "docfoundry_storage_operation_duration_seconds_count"
    assert sample(server, storage_count, operation="document_clicks", backend=backend) == 0
    [hit, *_] = (await server.search.Hybrid(pb.HybridRequest(q="rank fusion"))).hits
    await server.search.RecordClick(
        pb.RecordClickRequest(query="rank fusion", chunk_id=hit.chunk_id, position=1)
    )
    await server.search.Hybrid(pb.HybridRequest(q="rank fusion"))
    assert sample(server, storage_count, operation="document_clicks", backend=backend) == 1
    assert (
        sample(
            server,
            "docfoundry_storage_operation_duration_seconds_count",
            operation="upsert",
            backend=backend,
        )
        == 1  # the corpus's documents arrive in one stream, so they are one write
    )
    assert sample(server, "docfoundry_embedding_batch_size_count") >= 2
    assert sample(server, "docfoundry_embedding_duration_seconds_sum") > 0
    assert (
        sample(
            server,
            "docfoundry_build_info",
            version="0.1.0",
            backend=backend,
            embedding_model="sentence-transformers/all-MiniLM-L6-v2",
        )
        == 1
    )


async def test_index_gauges_at_scrape_time(server: Harness) -> None:
    await indexed(server)
    backend = server.app.store.backend
    assert await scraped(server, "docfoundry_index_documents", backend=backend) == 5
    chunks = await scraped(server, "docfoundry_index_chunks", backend=backend)
    assert chunks is not None and chunks >= 5
    hit = (await server.search.Fulltext(pb.FulltextRequest(q="purr"))).hits[0]
    await server.search.RecordClick(
        pb.RecordClickRequest(query="purr", chunk_id=hit.chunk_id, position=1)
    )
    assert await scraped(server, "docfoundry_click_events", backend=backend) == 1
    backlog = await scraped(server, "docfoundry_fulltext_backlog_chunks", backend=backend)
    assert backlog == (await server.app.store.stats()).fulltext_backlog


async def test_scrape_on_the_event_loop_leaves_out_index_gauges(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """The index figures are read on the server's loop: a collect from that loop's own
    thread cannot wait for them (the loop would be stuck until the read timed out), so it
    gets the other metrics without them, and without a failed read."""
    await indexed(server)
    backend = server.app.store.backend
    assert server.registry.get_sample_value("docfoundry_index_chunks", {"backend": backend}) is None
    assert sample(server, "docfoundry_grpc_requests_total", method="IndexDocuments", code="OK") == 1
    assert await scraped(server, "docfoundry_index_documents", backend=backend) == 5
    assert "index statistics unavailable" not in caplog.text


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_fulltext_cache_counts_fetched_and_reused_segments(server: Harness) -> None:
    await indexed(server)
    assert await server.app.store.inner.compact() is not None  # type: ignore[attr-defined]
    for _ in range(2):
        await server.search.Fulltext(pb.FulltextRequest(q="purr"))  # one term, one segment
    lookups = "docfoundry_fulltext_cache_lookups_total"
    assert await scraped(server, lookups, backend="postgresql", result="miss") == 1
    assert await scraped(server, lookups, backend="postgresql", result="hit") == 1
    size = "docfoundry_fulltext_cache_bytes"
    used = await scraped(server, size, backend="postgresql", state="used")
    assert used is not None and 0 < used < 1000
    assert await scraped(server, size, backend="postgresql", state="capacity") == 256 * 2**20


async def test_pool_gauges_follow_concurrent_load(
    postgres_server: PostgresServer, embedder: MiniLMEmbedder
) -> None:
    async with fresh_database(postgres_server) as dsn:
        server = await start_harness(postgres_config(dsn, pool_max_size=12), embedder)
        try:
            await check_pool_gauges(server, embedder.embed(["port"])[0].tolist())
        finally:
            await stop_harness(server)


async def check_pool_gauges(server: Harness, vector: list[float]) -> None:
    """Each Hybrid call holds two connections at once (its legs run concurrently), so
    concurrent calls must grow the pool from its minimum of one."""
    gauge = "docfoundry_pool_connections"
    assert await scraped(server, gauge, backend="postgresql", state="max_size") == 12
    before = await scraped(server, gauge, backend="postgresql", state="size")
    assert before == 1
    await asyncio.gather(
        *(
            server.search.Hybrid(pb.HybridRequest(q=f"port {i}", query_vector=vector))
            for i in range(30)
        )
    )
    after = await scraped(server, gauge, backend="postgresql", state="size")
    assert after is not None and after > before
    assert await scraped(server, gauge, backend="postgresql", state="in_use") == 0
    pool = server.app.store.inner._connections._pool  # type: ignore[attr-defined]
    held = [await pool.acquire() for _ in range(3)]
    assert await scraped(server, gauge, backend="postgresql", state="in_use") == 3
    for connection in held:
        await pool.release(connection)
    pool = server.app.store.inner._connections._pool  # type: ignore[attr-defined]
    for index in ("postings_pkey", "chunks_embedding_hnsw_1"):
        reported = await scraped(
            server, "docfoundry_index_scans", backend="postgresql", index=index
        )
        direct = await pool.fetchval(
            "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = $1", index
        )
        assert reported == float(direct)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_metrics_endpoint_serves_text_format(server: Harness) -> None:
    await indexed(server)
    http_server, thread = start_http_server(0, "127.0.0.1", registry=server.registry)
    try:
        url = f"http://127.0.0.1:{http_server.server_port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        text = body.decode()
        assert 'docfoundry_grpc_requests_total{code="OK",method="IndexDocuments"} 1.0' in text
        assert 'docfoundry_index_documents{backend="sqlite"} 5.0' in text
    finally:
        http_server.shutdown()
        http_server.server_close()
        thread.join(5)
