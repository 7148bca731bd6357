"""The defects an attacker or an overloaded caller found, each pinned by a test that fails
without its fix: malformed messages, impossible clicks, health Watch and List, deadlines
told apart from cancellations, a server-side time limit, admission control, a taken port,
a second process on one SQLite file, passwords in logs, oversized messages and documents,
and a cancelled or shut-down ingest that keeps embedding."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import numpy as np
import numpy.typing as npt
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status
from prometheus_client import CollectorRegistry

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_grpc.admission import Admission, AdmissionConfig, LimitConfig
from docfoundry_grpc.chunking import chunk_content
from docfoundry_grpc.config import DatabaseConfig, PostgresConfig, Settings
from docfoundry_grpc.devdb import free_port
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.errors import DeadlineExceededError
from docfoundry_grpc.ingest import EMBED_SLICE
from docfoundry_grpc.metrics import ServiceMetrics
from docfoundry_grpc.models import ContentType
from docfoundry_grpc.service.app import build_app
from docfoundry_grpc.service.interceptors import ServiceInterceptor
from docfoundry_grpc.storage.postgres.connections import Connections

from .conftest import (
    Harness,
    PostgresServer,
    fresh_database,
    run_cli,
    start_harness,
    stop_harness,
)
from .test_grpc import indexed
from .test_server_process import ROOT, wait_for_health

INVALID = grpc.StatusCode.INVALID_ARGUMENT


async def send_raw(channel: grpc.aio.Channel, path: str, payload: bytes) -> grpc.StatusCode:
    call: Any = channel.unary_unary(path)
    try:
        await call(payload, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_malformed_messages_are_invalid_argument(server: Harness) -> None:
    await indexed(server)
    before = (await server.search.Health(pb.HealthRequest())).chunk_count
    fulltext = "/docfoundry.v1.SearchService/Fulltext"
    assert await send_raw(server.channel, fulltext, b"\x0a\x02\xff\xfe") == INVALID  # bad UTF-8
    assert await send_raw(server.channel, fulltext, b"\x0a\x09\xff") == INVALID  # truncated
    assert await send_raw(server.channel, fulltext, b"\x0a\x04port") == grpc.StatusCode.OK
    stream: Any = server.channel.stream_stream("/docfoundry.v1.IndexService/IndexDocuments")
    good = pb.IndexDocumentsRequest(
        document=pb.Document(path="ok.md", content="fine")
    ).SerializeToString()
    bad_path = b"\x0a\x04\x0a\x02\xc3\x28"  # document { path: invalid UTF-8 }

    async def bad_then_good() -> AsyncIterator[bytes]:
        yield bad_path
        # Sent at once, the good message can race the server's refusal, and the client then
        # reports its own failed send (INTERNAL) instead of the server's status.
        await asyncio.sleep(1.0)
        yield good

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in stream(bad_then_good()):
            pass
    assert refused.value.code() == INVALID
    assert "malformed" in (refused.value.details() or "")
    assert (await server.search.Health(pb.HealthRequest())).chunk_count == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"position": 0}, "position"),
        ({"position": -1}, "position"),
        ({"position": 1001}, "position"),
        ({"dwell_time": -math.inf}, "dwell_time"),
        ({"dwell_time": math.inf}, "dwell_time"),
        ({"dwell_time": math.nan}, "dwell_time"),
        ({"dwell_time": -1.0}, "dwell_time"),
        ({"chunk_id": 0}, "chunk_id"),
        ({"chunk_id": -5}, "chunk_id"),
        ({"query": ""}, "q"),
        ({"query": "a\x00b"}, "q"),
        ({"session_id": "s" * 300}, "session_id"),
    ],
)
async def test_clicks_that_cannot_have_happened_are_invalid(
    server: Harness, changes: dict[str, Any], field: str
) -> None:
    await indexed(server)
    hit = (await server.search.Fulltext(pb.FulltextRequest(q="purr"))).hits[0]
    valid: dict[str, Any] = {
        "query": "purr",
        "chunk_id": hit.chunk_id,
        "position": 1,
        "dwell_time": 3.0,
    }
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await server.search.RecordClick(pb.RecordClickRequest(**{**valid, **changes}))
    assert refused.value.code() == INVALID
    status = rpc_status.from_call(refused.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad_request) for d in status.details)
    assert [v.field for v in bad_request.field_violations] == [field]
    assert (await server.search.Health(pb.HealthRequest())).click_count == 0
    await server.search.RecordClick(pb.RecordClickRequest(**valid))


async def test_health_watch_streams_and_list_lists(server: Harness) -> None:
    statuses = await server.health.List(health_pb2.HealthListRequest(), timeout=5)
    assert set(statuses.statuses) == {
        "",
        "docfoundry.v1.SearchService",
        "docfoundry.v1.IndexService",
        "docfoundry.v1.CollectionService",
        "liveness",
    }
    serving = health_pb2.HealthCheckResponse.SERVING
    assert {s.status for s in statuses.statuses.values()} == {serving}
    watch = server.health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
    first = await anext(aiter(watch))
    assert first.status == serving
    watch.cancel()


class SlowSearch(pb_grpc.SearchServiceServicer):
    """Fulltext takes `k` hundredths of a second: room for deadlines and queues."""

    async def Fulltext(self, request: pb.FulltextRequest, context: Any) -> pb.FulltextResponse:
        await asyncio.sleep(request.k / 100)
        return pb.FulltextResponse()


@asynccontextmanager
async def slow_server(
    **interceptor: Any,
) -> AsyncIterator[tuple[pb_grpc.SearchServiceAsyncStub, CollectorRegistry]]:
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry, backend="sqlite")
    server = grpc.aio.server(interceptors=[ServiceInterceptor(metrics, **interceptor)])
    pb_grpc.add_SearchServiceServicer_to_server(SlowSearch(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.SearchServiceStub(channel), registry
    finally:
        await server.stop(None)


def handled(registry: CollectorRegistry, code: str) -> float:
    labels = {
        "grpc_type": "unary",
        "grpc_service": "docfoundry.v1.SearchService",
        "grpc_method": "Fulltext",
        "grpc_code": code,
    }
    sample = registry.get_sample_value("grpc_server_handled_total", labels)
    return sample or 0.0


async def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_deadline_exceeded_and_cancelled_are_counted_apart() -> None:
    async with slow_server() as (stub, registry):
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stub.Fulltext(pb.FulltextRequest(k=100), timeout=0.2)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await eventually(lambda: handled(registry, "DeadlineExceeded") == 1)
        call = stub.Fulltext(pb.FulltextRequest(k=100), timeout=10)
        await asyncio.sleep(0.2)
        call.cancel()
        await eventually(lambda: handled(registry, "Canceled") == 1)
        assert handled(registry, "DeadlineExceeded") == 1


async def test_calls_without_a_deadline_get_the_servers_limit() -> None:
    async with slow_server(request_timeout=0.2) as (stub, registry):
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as limited:
            await stub.Fulltext(pb.FulltextRequest(k=300))  # 3 s of work, no deadline
        assert limited.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2
        assert handled(registry, "DeadlineExceeded") == 1
        await stub.Fulltext(pb.FulltextRequest(k=5))  # within the limit


async def test_past_its_bound_a_call_is_refused_at_once_with_retry_advice() -> None:
    tight = LimitConfig(concurrency=1, max_queue=1, max_wait=10.0)
    admission = Admission(replace(AdmissionConfig(), search=tight))
    async with slow_server(admission=admission) as (stub, registry):
        await stub.Fulltext(pb.FulltextRequest(k=10))  # one call measures the service time
        running = asyncio.ensure_future(stub.Fulltext(pb.FulltextRequest(k=50)))
        await eventually(lambda: admission.search.running == 1)
        queued = asyncio.ensure_future(stub.Fulltext(pb.FulltextRequest(k=50)))
        await eventually(lambda: admission.search.waiting == 1)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Fulltext(pb.FulltextRequest(k=50))
        refused_after = time.monotonic() - started
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused_after < 1.0  # at once, not after the queue
        status = rpc_status.from_call(refused.value)
        assert status is not None
        retry = error_details_pb2.RetryInfo()
        assert any(d.Unpack(retry) for d in status.details)
        assert retry.retry_delay.ToTimedelta().total_seconds() > 0
        await asyncio.gather(running, queued)  # the admitted calls finish normally
        assert handled(registry, "OK") == 3 and handled(registry, "ResourceExhausted") == 1
        # A call whose deadline would pass in the queue is refused, not left to time out.
        running = asyncio.ensure_future(stub.Fulltext(pb.FulltextRequest(k=100)))
        await eventually(lambda: admission.search.running == 1)
        with pytest.raises(grpc.aio.AioRpcError) as hopeless:
            await stub.Fulltext(pb.FulltextRequest(k=10), timeout=0.1)
        assert hopeless.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "deadline" in (hopeless.value.details() or "")
        await running


async def test_a_call_that_leaves_the_queue_frees_its_place() -> None:
    admission = Admission(
        replace(AdmissionConfig(), search=LimitConfig(concurrency=1, max_queue=1, max_wait=10))
    )
    async with slow_server(admission=admission) as (stub, _):
        running = asyncio.ensure_future(stub.Fulltext(pb.FulltextRequest(k=50)))
        await eventually(lambda: admission.search.running == 1)
        leaving = stub.Fulltext(pb.FulltextRequest(k=1))
        await eventually(lambda: admission.search.waiting == 1)
        leaving.cancel()
        await eventually(lambda: admission.search.waiting == 0)
        await stub.Fulltext(pb.FulltextRequest(k=1))  # takes the freed place
        await running
        assert admission.search.running == 0 and admission.search.refused == 0


async def test_a_taken_port_is_refused(server: Harness, embedder: MiniLMEmbedder) -> None:
    settings = replace(server.app.settings, grpc_port=server.app.port, metrics_port=0)
    with pytest.raises(OSError, match="cannot listen"):
        build_app(settings, embedder=embedder, registry=CollectorRegistry())


async def test_a_second_process_cannot_serve_the_same_sqlite_file(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    path = tmp_path / "one.db"
    harness = await start_harness(DatabaseConfig(type="sqlite", sqlite_path=path), embedder)
    try:
        second = await run_cli("init-db", env={"SQLITE_PATH": str(path)})
        assert second.returncode == 2
        assert f"in use by another process (pid {os.getpid()})" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        await stop_harness(harness)
    after = await run_cli("init-db", env={"SQLITE_PATH": str(path)})
    assert after.returncode == 0, after.stderr  # the claim ends with the first server


async def test_database_passwords_never_reach_logs_or_health(
    embedder: MiniLMEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    """A PostgreSQL that is down, with passwords in the URL both ways: the supervisor logs
    every second, and Health reports the failure, without either password."""
    caplog.set_level(logging.DEBUG)
    port = free_port()
    url = f"postgresql://app:userinfo-secret@127.0.0.1:{port}/db?password=query-secret"
    settings = Settings.from_env(
        {"DATABASE_TYPE": "postgresql", "DATABASE_URL": url, "GRPC_PORT": "0"}
    )
    app = build_app(settings, embedder=embedder, registry=CollectorRegistry())
    await app.start()
    try:
        async with grpc.aio.insecure_channel(app.address) as channel:
            stub = pb_grpc.SearchServiceStub(channel)
            await asyncio.sleep(2.2)  # two supervisor rounds
            health = await stub.Health(pb.HealthRequest())
    finally:
        await app.stop(grace=0)
    assert health.status == pb.HealthResponse.STATUS_NOT_SERVING
    assert caplog.text.count("database unavailable, will retry") >= 2
    for secret in ("userinfo-secret", "query-secret"):
        assert secret not in caplog.text and secret not in str(health)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw-1@h/db?password=pw-2&sslmode=require", "u:***@h/db?password=***&"),
        ("postgresql:///db?host=/run&PASSWORD=pw-1", "postgresql:///db?host=/run&PASSWORD=***"),
        ("postgresql://h/db?sslpassword=pw-1&password=pw-2", "?sslpassword=***&password=***"),
    ],
)
def test_every_form_of_database_password_is_masked(url: str, shown: str) -> None:
    """What the adapter puts in its messages (`cannot reach PostgreSQL at …`)."""
    masked = PostgresConfig(url=url).safe_dsn()
    assert shown in masked
    assert "pw-1" not in masked and "pw-2" not in masked


async def test_oversized_messages_and_documents_are_refused(
    database: DatabaseConfig, embedder: MiniLMEmbedder
) -> None:
    harness = await start_harness(
        database,
        embedder,
        max_message_bytes=64 * 1024,
        search=replace(Settings().search, max_document_bytes=2000),
    )
    try:
        huge = pb.IndexDocumentsRequest(document=pb.Document(path="huge.md", content="x" * 100_000))
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            async for _ in harness.index.IndexDocuments(iter([huge])):
                pass
        assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        big = pb.Document(path="big.md", content="word " * 1000)
        chunked = pb.Document(
            path="chunked.md", chunks=[pb.ChunkInput(text="word " * 300) for _ in range(2)]
        )
        small = pb.Document(path="small.md", content="word " * 10)
        results = [
            r
            async for r in harness.index.IndexDocuments(
                iter([pb.IndexDocumentsRequest(document=d) for d in (big, chunked, small)])
            )
        ]
        outcomes = [r.outcome for r in results]
        outcome = pb.IndexDocumentsResponse
        rejected, created = outcome.OUTCOME_REJECTED, outcome.OUTCOME_CREATED
        assert outcomes == [rejected, rejected, created]
        assert results[0].error.field == "document.content"
        assert "MAX_DOCUMENT_BYTES" in results[0].error.message
    finally:
        await stop_harness(harness)


class CountingEmbedder:
    """The real model, counting the texts it has embedded."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.precision = inner.precision
        self.embedded = 0

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self.inner.embed(texts)
        self.embedded += len(texts)
        return vectors


