"""The connection pool, and the one place that tells "the database is gone" from "bad query".

Every adapter call takes a connection here: a pool wait past the configured bound is
StoreBusyError, a lost or refused connection StoreUnavailableError; nothing else is caught.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector

from ...config import PostgresConfig
from ...errors import DeadlineExceededError, StoreBusyError, StoreUnavailableError
from ...models import PoolStats

log = logging.getLogger(__name__)
query_log = logging.getLogger("docfoundry_grpc.sql")

# SQLSTATE classes that mean "the database is not there right now", not "bad query".
_UNAVAILABLE_CLASSES = ("08", "53", "57")
CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
# The pool's connections carry it in pg_stat_activity, so `docfoundry restore` can tell
# that servers use a database.
APPLICATION_NAME = "docfoundry"


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OSError | asyncpg.InterfaceError | asyncpg.ConnectionDoesNotExistError):
        return True
    # A pooled connection the server dropped mid-protocol (a PostgreSQL crash) can fail its
    # next query with "cannot switch to state …; another operation is in progress".
    if isinstance(exc, asyncpg.InternalClientError):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and state[:2] in _UNAVAILABLE_CLASSES


class Connections:
    """The pool (created by `open`) and single connections outside it."""

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self._pool: asyncpg.Pool | None = None
        self._waiting = 0

    def ssl(self) -> dict[str, Any]:
        return {} if self.config.url else {"ssl": self.config.sslmode}

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.config.dsn(),
            min_size=self.config.pool_min_size,
            max_size=self.config.pool_max_size,
            max_queries=self.config.pool_max_queries,
            max_inactive_connection_lifetime=self.config.pool_max_inactive_lifetime,
            init=self._init_connection,
            reset=_keep_session,
            server_settings={**self._search_settings(), "application_name": APPLICATION_NAME},
            **self.ssl(),
        )

    async def expire(self) -> None:
        """Connections already open are replaced rather than handed out again."""
        if self._pool is not None:
            await self._pool.expire_connections()

    @property
    def opened(self) -> bool:
        return self._pool is not None

    def _search_settings(self) -> dict[str, str]:
        """Sent as startup parameters, which a session reset restores, where a SET would
        fall back to pgvector's defaults (ef_search 40: at most 40 neighbours per query)."""
        return {
            "hnsw.ef_search": str(int(self.config.hnsw_ef_search)),
            "hnsw.iterative_scan": "relaxed_order",
            "ivfflat.probes": str(int(self.config.ivfflat_probes)),
            "ivfflat.iterative_scan": "relaxed_order",
            # The server-side bound on any one statement of a call: a call the client has
            # abandoned is cancelled by asyncpg, but one without a deadline is not.
            "statement_timeout": str(int(self.config.statement_timeout * 1000)),
        }

    async def _init_connection(self, connection: asyncpg.Connection) -> None:
        await register_vector(connection)
        if self.config.log_queries:
            connection.add_query_logger(_log_query)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        pool = self._pool
        if pool is None:
            raise StoreUnavailableError("PostgreSQL is not connected")
        self._waiting += 1
        try:
            connection = await pool.acquire(timeout=self.config.pool_acquire_timeout)
        except TimeoutError:
            raise StoreBusyError(
                f"no PostgreSQL connection became free within {self.config.pool_acquire_timeout:g}s"
            ) from None
        except Exception as exc:
            if is_unavailable(exc):
                raise StoreUnavailableError("PostgreSQL is unreachable") from exc
            raise
        finally:
            self._waiting -= 1
        try:
            with lost_connection_is_unavailable():
                yield connection
        finally:
            await _release(pool, connection)

    @asynccontextmanager
    async def own(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection outside the pool, closed after use: the compactor's session-level
        lock ends with it, however the compaction ends."""
        try:
            connection = await asyncpg.connect(self.config.dsn(), timeout=10, **self.ssl())
        except CONNECT_ERRORS as exc:
            raise StoreUnavailableError("PostgreSQL is unreachable") from exc
        try:
            with lost_connection_is_unavailable():
                yield connection
        finally:
            try:
                await connection.close(timeout=5)
            except Exception:
                connection.terminate()

    def pool_stats(self) -> PoolStats | None:
        pool = self._pool
        if pool is None:
            return None
        size, idle = pool.get_size(), pool.get_idle_size()
        return PoolStats(
            size=size,
            in_use=size - idle,
            idle=idle,
            min_size=pool.get_min_size(),
            max_size=pool.get_max_size(),
            waiting=self._waiting,
        )


@contextmanager
def lost_connection_is_unavailable() -> Iterator[None]:
    """A query that fails because the database went away raises StoreUnavailableError; one
    stopped by statement_timeout raises DeadlineExceededError."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, asyncpg.QueryCanceledError) and "statement timeout" in str(exc):
            raise DeadlineExceededError(
                "a database statement ran past POSTGRES_STATEMENT_TIMEOUT_SECONDS"
            ) from exc
        if is_unavailable(exc):
            raise StoreUnavailableError("PostgreSQL connection lost") from exc
        raise


async def _release(pool: asyncpg.Pool, connection: asyncpg.Connection) -> None:
    """Returns `connection` to the pool. A connection the server dropped mid-protocol (a
    PostgreSQL crash) fails the rollback of its reset; asyncpg then terminates it, so the
    pool opens a new one, and raises. What the block returned or raised stands: the
    reset's error, raised here, would replace the block's StoreUnavailableError with an
    error the service can only answer INTERNAL."""
    try:
        await pool.release(connection)
    except Exception as exc:
        # Only this function releases, once per acquire, so an InterfaceError here is the
        # reset failing on a broken connection, not a misuse of the pool.
        if not is_unavailable(exc):
            raise
        log.warning("dropped a PostgreSQL connection that could not be reset: %s", exc)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Returns a connection to the pool without asyncpg's default reset (RESET ALL, CLOSE ALL,
    UNLISTEN *, unlock all advisory locks), a round trip on every release. asyncpg still
    rolls back an open transaction first, and nothing else outlives a use here: settings are
    startup parameters, locks are per transaction, and the compactor's session lock is taken
    on a connection of its own."""


def _log_query(record: Any) -> None:
    """asyncpg query logger: statement text and duration only, never parameter values."""
    query_log.info(
        "sql %.2fms %s",
        record.elapsed * 1000,
        " ".join(str(record.query).split()),
        extra={"duration_ms": round(record.elapsed * 1000, 3)},
    )
