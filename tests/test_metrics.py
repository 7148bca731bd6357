"""Metric values after real traffic, read back from the registry the server was given."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client import start_http_server

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.admission import AdmissionConfig, LimitConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.metrics import GRPC_CODE_NAMES
from docfoundry_grpc.models import ClickOutcome

from .conftest import (
    Harness,
    PostgresServer,
    fresh_database,
    postgres_config,
    start_harness,
    stop_harness,
)
from .corpus import documents
from .test_grpc import expect_status, indexed

SEARCH = "docfoundry.v1.SearchService"
FULLTEXT = {"grpc_type": "unary", "grpc_service": SEARCH, "grpc_method": "Fulltext"}
CLICK = {**FULLTEXT, "grpc_method": "RecordClick"}
INDEX = {
    "grpc_type": "bidi_stream",
    "grpc_service": "docfoundry.v1.IndexService",
    "grpc_method": "IndexDocuments",
}

OUTCOMES = [o.value for o in ClickOutcome]


def sample(harness: Harness, name: str, **labels: str) -> float:
    return harness.registry.get_sample_value(name, labels) or 0.0


async def scraped(harness: Harness, name: str, **labels: str) -> float | None:
    """A value from a collector that reads the database: scrapes run off the event loop."""
    return await asyncio.to_thread(harness.registry.get_sample_value, name, labels)


async def open_connections(server: Harness) -> float:
    """Connections the pool holds open: those in use plus the idle ones."""
    states = [
        await scraped(server, "docfoundry_pool_connections", backend="postgresql", state=state)
        for state in ("in_use", "idle")
    ]
    return sum(value or 0.0 for value in states)


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
    handled = "grpc_server_handled_total"
    assert sample(server, handled, **FULLTEXT, grpc_code="OK") == 7
    assert sample(server, handled, **FULLTEXT, grpc_code="InvalidArgument") == 1
    assert sample(server, handled, **CLICK, grpc_code="NotFound") == 1
    assert sample(server, handled, **INDEX, grpc_code="OK") == 1
    assert sample(server, "grpc_server_started_total", **FULLTEXT) == 8
    assert sample(server, "grpc_server_handling_seconds_count", **FULLTEXT) == 8
    assert sample(server, "grpc_server_handling_seconds_sum", **FULLTEXT) > 0
    # A unary call counts its request, and its response only when it succeeds.
    assert sample(server, "grpc_server_msg_received_total", **FULLTEXT) == 8
    assert sample(server, "grpc_server_msg_sent_total", **FULLTEXT) == 7
    # The stream's messages: the corpus's documents in, an outcome for each out.
    sent = len(documents())
    assert sample(server, "grpc_server_msg_received_total", **INDEX) == sent
    assert sample(server, "grpc_server_msg_sent_total", **INDEX) == sent


async def test_health_check_is_told_apart_from_other_services(server: Harness) -> None:
    await server.health.Check(health_pb2.HealthCheckRequest())
    await server.search.Health(pb.HealthRequest())
    health_check = {"grpc_type": "unary", "grpc_service": "grpc.health.v1.Health"}
    checked = {**health_check, "grpc_method": "Check", "grpc_code": "OK"}
    assert sample(server, "grpc_server_handled_total", **checked) == 1
    search_health = {**health_check, "grpc_service": SEARCH, "grpc_method": "Health"}
    assert sample(server, "grpc_server_handled_total", **search_health, grpc_code="OK") == 1


async def test_process_and_python_metrics_are_exported(server: Harness) -> None:
    assert sample(server, "process_resident_memory_bytes") > 10 * 2**20
    assert sample(server, "process_open_fds") > 0
    assert sample(server, "process_cpu_seconds_total") > 0
    info = [s for m in server.registry.collect() if m.name == "python_info" for s in m.samples]
    assert info and info[0].labels["implementation"] == "CPython"
    gc_runs = server.registry.get_sample_value("python_gc_collections_total", {"generation": "0"})
    assert gc_runs is not None


async def test_admission_usage_and_limits_are_separate_series(server: Harness) -> None:
    await indexed(server)
    calls = "docfoundry_admission_calls"
    assert sample(server, "docfoundry_admission_concurrency_limit", kind="search") == 4
    assert sample(server, "docfoundry_admission_queue_limit", kind="ingest") == 8
    assert server.registry.get_sample_value(calls, {"kind": "search", "state": "running"}) == 0
    limiter = server.app.engine.admission.search
    async with limiter.slot():
        assert sample(server, calls, kind="search", state="running") == 1
    assert sample(server, calls, kind="search", state="queued") == 0


async def test_serving_gauge_follows_health(server: Harness) -> None:
    assert sample(server, "docfoundry_serving") == 1
    await server.app._set_serving(False)
    assert sample(server, "docfoundry_serving") == 0
    await server.app._set_serving(True)


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
    assert sample(server, storage_count, operation="click_evidence", backend=backend) == 0
    shown = await server.search.Hybrid(pb.HybridRequest(q="rank fusion"))
    await server.search.RecordClick(
        pb.RecordClickRequest(chunk_id=shown.hits[0].chunk_id, impression_id=shown.impression_id)
    )
    await server.search.Hybrid(pb.HybridRequest(q="rank fusion"))
    assert sample(server, storage_count, operation="click_evidence", backend=backend) == 1
    await server.search.RecordClick(
        pb.RecordClickRequest(query="rank fusion", chunk_id=shown.hits[0].chunk_id, position=1)
    )
    clicks = {o: sample(server, "docfoundry_clicks_total", outcome=o) for o in OUTCOMES}
    assert clicks == {**dict.fromkeys(OUTCOMES, 0), "counted": 1, "no_impression": 1}
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
    assert sample(server, "grpc_server_handled_total", **INDEX, grpc_code="OK") == 1
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
    used = await scraped(server, "docfoundry_fulltext_cache_bytes", backend="postgresql")
    assert used is not None and 0 < used < 1000
    capacity = "docfoundry_fulltext_cache_capacity_bytes"
    assert await scraped(server, capacity, backend="postgresql") == 256 * 2**20


async def test_pool_gauges_follow_concurrent_load(
    postgres_server: PostgresServer, embedder: MiniLMEmbedder
) -> None:
    async with fresh_database(postgres_server) as dsn:
        # All 30 calls queue rather than some being refused on a slow machine: the test is
        # about the pool, not admission.
        patient = AdmissionConfig(search=LimitConfig(concurrency=4, max_queue=64, max_wait=60))
        server = await start_harness(
            postgres_config(dsn, pool_max_size=12), embedder, admission=patient
        )
        try:
            await check_pool_gauges(server, embedder.embed(["port"])[0].tolist())
        finally:
            await stop_harness(server)


async def check_pool_gauges(server: Harness, vector: list[float]) -> None:
    """Each Hybrid call holds two connections at once (its legs run concurrently), so
    concurrent calls must grow the pool from its minimum of one."""
    gauge = "docfoundry_pool_connections"
    assert await scraped(server, "docfoundry_pool_connections_max", backend="postgresql") == 12
    assert await scraped(server, "docfoundry_pool_connections_min", backend="postgresql") == 1
    assert await scraped(server, "docfoundry_pool_waiting_requests", backend="postgresql") == 0
    before = await open_connections(server)
    assert before == 1
    await asyncio.gather(
        *(
            server.search.Hybrid(pb.HybridRequest(q=f"port {i}", query_vector=vector))
            for i in range(30)
        )
    )
    after = await open_connections(server)
    assert after > before
    assert await scraped(server, gauge, backend="postgresql", state="in_use") == 0
    pool = server.app.store.inner._connections._pool  # type: ignore[attr-defined]
    held = [await pool.acquire() for _ in range(3)]
    assert await scraped(server, gauge, backend="postgresql", state="in_use") == 3
    for connection in held:
        await pool.release(connection)
    pool = server.app.store.inner._connections._pool  # type: ignore[attr-defined]
    for index in ("postings_pkey", "chunks_embedding_hnsw_1"):
        reported = await scraped(
            server, "docfoundry_index_scans_total", backend="postgresql", index=index
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
        assert (
            'grpc_server_handled_total{grpc_code="OK",grpc_method="IndexDocuments",'
            'grpc_service="docfoundry.v1.IndexService",grpc_type="bidi_stream"} 1.0'
        ) in text
        assert 'docfoundry_index_documents{backend="sqlite"} 5.0' in text
    finally:
        http_server.shutdown()
        http_server.server_close()
        thread.join(5)


def test_every_status_code_has_its_grpc_ecosystem_spelling() -> None:
    assert set(GRPC_CODE_NAMES) == {code.name for code in grpc.StatusCode}
