"""Prometheus metrics. Everything is registered on a registry passed in: no hidden globals,
so tests build a fresh registry and read values with `get_sample_value`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .admission import Limiter
from .embedding.base import Embedder
from .models import ClickOutcome, StoreStats

log = logging.getLogger(__name__)

# From 0.25 ms (an in-memory hit) to 10 s (a large batch ingest).
LATENCY_BUCKETS = (
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.004,
    0.008,
    0.016,
    0.032,
    0.064,
    0.128,
    0.256,
    0.512,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


# The grpc-ecosystem's spellings (go-grpc-prometheus, whose names stock dashboards and alert
# rules query): method types in lower snake case, and codes as Go's codes.Code prints them,
# by the name of Python's grpc.StatusCode (keyed by name, so nothing below the gRPC layer
# imports grpc).
GRPC_TYPES = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}
GRPC_CODE_NAMES: dict[str, str] = {
    "OK": "OK",
    "CANCELLED": "Canceled",
    "UNKNOWN": "Unknown",
    "INVALID_ARGUMENT": "InvalidArgument",
    "DEADLINE_EXCEEDED": "DeadlineExceeded",
    "NOT_FOUND": "NotFound",
    "ALREADY_EXISTS": "AlreadyExists",
    "PERMISSION_DENIED": "PermissionDenied",
    "RESOURCE_EXHAUSTED": "ResourceExhausted",
    "FAILED_PRECONDITION": "FailedPrecondition",
    "ABORTED": "Aborted",
    "OUT_OF_RANGE": "OutOfRange",
    "UNIMPLEMENTED": "Unimplemented",
    "INTERNAL": "Internal",
    "UNAVAILABLE": "Unavailable",
    "DATA_LOSS": "DataLoss",
    "UNAUTHENTICATED": "Unauthenticated",
}
GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class GrpcServerMetrics:
    """The grpc-ecosystem server metrics (grpc_server_started_total, _handled_total,
    _handling_seconds, _msg_received_total, _msg_sent_total), with its label names and
    spellings, so off-the-shelf gRPC dashboards and alerts work unchanged.

    Defined here rather than taken from py-grpc-prometheus: its interceptor is for the
    synchronous server (it reads the servicer context's private state, which grpc.aio's
    lacks), and its asyncio fork records a cancelled call as OK and spells codes the
    Python way (NOT_FOUND where dashboards expect NotFound). The one interceptor that
    already settles each call's final status records these, once per call. The latency
    buckets are the service's own, finer than prometheus.DefBuckets at the fast end, which
    histogram_quantile does not mind."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._calls: dict[tuple[str, bool, bool], RpcCall] = {}
        self.started = Counter(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            GRPC_LABELS,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*GRPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            GRPC_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.received = Counter(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server.",
            GRPC_LABELS,
            registry=registry,
        )
        self.sent = Counter(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server.",
            GRPC_LABELS,
            registry=registry,
        )

    def call(self, full_method: str, *, client_streaming: bool, server_streaming: bool) -> RpcCall:
        """The series of calls to `full_method` (`/package.Service/Method`)."""
        key = (full_method, client_streaming, server_streaming)
        if (call := self._calls.get(key)) is None:
            _, service, method = full_method.split("/", 2)
            labels = (GRPC_TYPES[client_streaming, server_streaming], service, method)
            call = self._calls[key] = RpcCall(self, labels)
        return call


class RpcCall:
    """One method's series, resolved once and shared by its calls. As in go-grpc-prometheus,
    a unary call counts its request on arrival and its response on success; a stream
    counts each message."""

    def __init__(self, metrics: GrpcServerMetrics | None, labels: tuple[str, str, str]) -> None:
        self._metrics = metrics
        self._labels = labels
        if metrics is not None:
            self._started = metrics.started.labels(*labels)
            self._received = metrics.received.labels(*labels)
            self._sent = metrics.sent.labels(*labels)
            self._handling = metrics.handling.labels(*labels)

    def started(self) -> None:
        if self._metrics:
            self._started.inc()

    def received(self) -> None:
        if self._metrics:
            self._received.inc()

    def sent(self) -> None:
        if self._metrics:
            self._sent.inc()

    def handled(self, code: str, seconds: float) -> None:
        """`code`: the name of a grpc.StatusCode (`NOT_FOUND`)."""
        if self._metrics:
            self._metrics.handled.labels(*self._labels, GRPC_CODE_NAMES[code]).inc()
            self._handling.observe(seconds)


# The call of a server built without metrics: records nothing.
UNMEASURED = RpcCall(None, ("", "", ""))


class ServiceMetrics:
    """Every metric of a server, on one registry: the standard gRPC, process and Python
    ones, then DocFoundry's own."""

    def __init__(self, registry: CollectorRegistry, *, backend: str) -> None:
        self.registry = registry
        self.backend = backend
        self.grpc = GrpcServerMetrics(registry)
        # process_* (CPU, memory, file descriptors), python_info and python_gc_*.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.admission_refusals = Counter(
            "docfoundry_admission_refusals",
            "Calls refused at once (RESOURCE_EXHAUSTED) because a kind of work was at its bound.",
            ["kind"],
            registry=registry,
        )
        self.clicks = Counter(
            "docfoundry_clicks",
            "Clicks recorded, by outcome: counted, or why not (no_impression, not_shown, "
            "duplicate, session_cap, user_cap, key_cap).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ClickOutcome:
            self.clicks.labels(outcome.value)
        self.serving = Gauge(
            "docfoundry_serving",
            "1 while grpc.health.v1 reports SERVING (the database answers), else 0.",
            registry=registry,
        )
        self.storage_duration = Histogram(
            "docfoundry_storage_operation_duration_seconds",
            "Time of storage calls, by operation and backend.",
            ["operation", "backend"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.search_duration = Histogram(
            "docfoundry_search_duration_seconds",
            "Time of a whole search (embedding, retrieval, fusion), by mode and backend.",
            ["mode", "backend"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.storage_errors = Counter(
            "docfoundry_storage_errors",
            "Failed storage operations, by operation and kind.",
            ["operation", "backend", "kind"],
            registry=registry,
        )
        self.embedding_duration = Histogram(
            "docfoundry_embedding_duration_seconds",
            "Time of one embedding model call.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.embedding_batch = Histogram(
            "docfoundry_embedding_batch_size",
            "Texts per embedding model call.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.build_info = Gauge(
            "docfoundry_build_info",
            "Version, backend and embedding model; always 1.",
            ["version", "backend", "embedding_model"],
            registry=registry,
        )

    def time_search(self, mode: str) -> AbstractContextManager[object]:
        return self.search_duration.labels(mode, self.backend).time()

    def register_admission_collector(self, limiters: Sequence[Limiter]) -> None:
        """Usage and bounds of each limiter, and its refusals counted from zero (a counter
        with no series yet has no rate for dashboards and alerts to read)."""
        self.registry.register(_AdmissionCollector(limiters))
        for limiter in limiters:
            self.admission_refusals.labels(limiter.kind)

    def register_store_collector(
        self, stats: Callable[[], StoreStats | None], *, vector_index: str
    ) -> None:
        self.registry.register(_StoreCollector(stats, self.backend, vector_index))


class _StoreCollector(Collector):
    """Index and pool figures read at scrape time."""

    def __init__(
        self, stats: Callable[[], StoreStats | None], backend: str, vector_index: str
    ) -> None:
        self._stats = stats
        self._backend = backend
        self._vector_index = vector_index

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        if stats is None:
            return
        labels = ["backend"]
        value: float
        for name, doc, value in (
            ("docfoundry_index_documents", "Documents in the index.", stats.documents),
            ("docfoundry_index_chunks", "Chunks in the index.", stats.chunks),
            ("docfoundry_click_events", "Stored click events.", stats.clicks),
            (
                "docfoundry_fulltext_backlog_chunks",
                "Chunks written or deleted since the full-text postings were last packed.",
                stats.fulltext_backlog,
            ),
        ):
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric([self._backend], value)
            yield family
        yield self._by_label(
            GaugeMetricFamily,
            "docfoundry_vector_index_info",
            "Vector index type; always 1.",
            "type",
            {self._vector_index: 1},
        )
        if (graph := stats.vector_graph) is not None:
            for name, doc, value in (
                (
                    "docfoundry_vector_graph_chunks",
                    "Chunks in SQLite's approximate vector graphs.",
                    graph.chunks,
                ),
                (
                    "docfoundry_vector_graph_backlog_chunks",
                    "Chunks waiting for the next graph build (searched exactly meanwhile).",
                    graph.backlog,
                ),
                (
                    "docfoundry_vector_graph_builds",
                    "Approximate vector graph builds running.",
                    graph.building,
                ),
            ):
                yield self._gauge(name, doc, value)
        if (pool := stats.pool) is not None:
            # Usage and limits are separate series, so sum() over servers means something
            # and "in use / max" divides like by like.
            yield self._by_label(
                GaugeMetricFamily,
                "docfoundry_pool_connections",
                "Open database connections: in use by a request, or idle in the pool.",
                "state",
                {"in_use": pool.in_use, "idle": pool.idle},
            )
            yield self._gauge(
                "docfoundry_pool_connections_max",
                "Most connections the pool opens (POSTGRES_POOL_MAX_SIZE).",
                pool.max_size,
            )
            yield self._gauge(
                "docfoundry_pool_connections_min",
                "Connections the pool keeps open (POSTGRES_POOL_MIN_SIZE).",
                pool.min_size,
            )
            yield self._gauge(
                "docfoundry_pool_waiting_requests",
                "Requests waiting for a free connection.",
                pool.waiting,
            )
        if (cache := stats.fulltext_cache) is not None:
            yield self._by_label(
                CounterMetricFamily,
                "docfoundry_fulltext_cache_lookups",
                "Packed posting segments a query found decoded in the server (hit) or fetched.",
                "result",
                {"hit": cache.hits, "miss": cache.misses},
            )
            yield self._gauge(
                "docfoundry_fulltext_cache_bytes",
                "Bytes of decoded posting segments held in the server.",
                cache.bytes,
            )
            yield self._gauge(
                "docfoundry_fulltext_cache_capacity_bytes",
                "Bound of the decoded posting segment cache (POSTGRES_POSTINGS_CACHE_MB).",
                cache.capacity,
            )
        if stats.reads:
            yield self._by_label(
                CounterMetricFamily,
                "docfoundry_reads",
                "Database connections taken for reads, by target: the primary or a read "
                "replica (POSTGRES_READ_URLS).",
                "target",
                stats.reads,
            )
        if stats.replicas_healthy:
            yield self._by_label(
                GaugeMetricFamily,
                "docfoundry_read_replica_healthy",
                "1 while a read replica is in use; 0 while it is skipped (down or lagging).",
                "replica",
                {name: float(up) for name, up in stats.replicas_healthy.items()},
            )
        if stats.extra:
            yield self._by_label(
                CounterMetricFamily,
                "docfoundry_index_scans",
                "Scans of the search indexes since statistics were reset (pg_stat_user_indexes).",
                "index",
                dict(sorted(stats.extra.items())),
            )

    def _gauge(self, name: str, doc: str, value: float) -> Metric:
        family = GaugeMetricFamily(name, doc, labels=["backend"])
        family.add_metric([self._backend], value)
        return family

    def _by_label(
        self,
        kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
        name: str,
        doc: str,
        label: str,
        values: Mapping[str, float],
    ) -> Metric:
        """One family labelled by backend and `label`, a sample per entry of `values`."""
        family = kind(name, doc, labels=["backend", label])
        for key, value in values.items():
            family.add_metric([self._backend, key], value)
        return family


class _AdmissionCollector(Collector):
    """Each kind of work's calls running and queued, beside its bounds (ADMISSION_*), read
    at scrape time. The counts are plain ints the event loop updates; a scrape from
    another thread reads a value that was true a moment ago, as any gauge does."""

    def __init__(self, limiters: Sequence[Limiter]) -> None:
        self._limiters = limiters

    def collect(self) -> Iterator[Metric]:
        calls = GaugeMetricFamily(
            "docfoundry_admission_calls",
            "Calls of each kind of work running, or queued for a slot.",
            labels=["kind", "state"],
        )
        concurrency = GaugeMetricFamily(
            "docfoundry_admission_concurrency_limit",
            "Calls of each kind that may run at once (ADMISSION_*_CONCURRENCY).",
            labels=["kind"],
        )
        queue = GaugeMetricFamily(
            "docfoundry_admission_queue_limit",
            "Calls of each kind that may queue (ADMISSION_*_QUEUE).",
            labels=["kind"],
        )
        for limiter in self._limiters:
            calls.add_metric([limiter.kind, "running"], limiter.running)
            calls.add_metric([limiter.kind, "queued"], limiter.waiting)
            concurrency.add_metric([limiter.kind], limiter.config.concurrency)
            queue.add_metric([limiter.kind], limiter.config.max_queue)
        yield from (calls, concurrency, queue)


def stats_from_loop(
    loop: asyncio.AbstractEventLoop,
    read: Callable[[], Coroutine[Any, Any, StoreStats]],
    timeout: float = 2.0,
) -> Callable[[], StoreStats | None]:
    """A scrape-time reader that runs the async `read()` on the server's event loop (so the
    database call is awaited there, never blocking it) and waits at most `timeout`. A
    collect on the loop's own thread gets nothing: waiting there would hold up the very
    loop the read needs, for the whole timeout."""

    def collect() -> StoreStats | None:
        if _running_loop() is loop:
            return None
        future = asyncio.run_coroutine_threadsafe(read(), loop)
        try:
            result = future.result(timeout)
        except (FutureTimeout, Exception) as exc:  # a failed scrape must not fail /metrics
            future.cancel()
            log.warning("index statistics unavailable for metrics: %s", type(exc).__name__)
            return None
        return result

    return collect


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class TimedEmbedder:
    """An Embedder wrapper recording model latency and batch size."""

    def __init__(self, inner: Embedder, metrics: ServiceMetrics) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.precision = inner.precision
        self._metrics = metrics

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        started = time.perf_counter()
        vectors = self.inner.embed(texts)
        self._metrics.embedding_duration.observe(time.perf_counter() - started)
        self._metrics.embedding_batch.observe(len(texts))
        return vectors
