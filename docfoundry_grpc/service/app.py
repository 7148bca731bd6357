"""Server assembly and lifecycle: build_server() wires settings, store, embedder and metrics
explicitly; serve() runs until SIGTERM/SIGINT and shuts down gracefully."""

from __future__ import annotations

import asyncio
import io
import logging
import signal
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection_pb2
from prometheus_client import CollectorRegistry

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc

from .. import __version__
from ..admission import Admission
from ..config import LOOPBACK_HOSTS, Settings, TlsConfig
from ..embedding import Embedder
from ..engine import SearchEngine
from ..errors import DocFoundryError, InvalidArgumentError, SchemaMismatchError, StoreLockedError
from ..metrics import ServiceMetrics, TimedEmbedder, stats_from_loop
from ..storage import StorageAdapter, build_store
from ..storage.instrumented import instrumented
from ..tracing import Tracing
from .auth import Authenticator
from .interceptors import ServiceInterceptor
from .reflection import enable_reflection
from .rpc_spans import rpc_span_interceptors
from .servicer import CollectionServicer, IndexServicer, SearchServicer

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["SearchService"].full_name,
    pb.DESCRIPTOR.services_by_name["IndexService"].full_name,
    pb.DESCRIPTOR.services_by_name["CollectionService"].full_name,
)
SUPERVISE_INTERVAL_SECONDS = 1.0
# The longest one step of a stop (beyond the drain's grace) may take before it is left.
STOP_STEP_SECONDS = 10.0
MAX_CONNECTION_AGE_SECONDS = 300
# A grpc.health.v1 service name that says only "this process is alive": SERVING from start
# until shutdown, whatever the database does. A liveness probe asks for it, so an outage
# of the database makes servers unready (the empty name) without restarting them all.
LIVENESS_SERVICE = "liveness"


class HealthService(HealthServicer):  # type: ignore[misc]
    """grpc.health.v1 with `List` (which grpcio's servicer leaves unimplemented): the
    status of every service, as Kubernetes and grpc-health-probe may ask for."""

    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, health_pb2.HealthCheckResponse.ServingStatus.ValueType] = {}

    async def set(
        self, service: str, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
    ) -> None:
        self._statuses[service] = status
        await super().set(service, status)

    async def List(
        self, request: health_pb2.HealthListRequest, context: object
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._statuses.items()
            }
        )