def long_markdown(sections: int) -> str:
    return "\n\n".join(
        f"## Section {i}\n\n" + " ".join(f"word{i}x{j}" for j in range(120))
        for i in range(sections)
    )


async def test_a_cancelled_stream_stops_embedding(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    database = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "c.db")
    search = replace(Settings().search, max_document_bytes=10**7)
    harness = await start_harness(database, counting, search=search)  # type: ignore[arg-type]
    content = long_markdown(30 * EMBED_SLICE)
    chunks = len(chunk_content(content, ContentType.MARKDOWN, max_chars=search.chunk_max_chars))
    assert chunks >= 10 * EMBED_SLICE
    try:
        document = pb.Document(path="long.md", content=content)
        call = harness.index.IndexDocuments(iter([pb.IndexDocumentsRequest(document=document)]))
        await eventually(lambda: counting.embedded > 0, timeout=30)
        call.cancel()
        at_cancel = counting.embedded
        await asyncio.sleep(1.5)
        # At most the slice at hand finishes after the cancel; the rest is never embedded.
        assert counting.embedded <= at_cancel + EMBED_SLICE < chunks
        stored = await harness.search.Health(pb.HealthRequest())
        assert stored.document_count == 0
    finally:
        await stop_harness(harness)


async def test_a_stream_past_its_deadline_is_counted_as_deadline_exceeded(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    """Streams have no server-side limit; gRPC cancels them at the caller's deadline, and
    the metrics must say DEADLINE_EXCEEDED, not CANCELLED."""
    database = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "d.db")
    search = replace(Settings().search, max_document_bytes=10**7)
    harness = await start_harness(database, embedder, search=search)
    try:
        document = pb.Document(path="long.md", content=long_markdown(200))
        call = harness.index.IndexDocuments(
            iter([pb.IndexDocumentsRequest(document=document)]), timeout=1.0
        )
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await _drain(call)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        labels = {
            "grpc_type": "bidi_stream",
            "grpc_service": "docfoundry.v1.IndexService",
            "grpc_method": "IndexDocuments",
            "grpc_code": "DeadlineExceeded",
        }
        metric = "grpc_server_handled_total"
        await eventually(lambda: harness.registry.get_sample_value(metric, labels) == 1)
        canceled = {**labels, "grpc_code": "Canceled"}
        assert harness.registry.get_sample_value(metric, canceled) is None
    finally:
        await stop_harness(harness)


