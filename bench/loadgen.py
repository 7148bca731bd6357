"""Closed-loop load from separate client processes through the generated gRPC stubs.

A level is C callers, each sending its next request as soon as the previous answer arrives,
spread over a few spawned processes (each with one channel, as a long-lived client has), so
the client's own Python does not share the server's interpreter. The processes live for the
whole run and start each level together: they warm up, report ready, and wait for "go".

Caller g sends its j-th request (warm-up included) with query number offset + g + C·j, so a
level walks through consecutive distinct queries and the parent knows exactly which ones
the server has seen before.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import grpc

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc

RPCS = ("Fulltext", "Semantic", "Hybrid")
REQUEST_TIMEOUT_SECONDS = 60.0
CONNECT_TIMEOUT_SECONDS = 30.0
_READY_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class LevelJob:
    target: str
    rpc: str
    callers: tuple[int, ...]  # this process's share of the level's caller numbers
    total_callers: int
    requests_per_caller: int
    warmup_per_caller: int
    seconds: float
    k: int
    query_offset: int


@dataclass
class LevelOutcome:
    """What the callers of one level saw, merged over the client processes."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    query_numbers: list[int] = field(default_factory=list)  # unbounded; modulo the list
    started: float = math.inf
    finished: float = 0.0
    client_cpu_seconds: float = 0.0

    @property
    def wall_seconds(self) -> float:
        return max(self.finished - self.started, 1e-9)

    def merge(self, other: LevelOutcome) -> None:
        self.latencies_ms += other.latencies_ms
        self.errors += other.errors
        self.query_numbers += other.query_numbers
        self.started = min(self.started, other.started)
        self.finished = max(self.finished, other.finished)
        self.client_cpu_seconds += other.client_cpu_seconds


async def _call(method: Any, query: str, k: int, outcome: LevelOutcome, *, timed: bool) -> None:
    started = time.perf_counter()
    try:
        await method(query, k, timeout=REQUEST_TIMEOUT_SECONDS)
    except grpc.aio.AioRpcError as exc:
        outcome.errors[exc.code().name] += 1
        return
    if timed:
        outcome.latencies_ms.append((time.perf_counter() - started) * 1000)


async def _caller(
    job: LevelJob,
    caller: int,
    method: Any,
    queries: Sequence[str],
    outcome: LevelOutcome,
    *,
    first: int,
    count: int,
    deadline: float | None,
) -> None:
    """Requests number first … first + count − 1 of `caller`; untimed when there is no
    deadline (the warm-up)."""
    for j in range(first, first + count):
        if deadline is not None and time.perf_counter() >= deadline:
            return
        number = job.query_offset + caller + job.total_callers * j
        outcome.query_numbers.append(number)
        query = queries[number % len(queries)]
        await _call(method, query, job.k, outcome, timed=deadline is not None)


async def _run_job(job: LevelJob, queries: Sequence[str], connection: Connection) -> LevelOutcome:
    outcome = LevelOutcome()
    warm = LevelOutcome()
    async with grpc.aio.insecure_channel(job.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_SECONDS)
        stub = pb_grpc.SearchServiceStub(channel)
        rpc, request = getattr(stub, job.rpc), getattr(pb, f"{job.rpc}Request")

        def method(query: str, k: int, *, timeout: float) -> Any:
            """The job's RPC with its own request type (FulltextRequest, …)."""
            return rpc(request(q=query, k=k), timeout=timeout)

        await asyncio.gather(
            *(
                _caller(
                    job,
                    g,
                    method,
                    queries,
                    warm,
                    first=0,
                    count=job.warmup_per_caller,
                    deadline=None,
                )
                for g in job.callers
            )
        )
        connection.send(("ready", warm.errors.total()))
        await asyncio.to_thread(connection.recv)  # "go"
        cpu_before = time.process_time()
        outcome.started = time.perf_counter()
        deadline = outcome.started + job.seconds
        await asyncio.gather(
            *(
                _caller(
                    job,
                    g,
                    method,
                    queries,
                    outcome,
                    first=job.warmup_per_caller,
                    count=job.requests_per_caller,
                    deadline=deadline,
                )
                for g in job.callers
            )
        )
        outcome.finished = time.perf_counter()
        outcome.client_cpu_seconds = time.process_time() - cpu_before
    outcome.query_numbers = warm.query_numbers + outcome.query_numbers
    outcome.errors += Counter({f"warmup {k}": v for k, v in warm.errors.items()})
    return outcome


def _worker_main(connection: Connection, queries: list[str]) -> None:
    while (job := connection.recv()) is not None:
        try:
            connection.send(("done", asyncio.run(_run_job(job, queries, connection))))
        except Exception as exc:  # reported to the parent, which stops the run
            connection.send(("failed", f"{type(exc).__name__}: {exc}"))


class ClientPool:
    """Spawned client processes, reused level after level."""

    def __init__(self, processes: int, queries: list[str]) -> None:
        context = mp.get_context("spawn")
        self._workers: list[tuple[Any, Connection]] = []
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_worker_main, args=(child, queries), daemon=True)
            process.start()
            child.close()
            self._workers.append((process, parent))

    def run_level(
        self,
        target: str,
        rpc: str,
        *,
        concurrency: int,
        requests: int,
        seconds: float,
        warmup: int,
        k: int,
        query_offset: int,
        on_start: Callable[[], None] = lambda: None,
    ) -> LevelOutcome:
        """Runs one level; `on_start` is called once every caller has warmed up, just
        before the timed phase, so resource readings can bracket exactly that phase."""
        active = self._workers[: min(concurrency, len(self._workers))]
        per_caller = max(1, math.ceil(requests / concurrency))
        for n, (_, connection) in enumerate(active):
            callers = tuple(range(n, concurrency, len(active)))
            connection.send(
                LevelJob(
                    target, rpc, callers, concurrency, per_caller, warmup, seconds, k, query_offset
                )
            )
        for _, connection in active:
            expect_reply(connection, "ready", _READY_TIMEOUT_SECONDS)
        on_start()
        for _, connection in active:
            connection.send("go")
        merged = LevelOutcome()
        for _, connection in active:
            merged.merge(expect_reply(connection, "done", seconds + 2 * REQUEST_TIMEOUT_SECONDS))
        return merged

    def close(self) -> None:
        for _, connection in self._workers:
            try:
                connection.send(None)
            except OSError:
                pass
        for process, connection in self._workers:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            connection.close()
        self._workers = []


def expect_reply(connection: Connection, kind: str, timeout: float) -> Any:
    """The payload of a client process's `(kind, payload)` message; RuntimeError for
    silence, a failure it reports, or another message."""
    if not connection.poll(timeout):
        raise RuntimeError(f"client process gave no {kind!r} within {timeout:g} s")
    got, payload = connection.recv()
    if got == "failed":
        raise RuntimeError(f"client process failed: {payload}")
    if got != kind:
        raise RuntimeError(f"client process sent {got!r}, expected {kind!r}")
    return payload