@dataclass
class App:
    settings: Settings
    server: grpc.aio.Server
    engine: SearchEngine
    store: StorageAdapter
    health: HealthService
    metrics: ServiceMetrics
    port: int
    tracing: Tracing = field(default_factory=Tracing)
    _supervisor: asyncio.Task[None] | None = field(default=None, repr=False)
    _store_open: bool = False

    @property
    def address(self) -> str:
        return f"{self.settings.grpc_host}:{self.port}"

    async def start(self) -> None:
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self._try_open_store()
        await self.server.start()
        self._supervisor = asyncio.create_task(self._supervise(), name="store-supervisor")
        log.info(
            "DocFoundry %s listening on %s (backend %s, model %s in %s)",
            __version__,
            self.address,
            self.store.backend,
            self.engine.embedder.model_name,
            self.engine.embedder.precision,
        )
        settings = self.settings
        if settings.search.clicks.enabled and not settings.page_token_secret:
            if settings.grpc_host not in LOOPBACK_HOSTS:
                log.warning(
                    "PAGE_TOKEN_SECRET is not set: anyone can forge impressions, and with "
                    "them the positions their clicks are weighted by"
                )

    async def _try_open_store(self) -> None:
        try:
            await self.store.open()
        except (SchemaMismatchError, StoreLockedError):
            raise  # retrying cannot fix either
        except DocFoundryError as exc:
            log.warning("database unavailable, will retry: %s", exc)
            await self._set_serving(False)
            return
        self._store_open = True
        await self._set_serving(True)

    async def _supervise(self) -> None:
        """Keeps grpc.health.v1 in step with the database and reopens it when it returns.
        It outlives any error: a database that comes back unusable (another embedding
        dimension, a newer schema) is logged and reported NOT_SERVING until it is fixed."""
        while True:
            await asyncio.sleep(SUPERVISE_INTERVAL_SECONDS)
            try:
                await self._check_store()
            except Exception:
                log.exception("database check failed; not serving, will retry")
                await self._set_serving(False)

    async def _check_store(self) -> None:
        if not self._store_open:
            await self._try_open_store()
            return
        try:
            await self.store.ping()
        except DocFoundryError as exc:
            log.warning("database ping failed: %s", exc)
            await self._set_serving(False)
        else:
            await self._set_serving(True)

    async def _set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)
        self.metrics.serving.set(1 if serving else 0)

    async def stop(self, grace: float | None = None) -> None:
        """Health → NOT_SERVING, drain in-flight RPCs for `grace` seconds, close storage;
        every step runs whatever happened to the supervisor."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self._supervisor is not None:
            self._supervisor.cancel()
            await _bounded("the database supervisor", self._supervisor, STOP_STEP_SECONDS)
        await _bounded("health", self.health.enter_graceful_shutdown(), STOP_STEP_SECONDS)
        self.metrics.serving.set(0)
        await _bounded("the gRPC server", self.server.stop(grace), grace + STOP_STEP_SECONDS)
        self.engine.close()
        await _bounded("storage", self.store.close(), STOP_STEP_SECONDS)
        await self.tracing.shutdown()
        log.info("DocFoundry stopped")


async def _bounded(step: str, work: Awaitable[object], seconds: float) -> None:
    """Awaits one step of a stop for at most `seconds`, then goes on without it: a stop
    that hangs (grpc.aio's server has known cases, grpc/grpc#28999) would keep the
    process from exiting until its orchestrator kills it, skipping every later step. An
    overrun is logged with the stack of every task still pending, to find what held it."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not task.done():
        log.warning(
            "stopping: %s did not finish in %g s; going on without it. Pending tasks:\n%s",
            step,
            seconds,
            _pending_stacks(),
        )
        task.cancel()
        await asyncio.wait({task}, timeout=1)  # a step may not even end when cancelled
    elif not task.cancelled() and task.exception() is not None:
        await task  # raises the step's own error


def _pending_stacks() -> str:
    stacks = io.StringIO()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.print_stack(file=stacks)
    return stacks.getvalue()


def build_app(
    settings: Settings,
    *,
    embedder: Embedder,
    registry: CollectorRegistry | None = None,
    tracing: Tracing | None = None,
) -> App:
    """`tracing` defaults to what the settings (OTEL_TRACES_EXPORTER) ask for."""
    settings.check_exposure()
    tracing = tracing if tracing is not None else Tracing.from_config(settings.tracing)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ServiceMetrics(registry, backend=settings.database.type)
    admission = Admission(
        settings.admission, on_refuse=lambda kind: metrics.admission_refusals.labels(kind).inc()
    )
    embedder = TimedEmbedder(embedder, metrics)
    metrics.build_info.labels(__version__, settings.database.type, embedder.model_name).set(1)
    metrics.register_admission_collector((admission.search, admission.embedding, admission.ingest))
    store = instrumented(
        build_store(settings.database, dimension=embedder.dimension),
        metrics,
        spans=tracing.storage(settings.database.type),
    )
    engine = SearchEngine(
        store,
        embedder,
        settings.search,
        timer=metrics.time_search,
        page_token_secret=settings.page_token_secret,
        admission=admission,
        spans=tracing.steps(),
        on_click=lambda outcome: metrics.clicks.labels(outcome.value).inc(),
    )
    interceptor = ServiceInterceptor(
        metrics,
        authenticator=(
            Authenticator(store, cache_seconds=settings.auth_cache_seconds)
            if settings.auth == "keys"
            else None
        ),
        admission=admission,
        request_timeout=settings.request_timeout_seconds,
    )
    server = grpc.aio.server(
        interceptors=[*rpc_span_interceptors(tracing), interceptor],
        options=[
            # Enforced by gRPC on the wire, before a message is decoded.
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            # Without this, a second server on a taken port starts and shares it.
            ("grpc.so_reuseport", 0),
            # Clients balancing with round_robin over dns:/// re-resolve when a connection
            # closes: closing each after a few minutes lets them find servers added since.
            # Calls running then finish on it (no grace limit: an ingest stream may be long).
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_SECONDS * 1000),
        ],
    )
    pb_grpc.add_SearchServiceServicer_to_server(SearchServicer(engine), server)
    pb_grpc.add_IndexServiceServicer_to_server(IndexServicer(engine), server)
    pb_grpc.add_CollectionServiceServicer_to_server(CollectionServicer(engine), server)
    health = HealthService()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if settings.reflection:
        enable_reflection(
            server,
            (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name),
            # error_details: so reflection clients can decode the google.rpc status details.
            extra=(health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR, error_details_pb2.DESCRIPTOR),
        )
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    try:
        if settings.tls.enabled:
            port = server.add_secure_port(address, server_credentials(settings.tls))
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # grpcio raises this when the address is taken
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {address}: address in use or not available")
    vector_index = (
        settings.database.postgres.vector_index
        if settings.database.type == "postgresql"
        else "exact"
    )
    metrics.register_store_collector(
        stats_from_loop(asyncio.get_running_loop(), store.stats), vector_index=vector_index
    )
    return App(settings, server, engine, store, health, metrics, port, tracing)