async def test_sigterm_during_a_long_embedding_exits_within_the_grace(tmp_path: Path) -> None:
    port = free_port()
    grace = 1.0
    env = {
        **os.environ,
        "SQLITE_PATH": str(tmp_path / "t.db"),
        "GRPC_PORT": str(port),
        "METRICS_PORT": "0",
        "SHUTDOWN_GRACE_SECONDS": str(grace),
        "MAX_DOCUMENT_BYTES": str(10**7),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "server.py"),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        target = f"127.0.0.1:{port}"
        await wait_for_health(target, health_pb2.HealthCheckResponse.SERVING)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.IndexServiceStub(channel)
            document = pb.Document(path="long.md", content=long_markdown(600))  # minutes
            call = stub.IndexDocuments(iter([pb.IndexDocumentsRequest(document=document)]))
            results = asyncio.ensure_future(_drain(call))
            await asyncio.sleep(3)  # well into the embedding
            assert not results.done()
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
            took = time.monotonic() - started
            with pytest.raises(grpc.aio.AioRpcError):
                await results
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode()
    assert took < grace + 3, f"exited {took:.1f}s after SIGTERM (grace {grace}s)"


async def _drain(call: Any) -> list[Any]:
    return [r async for r in call]


async def test_a_malformed_setting_is_a_clear_error() -> None:
    result = await run_cli("init-db", env={"ADMISSION_SEARCH_CONCURRENCY": "0"})
    assert result.returncode == 2
    assert "ADMISSION_SEARCH_CONCURRENCY must be at least 1" in result.stderr


