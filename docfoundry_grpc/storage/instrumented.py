"""A StorageAdapter wrapper that times every operation and counts failures by kind, and
with tracing on gives each one a span (see `tracing.StorageSpans`).

The wrapper forwards by name: each adapter coroutine listed in OPERATIONS is timed under its
label, anything else passes through untouched, so a method added to the contract needs one
line here, not a hand-written forwarder.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

from ..metrics import ServiceMetrics
from ..tracing import StorageSpans
from .base import StorageAdapter

# Adapter method → the `operation` label of the storage metrics.
OPERATIONS = {
    "open": "open",
    "create_collection": "create_collection",
    "describe_collection": "describe_collection",
    "get_collection": "get_collection",
    "list_collections": "list_collections",
    "delete_collection": "delete_collection",
    "content_hashes": "content_hash",
    "replace_documents": "upsert",
    "delete_document": "delete",
    "delete_documents": "delete_many",
    "get_document": "get_document",
    "list_documents": "list_documents",
    "search_fulltext": "fulltext",
    "search_vector": "semantic",
    "rank_fulltext": "fulltext_rank",
    "rank_vector": "semantic_rank",
    "chunks": "chunks",
    "record_click": "click",
    "has_clicks": "has_clicks",
    "click_evidence": "click_evidence",
    "click_history": "click_history",
    "save_ranker": "save_ranker",
    "live_rankers": "live_rankers",
    "ranker_model": "ranker_model",
    "import_clicks": "import_clicks",
    "create_api_key": "create_api_key",
    "get_api_key": "get_api_key",
    "list_api_keys": "list_api_keys",
    "revoke_api_key": "revoke_api_key",
    "stats": "stats",
    "ping": "ping",
    "write_position": "write_position",
}


class InstrumentedStore:
    def __init__(
        self, inner: StorageAdapter, metrics: ServiceMetrics, *, spans: StorageSpans | None = None
    ) -> None:
        self.inner = inner
        self.backend = inner.backend
        self._metrics = metrics
        self._spans = spans

    @asynccontextmanager
    async def _timed(self, operation: str) -> AsyncIterator[None]:
        started = time.perf_counter()
        try:
            yield
        except Exception as exc:
            self._metrics.storage_errors.labels(operation, self.backend, type(exc).__name__).inc()
            raise
        finally:
            self._metrics.storage_duration.labels(operation, self.backend).observe(
                time.perf_counter() - started
            )

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        operation = OPERATIONS.get(name)
        if operation is None:
            return method
        return self._timing(operation, method)

    def _timing(
        self, operation: str, method: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        spans = self._spans

        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            if spans is None or not spans.wanted():
                async with self._timed(operation):
                    return await method(*args, **kwargs)
            with spans.span(operation):
                async with self._timed(operation):
                    return await method(*args, **kwargs)

        return timed


def instrumented(
    inner: StorageAdapter, metrics: ServiceMetrics, *, spans: StorageSpans | None = None
) -> StorageAdapter:
    """`inner` with every operation timed (and traced, given `spans`); typed as the
    contract it forwards."""
    return cast(StorageAdapter, InstrumentedStore(inner, metrics, spans=spans))