def start_metrics(settings: Settings, registry: CollectorRegistry) -> WSGIServer | None:
    """The Prometheus endpoint (None if METRICS_PORT is 0), over TLS with the gRPC port's
    certificate when METRICS_TLS is set (and a client certificate too under mutual TLS)."""
    from prometheus_client import start_http_server

    if not settings.metrics_port:
        return None
    tls = settings.tls if settings.metrics_tls else TlsConfig()
    server, _ = start_http_server(
        settings.metrics_port,
        settings.metrics_host,
        registry,
        certfile=_optional(tls.cert_file),
        keyfile=_optional(tls.key_file),
        client_cafile=_optional(tls.client_ca_file),
        client_auth_required=tls.client_ca_file is not None,
    )
    scheme = "https" if tls.enabled else "http"
    log.info("metrics on %s://%s:%d/metrics", scheme, settings.metrics_host, settings.metrics_port)
    return server


def _optional(path: Path | None) -> str | None:
    return None if path is None else str(path)


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """TLS from PEM files; with a client CA, a client certificate signed by it is required."""
    assert tls.cert_file is not None and tls.key_file is not None
    pair = (tls.key_file.read_bytes(), tls.cert_file.read_bytes())
    client_ca = tls.client_ca_file.read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [pair],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


async def ingest_paths(address: str, paths: Sequence[Path]) -> None:
    """Indexes files through the server's own gRPC API, as any client would."""
    from docfoundry_client import DocFoundryClient
    from docfoundry_client.files import iter_documents

    outcomes: Counter[str] = Counter()
    chunks = 0
    async with DocFoundryClient(address) as client:
        async for outcome in client.index_documents(iter_documents(paths)):
            outcomes[outcome.outcome] += 1
            chunks += outcome.chunk_count
    log.info("indexed %s: %s, %d chunks", ", ".join(map(str, paths)), dict(outcomes), chunks)


async def serve(settings: Settings, *, embedder: Embedder, ingest: Sequence[Path] = ()) -> None:
    """Runs the server until SIGTERM or SIGINT, first indexing `ingest` if given (as a
    client of its own port: over plaintext only, with $DOCFOUNDRY_API_KEY when keys are on)."""
    if ingest and settings.tls.enabled:
        raise InvalidArgumentError(
            "--ingest needs a plaintext port; with TLS on, run `docfoundry ingest --tls-ca …` "
            "once the server is up"
        )
    app = build_app(settings, embedder=embedder)
    metrics_server = start_metrics(settings, app.metrics.registry)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    if ingest:
        await ingest_paths(app.address, ingest)
    # After --ingest, so a search made once this is logged sees the whole index.
    log.info("ready on %s", app.address)
    await stop.wait()
    log.info("shutting down")
    await app.stop()
    if metrics_server is not None:  # shutdown() waits for the serving thread's next poll
        await asyncio.to_thread(metrics_server.shutdown)
        metrics_server.server_close()