def test_refusals_are_counted_by_kind() -> None:
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry, backend="sqlite")
    admission = Admission(
        replace(AdmissionConfig(), embedding=LimitConfig(1, 0, 1.0)),
        on_refuse=lambda kind: metrics.admission_refusals.labels(kind).inc(),
    )

    async def scenario() -> None:
        async with admission.embedding.slot():
            with pytest.raises(Exception, match="overloaded"):
                async with admission.embedding.slot():
                    pass

    asyncio.run(scenario())
    assert (
        registry.get_sample_value("docfoundry_admission_refusals_total", {"kind": "embedding"}) == 1
    )


async def test_postgresql_statements_stop_at_the_statement_timeout(
    postgres_server: PostgresServer,
) -> None:
    """The pool's connections carry statement_timeout, and a statement stopped by it is
    DEADLINE_EXCEEDED (DeadlineExceededError), not a lost database (UNAVAILABLE)."""
    async with fresh_database(postgres_server) as dsn:
        setup = await asyncpg.connect(dsn)
        await setup.execute("CREATE EXTENSION IF NOT EXISTS vector")  # the pool registers it
        await setup.close()
        config = PostgresConfig(url=dsn, pool_min_size=1, pool_max_size=2, statement_timeout=0.2)
        connections = Connections(config)
        await connections.open()
        try:
            async with connections.acquire() as db:
                assert await db.fetchval("SHOW statement_timeout") == "200ms"
            started = time.monotonic()
            with pytest.raises(DeadlineExceededError):
                async with connections.acquire() as db:
                    await db.execute("SELECT pg_sleep(5)")
            assert time.monotonic() - started < 3
            async with connections.acquire() as db:  # the connection is still good
                assert await db.fetchval("SELECT 1") == 1
        finally:
            await connections.close()
