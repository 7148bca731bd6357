"""Tracing end to end: real servers on both backends, each given a TracerProvider of its
own with an in-memory exporter, called through real channels carrying W3C trace context.
The process's global provider, which OpenTelemetry lets a process set only once, is only
a trap: nothing may record there."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from concurrent import futures
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.config import DatabaseConfig, Settings, TracingConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.errors import InvalidArgumentError
from docfoundry_grpc.service.app import SUPERVISE_INTERVAL_SECONDS
from docfoundry_grpc.service.rpc_spans import rpc_span_interceptors
from docfoundry_grpc.tracing import FLUSH_SECONDS, STEPS_OFF, Tracing

from .conftest import Harness, start_harness, stop_harness
from .corpus import documents, requests

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = (("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"),)
UNSAMPLED = (("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN_ID}-00"),)
HYBRID = "/docfoundry.v1.SearchService/Hybrid"
INDEX = "/docfoundry.v1.IndexService/IndexDocuments"
# The storage operations whose work is SQL on PostgreSQL (describe_collection is cached).
SQL_OPERATIONS = {"fulltext_rank", "semantic_rank", "has_clicks", "chunks"}


class SpanTree:
    """Finished spans, by parent."""

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = list(spans)
        self.children: dict[int | None, list[ReadableSpan]] = {}
        for span in self.spans:
            parent = span.parent.span_id if span.parent is not None else None
            self.children.setdefault(parent, []).append(span)

    def only(self, name: str) -> ReadableSpan:
        [span] = [s for s in self.spans if s.name == name]
        return span

    def under(self, span: ReadableSpan) -> list[ReadableSpan]:
        return self.children.get(_id(span), [])

    def names_under(self, name: str) -> set[str]:
        return {s.name for s in self.under(self.only(name))}

    def descendants(self, span: ReadableSpan) -> Iterator[ReadableSpan]:
        for child in self.under(span):
            yield child
            yield from self.descendants(child)


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    span_id: int = span.context.span_id
    return span_id


def attribute(span: ReadableSpan, key: str) -> object:
    return (span.attributes or {}).get(key)


def spans_of(exporter: InMemorySpanExporter) -> SpanTree:
    return SpanTree(exporter.get_finished_spans())


def in_memory() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter


@asynccontextmanager
async def traced_server(
    database: DatabaseConfig, embedder: MiniLMEmbedder, tracing: Tracing, **overrides: object
) -> AsyncIterator[Harness]:
    """conftest's harness, with `tracing` given to build_app."""
    harness = await start_harness(database, embedder, tracer=tracing, **overrides)
    try:
        yield harness
    finally:
        await stop_harness(harness)


