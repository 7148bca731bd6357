"""Server assembly and lifecycle: build_server() wires settings, store, embedder and metrics
explicitly; serve() runs until SIGTERM/SIGINT and shuts down gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection_pb2
from prometheus_client import CollectorRegistry

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc

from .. import __version__
from ..config import Settings
from ..embedding import Embedder
from ..engine import SearchEngine
from ..errors import DocFoundryError, SchemaMismatchError
from ..metrics import ServiceMetrics, TimedEmbedder, stats_from_loop
from ..storage import StorageAdapter, build_store
from ..storage.instrumented import instrumented
from .interceptors import ServiceInterceptor
from .reflection import enable_reflection
from .servicer import CollectionServicer, IndexServicer, SearchServicer

log = logging.getLogger(__name__)

SERVICE_NAMES = (
    pb.DESCRIPTOR.services_by_name["SearchService"].full_name,
    pb.DESCRIPTOR.services_by_name["IndexService"].full_name,
    pb.DESCRIPTOR.services_by_name["CollectionService"].full_name,
)
SUPERVISE_INTERVAL_SECONDS = 1.0
# Room for one large document per message (validation caps content at 20M characters).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass
class App:
    settings: Settings
    server: grpc.aio.Server
    engine: SearchEngine
    store: StorageAdapter
    health: HealthServicer
    metrics: ServiceMetrics
    port: int
    _supervisor: asyncio.Task[None] | None = field(default=None, repr=False)
    _store_open: bool = False

    @property
    def address(self) -> str:
        return f"{self.settings.grpc_host}:{self.port}"

    async def start(self) -> None:
        await self._try_open_store()
        await self.server.start()
        self._supervisor = asyncio.create_task(self._supervise(), name="store-supervisor")
        log.info(
            "DocFoundry %s serving on %s (backend %s, model %s in %s)",
            __version__,
            self.address,
            self.store.backend,
            self.engine.embedder.model_name,
            self.engine.embedder.precision,
        )

    async def _try_open_store(self) -> None:
        try:
            await self.store.open()
        except SchemaMismatchError:
            raise
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

    async def stop(self, grace: float | None = None) -> None:
        """Health → NOT_SERVING, drain in-flight RPCs for `grace` seconds, close storage;
        every step runs whatever happened to the supervisor."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        self.engine.close()
        await self.store.close()
        log.info("DocFoundry stopped")


def build_app(
    settings: Settings,
    *,
    embedder: Embedder,
    registry: CollectorRegistry | None = None,
) -> App:
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ServiceMetrics(registry, backend=settings.database.type)
    embedder = TimedEmbedder(embedder, metrics)
    metrics.build_info.labels(__version__, settings.database.type, embedder.model_name).set(1)
    store = instrumented(build_store(settings.database, dimension=embedder.dimension), metrics)
    engine = SearchEngine(
        store,
        embedder,
        settings.search,
        timer=metrics.time_search,
        page_token_secret=settings.page_token_secret,
    )
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(metrics)],
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
    )
    pb_grpc.add_SearchServiceServicer_to_server(  # type: ignore[no-untyped-call]
        SearchServicer(engine), server
    )
    pb_grpc.add_IndexServiceServicer_to_server(  # type: ignore[no-untyped-call]
        IndexServicer(engine), server
    )
    pb_grpc.add_CollectionServiceServicer_to_server(  # type: ignore[no-untyped-call]
        CollectionServicer(engine), server
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    enable_reflection(
        server,
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name),
        # error_details: so reflection clients can decode the google.rpc status details.
        extra=(health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR, error_details_pb2.DESCRIPTOR),
    )
    address = f"{settings.grpc_host}:{settings.grpc_port}"
    try:
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
    return App(settings, server, engine, store, health, metrics, port)


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
    """Runs the server until SIGTERM or SIGINT, first indexing `ingest` if given."""
    from prometheus_client import start_http_server

    app = build_app(settings, embedder=embedder)
    metrics_server = None
    if settings.metrics_port:
        metrics_server, _ = start_http_server(
            settings.metrics_port, settings.metrics_host, app.metrics.registry
        )
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    if ingest:
        await ingest_paths(app.address, ingest)
    await stop.wait()
    log.info("shutting down")
    await app.stop()
    if metrics_server is not None:  # shutdown() waits for the serving thread's next poll
        await asyncio.to_thread(metrics_server.shutdown)
        metrics_server.server_close()
