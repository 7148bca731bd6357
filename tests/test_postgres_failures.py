"""PostgreSQL outages and pool exhaustion, on a cluster the test owns and can stop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.config import DatabaseConfig, PostgresConfig
from docfoundry_grpc.devdb import LocalPostgres
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.errors import StoreUnavailableError
from docfoundry_grpc.storage.postgres.connections import Connections

from .conftest import (
    Harness,
    PostgresServer,
    fresh_database,
    own_local_postgres,
    postgres_config,
    start_harness,
    stop_harness,
)
from .test_grpc import expect_status, indexed

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def own_postgres() -> Iterator[LocalPostgres]:
    """A cluster of this test alone (not started): stopping it disturbs no other test."""
    cluster = own_local_postgres()
    yield cluster
    cluster.destroy()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


def health_is(harness: Harness, status: int, service: str = "") -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        response = await harness.health.Check(health_pb2.HealthCheckRequest(service=service))
        return bool(response.status == status)

    return check


async def test_starts_without_database_and_recovers_when_it_comes(
    own_postgres: LocalPostgres, embedder: MiniLMEmbedder
) -> None:
    harness = await start_harness(postgres_config(own_postgres.dsn), embedder)
    try:
        assert not (await health_is(harness, SERVING)())
        await expect_status(
            harness.search.Fulltext(pb.FulltextRequest(q="port")), grpc.StatusCode.UNAVAILABLE
        )
        detail = await harness.search.Health(pb.HealthRequest())
        assert detail.status == pb.HealthResponse.STATUS_NOT_SERVING and detail.detail
        own_postgres.start()
        await eventually(health_is(harness, SERVING))
        await indexed(harness)
        assert (await harness.search.Fulltext(pb.FulltextRequest(q="port"))).hits
    finally:
        await stop_harness(harness)


async def test_recovers_after_database_restart(
    own_postgres: LocalPostgres, embedder: MiniLMEmbedder
) -> None:
    own_postgres.start()
    harness = await indexed(await start_harness(postgres_config(own_postgres.dsn), embedder))
    try:
        await asyncio.to_thread(own_postgres.stop)
        await eventually(health_is(harness, NOT_SERVING))
        # Unready, yet alive: a liveness probe must not restart a server for its database.
        assert await health_is(harness, SERVING, service="liveness")()
        await expect_status(
            harness.search.Hybrid(pb.HybridRequest(q="port")), grpc.StatusCode.UNAVAILABLE
        )
        await asyncio.to_thread(own_postgres.start)
        await eventually(health_is(harness, SERVING))
        response = await harness.search.Hybrid(pb.HybridRequest(q="which port", k=3))
        assert response.hits[0].document_path == "guides/install.md"
    finally:
        await stop_harness(harness)


async def test_exhausted_pool_answers_resource_exhausted(
    own_postgres: LocalPostgres, embedder: MiniLMEmbedder
) -> None:
    own_postgres.start()
    database = DatabaseConfig(
        type="postgresql",
        postgres=PostgresConfig(
            url=own_postgres.dsn, pool_min_size=1, pool_max_size=1, pool_acquire_timeout=0.3
        ),
    )
    harness = await indexed(await start_harness(database, embedder))
    try:
        pool = harness.app.store.inner._connections._pool  # type: ignore[attr-defined]
        held = await pool.acquire()
        started = time.monotonic()
        await expect_status(
            harness.search.Fulltext(pb.FulltextRequest(q="port")),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        )
        assert time.monotonic() - started < 5
        await pool.release(held)
        assert (await harness.search.Fulltext(pb.FulltextRequest(q="port"))).hits
    finally:
        await stop_harness(harness)


async def test_a_connection_broken_mid_operation_is_unavailable_not_internal(
    postgres_server: PostgresServer,
) -> None:
    """A connection left mid-protocol (as a PostgreSQL crash leaves one) fails its
    transaction's rollback, and then the pool's reset on release: the caller must see
    StoreUnavailableError, which the service answers UNAVAILABLE, and the pool must go on
    serving with a new connection."""
    async with fresh_database(postgres_server) as dsn:
        setup = await asyncpg.connect(dsn)
        await setup.execute("CREATE EXTENSION IF NOT EXISTS vector")  # the pool's codecs
        await setup.close()
        connections = Connections(postgres_config(dsn, pool_min_size=1, pool_max_size=1).postgres)
        await connections.open()
        try:
            busy: asyncio.Future[object] | None = None
            with pytest.raises(StoreUnavailableError):
                async with connections.acquire() as db, db.transaction():
                    busy = asyncio.ensure_future(db.fetchval("SELECT pg_sleep(1)"))
                    await asyncio.sleep(0.1)
                    await db.fetchval("SELECT 2")  # another operation is in progress
            assert busy is not None
            with contextlib.suppress(BaseException):
                await busy  # ended with its connection
            async with connections.acquire() as db:
                assert await db.fetchval("SELECT 3") == 3
        finally:
            await connections.close()