@pytest.fixture
def global_spans() -> Iterator[InMemorySpanExporter]:
    """An exporter on the process's global provider (installed if none is): whatever
    records spans there bypasses the provider a server was given."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def index(
    harness: Harness, docs: Sequence[pb.Document], metadata: Sequence[tuple[str, str]] = ()
) -> None:
    stream = harness.index.IndexDocuments(requests(list(docs)), metadata=metadata)
    assert len([r async for r in stream]) == len(docs)


def assert_from_caller(rpc: ReadableSpan, tree: SpanTree) -> None:
    """The RPC's span continues the caller's trace, and every span is in its subtree and
    ended before it: no step of the call outlives the call."""
    assert rpc.kind is SpanKind.SERVER
    assert rpc.context is not None and rpc.parent is not None
    assert rpc.context.trace_id == int(TRACE_ID, 16)
    assert rpc.parent.span_id == int(CALLER_SPAN_ID, 16) and rpc.parent.is_remote
    assert {_id(s) for s in tree.descendants(rpc)} == {_id(s) for s in tree.spans} - {_id(rpc)}
    assert rpc.end_time is not None
    ended = {s.name: s.end_time for s in tree.descendants(rpc)}
    assert all(end is not None and end <= rpc.end_time for end in ended.values()), ended


def assert_storage_spans(tree: SpanTree, backend: str) -> None:
    """Each storage span names its database and operation; on PostgreSQL, the SQL
    statements of the operations that run SQL are spans under theirs."""
    storage = [s for s in tree.spans if s.name.startswith("storage ")]
    assert storage
    for span in storage:
        operation = attribute(span, "db.operation.name")
        assert attribute(span, "db.system") == backend
        assert span.name == f"storage {operation}"
        statements = [s for s in tree.under(span) if s.kind is SpanKind.CLIENT]
        if backend == "postgresql" and operation in SQL_OPERATIONS | {"upsert", "content_hash"}:
            assert statements, f"no SQL under {span.name}"
            assert all(attribute(s, "db.statement") for s in statements)
    if backend == "sqlite":
        assert not [s for s in tree.spans if s.kind is SpanKind.CLIENT]


async def test_hybrid_spans_form_one_tree_under_the_callers_trace(
    database: DatabaseConfig, embedder: MiniLMEmbedder, global_spans: InMemorySpanExporter
) -> None:
    tracing, exporter = in_memory()
    async with traced_server(database, embedder, tracing) as harness:
        await index(harness, documents())
        exporter.clear()
        request = pb.HybridRequest(q="which port does the server use", k=3)
        response = await harness.search.Hybrid(request, metadata=TRACEPARENT)
        assert response.hits
    tree = spans_of(exporter)
    rpc = tree.only(HYBRID)
    assert_from_caller(rpc, tree)
    assert attribute(rpc, "rpc.grpc.status_code") == grpc.StatusCode.OK.value[0]
    assert {
        "storage describe_collection",
        "fulltext leg",
        "semantic leg",
        "storage has_clicks",
        "fuse",
        "storage chunks",
        "snippets",
    } <= {s.name for s in tree.under(rpc)}
    assert tree.names_under("fulltext leg") == {"storage fulltext_rank"}
    assert tree.names_under("semantic leg") == {"embed query", "storage semantic_rank"}
    assert attribute(tree.only("embed query"), "docfoundry.embedding.cached") is False
    assert attribute(tree.only("snippets"), "docfoundry.hits") == len(response.hits)
    assert_storage_spans(tree, database.type)
    assert not global_spans.get_finished_spans()


async def test_an_index_stream_traces_each_batch(
    database: DatabaseConfig, embedder: MiniLMEmbedder
) -> None:
    tracing, exporter = in_memory()
    async with traced_server(database, embedder, tracing) as harness:
        await index(harness, documents(), metadata=TRACEPARENT)
    tree = spans_of(exporter)
    rpc = tree.only(INDEX)
    assert_from_caller(rpc, tree)
    batches = [s for s in tree.under(rpc) if s.name == "index batch"]
    assert batches
    assert sum(int(str(attribute(s, "docfoundry.documents"))) for s in batches) == len(documents())
    for batch in batches:
        assert {s.name for s in tree.under(batch)} == {
            "storage describe_collection",
            "storage content_hash",
            "chunk",
            "embed chunks",
            "storage upsert",
        }
        # The batch's stored hashes come in one read, however many documents it holds.
        assert [s.name for s in tree.under(batch)].count("storage content_hash") == 1
    assert_storage_spans(tree, database.type)


async def test_errors_show_in_the_spans(database: DatabaseConfig, embedder: MiniLMEmbedder) -> None:
    """The step that failed is an error with the exception; the RPC's span carries the
    status code, and is an error itself for a server's fault (OpenTelemetry's gRPC
    conventions leave a caller's mistake, such as INVALID_ARGUMENT, unset there)."""
    tracing, exporter = in_memory()
    async with traced_server(database, embedder, tracing) as harness:
        caller = pb.CreateCollectionRequest(
            name="vectors", vectors=pb.VECTOR_SOURCE_CALLER, dimension=3
        )
        await harness.collections.CreateCollection(caller)
        exporter.clear()
        request = pb.HybridRequest(q="port", collection="vectors")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await harness.search.Hybrid(request, metadata=TRACEPARENT)
        assert failed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    tree = spans_of(exporter)
    rpc = tree.only(HYBRID)
    assert_from_caller(rpc, tree)
    assert attribute(rpc, "rpc.grpc.status_code") == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert rpc.status.status_code is StatusCode.UNSET
    leg = tree.only("semantic leg")
    assert leg.status.status_code is StatusCode.ERROR
    [event] = [e for e in leg.events if e.name == "exception"]
    assert str((event.attributes or {})["exception.type"]).endswith(InvalidArgumentError.__name__)

    tracing, exporter = in_memory()
    async with traced_server(database, embedder, tracing, request_timeout_seconds=1e-9) as late:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await late.search.Hybrid(pb.HybridRequest(q="port"), metadata=TRACEPARENT)
        assert failed.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    rpc = spans_of(exporter).only(HYBRID)
    assert rpc.status.status_code is StatusCode.ERROR
    assert (rpc.attributes or {})[
        "rpc.grpc.status_code"
    ] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


async def test_a_stream_its_caller_drops_ends_its_span_in_its_own_context(
    tmp_path: Path, embedder: MiniLMEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    """gRPC leaves a response stream dropped during a write to be closed later, elsewhere,
    where OpenTelemetry could not detach its context and would log an error."""

    async def endless() -> AsyncIterator[pb.IndexDocumentsRequest]:
        for n in range(1000):
            document = pb.Document(path=f"notes/{n}.txt", title="Notes", content="word " * 300)
            yield pb.IndexDocumentsRequest(document=document)
            await asyncio.sleep(0.005)

    tracing, exporter = in_memory()
    database = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "docfoundry.db")
    async with traced_server(database, embedder, tracing) as harness:
        for dropped_after in (1, 2, 3):
            call = harness.index.IndexDocuments(endless(), metadata=TRACEPARENT)
            async for n, _ in aenumerate(call):
                if n == dropped_after:
                    call.cancel()
                    break
            await asyncio.sleep(0.2)
        gc.collect()  # what was dropped is closed now, if not before
        await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]
    assert len([s for s in exporter.get_finished_spans() if s.name == INDEX]) == 3


