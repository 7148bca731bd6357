"""Reads from streaming replicas (POSTGRES_READ_URLS), writes to the primary.

A search takes a connection from `ReadRouter.acquire`: a healthy replica in turn, or the
primary when none is. A monitor looks at every replica twice a second; one that does not
answer, is not in recovery, or has fallen behind the primary for longer than
POSTGRES_READ_MAX_LAG_SECONDS is skipped until it is back.

Read-your-writes: every write returns a consistency token, the primary's WAL position once
it has committed (`write_position`). A read that carries one is served by a replica that
has replayed that far, waiting up to POSTGRES_READ_WAIT_SECONDS for it, and by the
primary otherwise. The token reaches this layer through the READ_AFTER context variable,
set per call by the service, so no storage signature has to carry it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import asyncpg

from ...config import PostgresConfig
from ...consistency import READ_AFTER, position_of
from ...errors import StoreBusyError, StoreUnavailableError
from .connections import CONNECT_ERRORS, Connections, is_unavailable

log = logging.getLogger(__name__)

MONITOR_INTERVAL_SECONDS = 0.5
# How often a read waiting for a replica to replay its token looks again: soon at first
# (on a healthy replica the replay takes milliseconds), then less often.
CATCH_UP_FIRST_POLL_SECONDS = 0.002
CATCH_UP_LAST_POLL_SECONDS = 0.05
# One replica's check, connecting included: a replica that does not answer holds up no other.
CHECK_TIMEOUT_SECONDS = 2.0
# Queries a replica cancels when replaying a change that conflicts with them.
RECOVERY_CONFLICTS = ("40001", "40P01")

REPLICA_STATE = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()"
# Where the WAL ends, commit records written or not: a token at or past every commit made
# so far, even with synchronous_commit off.
PRIMARY_POSITION = "SELECT pg_current_wal_insert_lsn()"
REPLAYED_THROUGH = "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn"


@dataclass
class Replica:
    name: str  # host:port, for logs and metrics
    connections: Connections
    healthy: bool = False
    replayed: int = 0  # WAL position replayed, at the last look
    reads: int = 0


class ReadRouter:
    """The primary's pool, and one pool per replica."""

    def __init__(self, primary: Connections, config: PostgresConfig) -> None:
        self.primary = primary
        self.config = config
        self.replicas = [
            Replica(_name_of(url, index), Connections(replace(config, url=url)))
            for index, url in enumerate(config.read_urls)
        ]
        self.primary_reads = 0
        self._turn = itertools.count()
        self._monitor: asyncio.Task[None] | None = None
        # (monotonic time, the primary's WAL position then), from the monitor's looks.
        self._positions: deque[tuple[float, int]] = deque()

    async def open(self) -> None:
        """Opens what replicas answer; the monitor keeps trying the others."""
        if not self.replicas:
            return
        await self._check_replicas()
        self._monitor = asyncio.create_task(self._monitor_loop(), name="replica-monitor")

    async def close(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
        for replica in self.replicas:
            await replica.connections.close()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection for a read: from a replica that is healthy and, if the call
        carries a consistency token, has replayed through it; else from the primary."""
        token = READ_AFTER.get()
        after = position_of(token) if token else None
        async with AsyncExitStack() as stack:
            replica, db = await self._replica_connection(stack, after)
            if db is None:
                db = await stack.enter_async_context(self.primary.acquire())
                self.primary_reads += 1
            try:
                yield db
            except Exception as exc:
                if replica is not None:
                    await self._replica_failed(replica, exc)
                raise

    async def _replica_failed(self, replica: Replica, exc: Exception) -> None:
        """A read on `replica` failed: a lost replica is skipped from the next call on, and
        a query cancelled by recovery (the replica replaying a conflicting change) is
        UNAVAILABLE, which callers retry, rather than an internal error."""
        if isinstance(exc, StoreUnavailableError) or is_unavailable(exc):
            await self._set_health(replica, "lost during a read")
        elif getattr(exc, "sqlstate", None) in RECOVERY_CONFLICTS:
            raise StoreUnavailableError("a read replica cancelled the query") from exc

    async def _replica_connection(
        self, stack: AsyncExitStack, after: int | None
    ) -> tuple[Replica | None, asyncpg.Connection | None]:
        """A connection of the first replica in turn that can serve the read, held until
        `stack` closes; (None, None) if none can. A replica that fails to give one is
        marked down at once, without waiting for the monitor, and the next is tried; one
        whose pool is merely busy is passed over but stays in use."""
        for replica in self._in_turn():
            async with AsyncExitStack() as attempt:  # released on any way out but success
                try:
                    db = await attempt.enter_async_context(replica.connections.acquire())
                    caught_up = after is None or await self._caught_up(db, replica, after)
                except StoreBusyError:
                    continue
                except (StoreUnavailableError, *CONNECT_ERRORS) as exc:
                    await self._set_health(replica, f"unreachable ({type(exc).__name__})")
                    continue
                if not caught_up:  # the others are most likely as far behind: the primary
                    return None, None
                replica.reads += 1
                # Held by the caller's stack now, so errors of the read reach the pool's
                # handler (which tells a lost connection from a bad query).
                stack.push_async_exit(attempt.pop_all())
                return replica, db
        return None, None

    def reads(self) -> dict[str, int]:
        """Connections taken for reads so far, by target."""
        return {"primary": self.primary_reads, **{r.name: r.reads for r in self.replicas}}

    def health(self) -> dict[str, bool]:
        return {replica.name: replica.healthy for replica in self.replicas}

    def _in_turn(self) -> list[Replica]:
        """The healthy replicas, starting from the next one in turn."""
        healthy = [r for r in self.replicas if r.healthy]
        if not healthy:
            return []
        start = next(self._turn) % len(healthy)
        return healthy[start:] + healthy[:start]

    async def _caught_up(self, db: asyncpg.Connection, replica: Replica, after: int) -> bool:
        """Whether the replica has replayed through `after`, waiting up to `read_wait` for
        it, looking again less often the longer it takes."""
        if replica.replayed >= after:
            return True
        deadline = time.monotonic() + self.config.read_wait
        pause = CATCH_UP_FIRST_POLL_SECONDS
        while True:
            if await db.fetchval(REPLAYED_THROUGH, after):
                replica.replayed = max(replica.replayed, after)
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, CATCH_UP_LAST_POLL_SECONDS)

    async def _monitor_loop(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL_SECONDS)
            try:
                await self._check_replicas()
            except Exception:  # the monitor must outlive anything one check runs into
                log.exception("replica check failed")

    async def _check_replicas(self) -> None:
        try:
            async with self.primary.acquire() as db:
                self._positions.append((time.monotonic(), int(await db.fetchval(PRIMARY_POSITION))))
        except (StoreUnavailableError, StoreBusyError):
            pass
        due = self._position_due()
        await asyncio.gather(*(self._check_replica(replica, due) for replica in self.replicas))

    def _position_due(self) -> int | None:
        """Where every usable replica must have replayed to by now: the primary's position
        POSTGRES_READ_MAX_LAG_SECONDS ago (None until the monitor has looked that long)."""
        cutoff = time.monotonic() - self.config.read_max_lag
        due = None
        while self._positions and self._positions[0][0] <= cutoff:
            due = self._positions.popleft()[1]
        if due is not None:  # kept as the oldest sample, for the next look
            self._positions.appendleft((cutoff, due))
        return due

    async def _check_replica(self, replica: Replica, due: int | None) -> None:
        reason = None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                if not replica.connections.opened:
                    await replica.connections.open()
                async with replica.connections.acquire() as db:
                    in_recovery, replayed = await db.fetchrow(REPLICA_STATE)
        except StoreBusyError:
            return  # busy serving reads: no news, and no reason to stop using it
        except (StoreUnavailableError, TimeoutError, OSError) as exc:
            reason = f"unreachable ({type(exc).__name__})"
        except Exception as exc:  # e.g. a copy that has not replayed the schema yet
            reason = f"unusable ({type(exc).__name__}: {exc})"
            await self._set_health(replica, reason)
            await replica.connections.close()  # opened afresh at the next check
            return
        else:
            replica.replayed = int(replayed or 0)
            if not in_recovery:
                reason = "not in recovery (promoted?)"
            elif due is not None and replica.replayed < due:
                reason = f"lagging more than {self.config.read_max_lag:g}s behind the primary"
        await self._set_health(replica, reason)

    async def _set_health(self, replica: Replica, reason: str | None) -> None:
        healthy = reason is None
        if healthy != replica.healthy:
            if healthy:
                log.info("read replica %s is back in use", replica.name)
            else:
                log.warning("read replica %s skipped: %s", replica.name, reason)
                # Its idle connections may be dead: none is handed out again.
                await replica.connections.expire()
        replica.healthy = healthy


def _name_of(url: str, index: int) -> str:
    """host:port of a PostgreSQL URL, naming a replica without its credentials; for one
    without a single host and port (libpq's multi-host or socket forms), its place."""
    try:
        parts = urlsplit(url)
        if parts.hostname and "," not in parts.netloc:
            return f"{parts.hostname}:{parts.port or 5432}"
    except ValueError:
        pass
    return f"replica-{index}"
