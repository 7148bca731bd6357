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
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .embedding.base import Embedder
from .models import StoreStats

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


class ServiceMetrics:
    def __init__(self, registry: CollectorRegistry, *, backend: str) -> None:
        self.registry = registry
        self.backend = backend
        self.rpc_requests = Counter(
            "docfoundry_grpc_requests",
            "gRPC requests handled, by method and status code.",
            ["method", "code"],
            registry=registry,
        )
        self.rpc_duration = Histogram(
            "docfoundry_grpc_request_duration_seconds",
            "gRPC request handling time.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.admission_refusals = Counter(
            "docfoundry_admission_refusals",
            "Calls refused at once (RESOURCE_EXHAUSTED) because a kind of work was at its bound.",
            ["kind"],
            registry=registry,
        )
        self.rpc_in_flight = Gauge(
            "docfoundry_grpc_requests_in_flight",
            "gRPC requests being handled.",
            ["method"],
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
        if stats.pool is not None:
            states = ("size", "in_use", "idle", "min_size", "max_size", "waiting")
            yield self._by_label(
                GaugeMetricFamily,
                "docfoundry_pool_connections",
                "Database connections by state.",
                "state",
                {state: getattr(stats.pool, state) for state in states},
            )
        if (cache := stats.fulltext_cache) is not None:
            yield self._by_label(
                CounterMetricFamily,
                "docfoundry_fulltext_cache_lookups",
                "Packed posting segments a query found decoded in the server (hit) or fetched.",
                "result",
                {"hit": cache.hits, "miss": cache.misses},
            )
            yield self._by_label(
                GaugeMetricFamily,
                "docfoundry_fulltext_cache_bytes",
                "Bytes of decoded posting segments held, and the bound "
                "(POSTGRES_POSTINGS_CACHE_MB).",
                "state",
                {"used": cache.bytes, "capacity": cache.capacity},
            )
        if stats.extra:
            yield self._by_label(
                GaugeMetricFamily,
                "docfoundry_index_scans",
                "Scans of the search indexes (pg_stat_user_indexes).",
                "index",
                dict(sorted(stats.extra.items())),
            )

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