async def aenumerate(items: AsyncIterable[object]) -> AsyncIterator[tuple[int, object]]:
    n = 0
    async for item in items:
        n += 1
        yield n, item


async def test_only_sampled_calls_are_traced(
    database: DatabaseConfig, embedder: MiniLMEmbedder
) -> None:
    """The supervisor pings the database every second (and PostgreSQL's compactor runs
    beside it): without a call to belong to, that is no trace. Health probes are none, and
    a caller's choice not to sample (by default) holds."""
    tracing, exporter = in_memory()
    async with traced_server(database, embedder, tracing) as harness:
        await asyncio.sleep(SUPERVISE_INTERVAL_SECONDS * 1.5)
        await harness.health.Check(health_pb2.HealthCheckRequest(), metadata=TRACEPARENT)
        await index(harness, documents(), metadata=UNSAMPLED)
        await harness.search.Hybrid(pb.HybridRequest(q="port"), metadata=UNSAMPLED)
    assert not exporter.get_finished_spans()


async def test_tracing_off_records_nothing(
    database: DatabaseConfig, embedder: MiniLMEmbedder, global_spans: InMemorySpanExporter
) -> None:
    """Off (the default), no span is made, not even through the global provider."""
    harness = await start_harness(database, embedder)
    try:
        assert not harness.app.tracing.enabled
        await index(harness, documents(), metadata=TRACEPARENT)
        await harness.search.Hybrid(pb.HybridRequest(q="port"), metadata=TRACEPARENT)
    finally:
        await stop_harness(harness)
    assert not global_spans.get_finished_spans()


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP receiver: keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    """A collector on its own threads, so the server's exporter never waits for the loop."""
    server = grpc.server(futures.ThreadPoolExecutor(2))
    received = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(received, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield received, port
    server.stop(None)


async def test_spans_go_to_an_otlp_collector_by_the_standard_variables(
    tmp_path: Path,
    embedder: MiniLMEmbedder,
    collector: tuple[Collector, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_TRACES_EXPORTER=otlp turns tracing on, the SDK takes the endpoint from its own
    variable, and stopping the server flushes what is batched."""
    received, port = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    tracing = Settings.from_env({"OTEL_TRACES_EXPORTER": "otlp"}).tracing
    database = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "docfoundry.db")
    harness = await start_harness(database, embedder, tracing=tracing)
    try:
        assert harness.app.tracing.enabled
        await harness.search.Hybrid(pb.HybridRequest(q="port"), metadata=TRACEPARENT)
    finally:
        await stop_harness(harness)
    [resource_spans] = [r for request in received.requests for r in request.resource_spans]
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "docfoundry"
    names = {s.name for scope in resource_spans.scope_spans for s in scope.spans}
    assert {HYBRID, "semantic leg", "fuse"} <= names
    trace_ids = {s.trace_id.hex() for scope in resource_spans.scope_spans for s in scope.spans}
    assert trace_ids == {TRACE_ID}


async def test_a_collector_that_is_down_does_not_hold_up_shutdown(
    tmp_path: Path, embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter would retry for 10 s; a stopping server gives it FLUSH_SECONDS."""
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    database = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "docfoundry.db")
    harness = await start_harness(database, embedder, tracing=TracingConfig(("otlp",)))
    try:
        await harness.search.Hybrid(pb.HybridRequest(q="port"))
    finally:
        started = time.monotonic()
        await stop_harness(harness)
    assert time.monotonic() - started < FLUSH_SECONDS + 1.5


async def test_tracing_is_off_unless_an_exporter_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env({}).tracing == TracingConfig()
    assert Settings.from_env({"OTEL_TRACES_EXPORTER": "none"}).tracing == TracingConfig()
    both = Settings.from_env({"OTEL_TRACES_EXPORTER": "otlp, console"}).tracing
    assert both.exporters == ("otlp", "console") and both.enabled
    for wrong in ({"OTEL_TRACES_EXPORTER": "zipkin"}, {"OTEL_TRACES_EXPORTER": "otlp,none"}):
        with pytest.raises(InvalidArgumentError, match="OTEL_TRACES_EXPORTER"):
            Settings.from_env(wrong)
    http = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    with pytest.raises(InvalidArgumentError, match="grpc"):
        Settings.from_env(http)
    off = Tracing.from_config(TracingConfig())
    assert (off.enabled, rpc_span_interceptors(off), off.steps(), off.storage("sqlite")) == (
        False,
        [],
        STEPS_OFF,
        None,
    )
    monkeypatch.setenv("OTEL_SERVICE_NAME", "docs-search")
    named = Tracing.from_config(TracingConfig(("console",)))
    assert named.provider is not None
    assert named.provider.resource.attributes["service.name"] == "docs-search"
    await named.shutdown()
