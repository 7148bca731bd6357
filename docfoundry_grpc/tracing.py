"""OpenTelemetry tracing: off by default, one span per RPC and per step when on.

`Tracing.from_config` builds a TracerProvider when OTEL_TRACES_EXPORTER names an exporter;
everything else (endpoint, headers, sampler, batching, resource attributes) the SDK reads
from its own OTEL_* variables. The provider is passed to whatever makes spans, never set
as the global one: OpenTelemetry lets a process set that only once, and explicit wiring
lets tests give each server a provider of its own with an in-memory exporter.

Off, nothing is added: no interceptor (see service/rpc_spans.py for the RPC's span), no
storage spans, and each step's span is one shared no-op context manager.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, Tracer
from opentelemetry.util.types import AttributeValue

from . import __version__
from .config import TracingConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

TRACER_NAME = "docfoundry_grpc"
SERVICE_NAME = "docfoundry"
# The longest a stopping server waits for its last spans to be taken: a collector that
# does not answer must not hold up the exit (the exporter would retry for 10 s).
FLUSH_SECONDS = 1.0
ASYNCPG_SCOPE = "opentelemetry.instrumentation.asyncpg"

Attributes = Mapping[str, AttributeValue]


class _NoSpan(AbstractContextManager[Span]):
    """A step's span when nothing is traced: stateless, so one instance serves all."""

    def __enter__(self) -> Span:
        return INVALID_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN = _NoSpan()


def _recording() -> bool:
    """Whether the current span records: a sampled call's, not background work (no span)
    or a call its caller chose not to sample, whose children would record nothing."""
    return trace.get_current_span().is_recording()


class StepSpans:
    """Spans for the steps of a sampled call (embedding, each leg, fusion, snippets,
    chunking), children of its current span. Otherwise, and without a tracer, each is the
    shared no-op, which saves the SDK's ~30 µs per span."""

    def __init__(self, tracer: Tracer | None = None) -> None:
        self._tracer = tracer

    def __call__(
        self, name: str, attributes: Attributes | None = None
    ) -> AbstractContextManager[Span]:
        if self._tracer is None or not _recording():
            return _NO_SPAN
        return self._tracer.start_as_current_span(name, attributes=attributes)


STEPS_OFF = StepSpans()

# The tracer for asyncpg's statement spans while a storage span is current (None outside
# one): asyncpg's instrumentation patches the driver for the whole process, so this is how
# its spans find the server (and provider) a statement runs for.
_STATEMENT_TRACER: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar(
    "docfoundry_statement_tracer", default=None
)


class StorageSpans:
    """One span per storage call made inside a sampled call (background work such as the
    supervisor's pings, the compactor or a metrics scrape is not traced), with asyncpg's
    statement spans under it on PostgreSQL."""

    def __init__(self, tracer: Tracer, *, backend: str, statements: Tracer | None) -> None:
        self._tracer = tracer
        self._statements = statements
        self._backend = backend

    wanted = staticmethod(_recording)

    @contextmanager
    def span(self, operation: str) -> Iterator[Span]:
        attributes = {
            "db.system": self._backend,
            "db.system.name": self._backend,
            "db.operation.name": operation,
        }
        with self._tracer.start_as_current_span(f"storage {operation}", attributes=attributes) as s:
            token = _STATEMENT_TRACER.set(self._statements)
            try:
                yield s
            finally:
                _STATEMENT_TRACER.reset(token)


class _StatementTracer(Tracer):
    """What asyncpg's instrumentation gets: the current storage span's statement tracer,
    or no span at all outside one (pool housekeeping, the compactor)."""

    @staticmethod
    def _current() -> Tracer:
        return _STATEMENT_TRACER.get() or _NOOP_TRACER

    def start_span(self, *args: Any, **kwargs: Any) -> Span:
        return self._current().start_span(*args, **kwargs)

    def start_as_current_span(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> AbstractContextManager[Span]:
        return self._current().start_as_current_span(*args, **kwargs)


class _StatementTracerProvider(trace.TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return _StatementTracer()


_NOOP_TRACER = trace.NoOpTracer()


class _AsyncpgInstrumentation:
    """asyncpg's instrumentation, on while any server traces PostgreSQL (a count, because
    it patches the driver's classes for the whole process)."""

    def __init__(self) -> None:
        self.users = 0

    def acquire(self) -> None:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        if self.users == 0:
            instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
            instrumentor.instrument(tracer_provider=_StatementTracerProvider())
        self.users += 1

    def release(self) -> None:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        self.users -= 1
        if self.users == 0:
            AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]


_asyncpg = _AsyncpgInstrumentation()


class Tracing:
    """A server's tracing: `provider` None is off."""

    def __init__(
        self, provider: TracerProvider | None = None, *, exporters: Sequence[SpanExporter] = ()
    ) -> None:
        self.provider = provider
        self._exporters = exporters
        self._postgres = False

    @classmethod
    def from_config(cls, config: TracingConfig) -> Tracing:
        if not config.enabled:
            return cls()
        from opentelemetry.sdk.resources import OTELResourceDetector, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        defaults = {"service.name": SERVICE_NAME, "service.version": __version__}
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the defaults.
        resource = Resource.create(defaults).merge(OTELResourceDetector().detect())
        provider = TracerProvider(resource=resource)
        exporters = [_exporter(name) for name in config.exporters]
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider, exporters=exporters)

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def _tracer(self, scope: str = TRACER_NAME) -> Tracer | None:
        if self.provider is None:
            return None
        return self.provider.get_tracer(scope, __version__)

    def steps(self) -> StepSpans:
        return StepSpans(self._tracer()) if self.enabled else STEPS_OFF

    def storage(self, backend: str) -> StorageSpans | None:
        """Storage spans for `backend`; on PostgreSQL this turns asyncpg's statement spans
        on until `shutdown`."""
        tracer = self._tracer()
        if tracer is None:
            return None
        statements = None
        if backend == "postgresql":
            statements = self._tracer(ASYNCPG_SCOPE)
            if not self._postgres:
                _asyncpg.acquire()
                self._postgres = True
        return StorageSpans(tracer, backend=backend, statements=statements)

    async def shutdown(self) -> None:
        """Flushes what is batched (off the event loop) and stops. Past FLUSH_SECONDS, the
        exporters are stopped, which ends their retries: what they hold is dropped."""
        if self._postgres:
            _asyncpg.release()
            self._postgres = False
        if self.provider is None:
            return
        stopping = asyncio.ensure_future(asyncio.to_thread(self.provider.shutdown))
        try:
            await asyncio.wait_for(asyncio.shield(stopping), FLUSH_SECONDS)
        except TimeoutError:
            for exporter in self._exporters:
                exporter.shutdown()
            await stopping


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()
