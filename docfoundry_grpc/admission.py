"""Admission control: each kind of work (searches, query embeddings, ingest) has a bound
on how much runs at once and on how long a call may queue for it. Past the bound a call is
refused at once with OverloadedError (RESOURCE_EXHAUSTED and a retry delay for the
client), instead of joining a queue it would time out in.

Why refuse early: a queued call whose deadline passes before it runs costs the server its
work and the caller its whole deadline. A call is only queued when the expected wait (the
calls ahead of it times the measured service time) fits both the queue's time budget and
the call's own deadline, so admitted calls finish in time and the rest are told so within
milliseconds. Nothing here knows gRPC; the interceptor and the engine use it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from .errors import OverloadedError

# How quickly the service-time estimate follows change: about the last 10 calls count.
SERVICE_TIME_SMOOTHING = 0.1
# The shortest retry advice: a refused caller that comes back sooner is refused again, and
# under overload the refusals themselves cost the server (about 0.4 ms of CPU each).
MIN_RETRY_AFTER_SECONDS = 0.5


@dataclass(frozen=True)
class LimitConfig:
    """`concurrency` calls at once; at most `max_queue` waiting, none expected to wait more
    than `max_wait` seconds."""

    concurrency: int
    max_queue: int
    max_wait: float


@dataclass(frozen=True)
class AdmissionConfig:
    """Per kind of work: how many calls run at once, how many may queue and for how long.
    `embedding` is the query model (one thread), inside Semantic and Hybrid calls; `ingest`
    counts unary writes and each batch of an IndexDocuments stream."""

    search: LimitConfig = field(default=LimitConfig(concurrency=4, max_queue=256, max_wait=0.5))
    embedding: LimitConfig = field(default=LimitConfig(concurrency=1, max_queue=128, max_wait=0.5))
    ingest: LimitConfig = field(default=LimitConfig(concurrency=2, max_queue=8, max_wait=30.0))


# The deadline of the call being served, in time.monotonic() seconds (None: no deadline),
# set by the interceptor so work deep inside a call (the query model) can be admitted
# against it.
CALL_DEADLINE: ContextVar[float | None] = ContextVar("call_deadline", default=None)

OnRefuse = Callable[[str], None]


class Limiter:
    """Bounded concurrency with a bounded, deadline-aware FIFO queue, on one event loop."""

    def __init__(self, kind: str, config: LimitConfig, on_refuse: OnRefuse | None = None) -> None:
        self.kind = kind
        self.config = config
        self._on_refuse = on_refuse
        self.running = 0
        self.refused = 0
        self.service_time = 0.0  # seconds per call, smoothed; 0 until one has finished
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def expected_wait(self) -> float:
        """Seconds a call arriving now would queue: the calls ahead of it, `concurrency`
        at a time, each taking the measured service time."""
        if self.running < self.config.concurrency and not self._waiters:
            return 0.0
        return (len(self._waiters) + 1) / self.config.concurrency * self.service_time

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Runs the body in a slot, waiting for one if the wait fits within the queue's
        budget and the call's deadline (CALL_DEADLINE)."""
        await self._acquire(CALL_DEADLINE.get())
        started = time.monotonic()
        try:
            yield
        finally:
            self._observe(time.monotonic() - started)
            self._release()

    async def _acquire(self, deadline: float | None) -> None:
        if self.running < self.config.concurrency and not self._waiters:
            self.running += 1
            return
        self._check_room(deadline)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            # _release hands its slot over: `running` already counts this call. A call
            # still queued when too little of its deadline is left to be served gives up
            # its place: running it would only waste the work.
            await asyncio.wait_for(asyncio.shield(waiter), self._patience(deadline))
        except (asyncio.CancelledError, TimeoutError) as exc:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
                waiter.cancel()
            elif waiter.done() and not waiter.cancelled():  # handed a slot as it gave up
                self._release()
            if isinstance(exc, TimeoutError):
                self._refuse("its deadline would pass in the queue", self.expected_wait())
            raise

    def _patience(self, deadline: float | None) -> float | None:
        """How long a queued call may wait: until its deadline less one service time."""
        if deadline is None:
            return None
        return max(deadline - time.monotonic() - self.service_time, 0.0)

    def _check_room(self, deadline: float | None) -> None:
        wait = self.expected_wait()
        if len(self._waiters) >= self.config.max_queue or wait > self.config.max_wait:
            self._refuse("busy", wait)
        if deadline is not None and time.monotonic() + wait + self.service_time > deadline:
            self._refuse("its deadline would pass in the queue", wait)

    def _refuse(self, reason: str, wait: float) -> None:
        self.refused += 1
        if self._on_refuse is not None:
            self._on_refuse(self.kind)
        retry_after = max(wait, MIN_RETRY_AFTER_SECONDS)
        raise OverloadedError(
            f"server overloaded: {self.kind} is {reason} ({self.running} running, "
            f"{len(self._waiters)} queued); retry after {retry_after:.2f}s",
            retry_after=retry_after,
        )

    def _observe(self, seconds: float) -> None:
        if self.service_time == 0.0:
            self.service_time = seconds
        else:
            self.service_time += SERVICE_TIME_SMOOTHING * (seconds - self.service_time)

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: `running` stays the same
                return
        self.running -= 1


class Admission:
    """The limiters of one server."""

    def __init__(self, config: AdmissionConfig, on_refuse: OnRefuse | None = None) -> None:
        self.search = Limiter("search", config.search, on_refuse)
        self.embedding = Limiter("embedding", config.embedding, on_refuse)
        self.ingest = Limiter("ingest", config.ingest, on_refuse)
