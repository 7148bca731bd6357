"""The callers of `python -m bench.overload`: grpc.aio callers in spawned client processes.

As in bench/loadgen.py, the callers live in a few spawned processes, each with one channel
and many asyncio tasks, so their Python never shares the server's interpreter and two
processes cannot starve a two-core server. Unlike loadgen, a scenario here is bounded by
time alone and every call is kept as a record (status, start, latency, RetryInfo): what
counts as goodput or as a refusal on time is decided once, in bench/overload_report.py.

Every query text is new to the server (a SciFact query plus a word unique to the run), so
its query-embedding cache never answers and each Semantic or Hybrid call pays the model,
as a stream of distinct user queries would.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing as mp
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc

from .loadgen import CONNECT_TIMEOUT_SECONDS, expect_reply

REFUSED = grpc.StatusCode.RESOURCE_EXHAUSTED.name
DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED.name
UNFINISHED = "UNFINISHED"  # still running when the bench cancelled it, after the drain
MAX_RETRY_PAUSE_SECONDS = 1.0
_REPORT_SLACK_SECONDS = 60.0


class Call(NamedTuple):
    """One call as its caller saw it; times in seconds."""

    code: str  # a grpc.StatusCode name, or UNFINISHED
    started: float  # since the scenario began
    seconds: float  # latency; for UNFINISHED, how long it had run when cancelled
    retry_delay: float | None  # the RetryInfo delay the error carried; None without one


@dataclass(frozen=True)
class CallerJob:
    """One scenario's share for one process: `callers` closed loops for `seconds`, then at
    most `drain` seconds more for the calls still running, which are then cancelled."""

    target: str
    rpc: str  # Fulltext, Semantic or Hybrid
    callers: int
    seconds: float
    deadline: float | None  # per call; None sends calls without a deadline
    drain: float
    k: int
    tag: str  # makes this job's query texts distinct from every other job's in the run
    refusal_pause: float  # pause after an error that names no RetryInfo delay


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The delay of the `google.rpc.RetryInfo` in the error's rich status, if any.

    A status whose code or message disagree with the call's is treated as carrying none,
    as grpcio-status itself refuses it."""
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    return None


def query_texts(queries: Sequence[str], tag: str) -> Iterator[str]:
    """Endless distinct texts: the queries in turn, each with a word no other text has."""
    for n in itertools.count():
        yield f"{queries[n % len(queries)]} {tag}n{n}"


async def _caller(
    job: CallerJob,
    send: Callable[[str], Awaitable[object]],
    texts: Iterator[str],
    calls: list[Call],
    *,
    begun: float,
) -> None:
    """Sends back to back until the scenario ends. After an error other than a missed
    deadline it pauses (the RetryInfo delay, else `refusal_pause`), as a well-behaved client
    does: without the pause, refused callers would spin on the CPU the server needs."""
    end = begun + job.seconds
    while (started := time.perf_counter()) < end:
        try:
            await send(next(texts))
        except grpc.aio.AioRpcError as error:
            code, delay = error.code().name, retry_delay(error)
            calls.append(Call(code, started - begun, time.perf_counter() - started, delay))
            if code != DEADLINE_EXCEEDED:
                pause = job.refusal_pause if delay is None else min(delay, MAX_RETRY_PAUSE_SECONDS)
                await asyncio.sleep(max(0.0, min(pause, end - time.perf_counter())))
            continue
        except asyncio.CancelledError:
            calls.append(Call(UNFINISHED, started - begun, time.perf_counter() - started, None))
            raise
        calls.append(Call("OK", started - begun, time.perf_counter() - started, None))


async def run_callers(
    job: CallerJob,
    queries: Sequence[str],
    *,
    ready: Callable[[], Awaitable[None]] | None = None,
) -> list[Call]:
    """Runs `job` on one channel; `ready` is awaited once the channel is up, just before
    the clock starts (the parent's "go", so every process starts together). Returns after
    at most seconds + drain, whatever the server does."""
    async with grpc.aio.insecure_channel(job.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_SECONDS)
        stub = pb_grpc.SearchServiceStub(channel)
        method, request = getattr(stub, job.rpc), getattr(pb, f"{job.rpc}Request")

        def send(text: str) -> Awaitable[object]:
            """The job's RPC with its own request type (FulltextRequest, …)."""
            return method(request(q=text, k=job.k), timeout=job.deadline)  # type: ignore[no-any-return]

        if ready is not None:
            await ready()
        texts = query_texts(queries, job.tag)
        calls: list[Call] = []
        begun = time.perf_counter()
        tasks = [
            asyncio.create_task(_caller(job, send, texts, calls, begun=begun))
            for _ in range(job.callers)
        ]
        _, pending = await asyncio.wait(tasks, timeout=job.seconds + job.drain)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in tasks:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error
        return calls


def _worker_main(connection: Connection, queries: list[str]) -> None:
    # Ctrl-C reaches the whole process group; the parent unwinds and ends this process,
    # so it ignores SIGINT instead of printing a traceback per process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def go() -> None:
        connection.send(("ready", None))
        if await asyncio.to_thread(connection.recv) != "go":
            raise _Stop  # the parent gave up on the run while this process was ready

    try:
        while (job := connection.recv()) is not None:
            try:
                connection.send(("done", asyncio.run(run_callers(job, queries, ready=go))))
            except _Stop:
                return
            except Exception as exc:  # reported to the parent, which stops the run
                connection.send(("failed", f"{type(exc).__name__}: {exc}"))
    except (EOFError, BrokenPipeError):
        pass  # the parent is gone: nothing left to report to


class _Stop(Exception):
    pass


class CallerProcesses:
    """Spawned client processes, reused scenario after scenario."""

    def __init__(self, processes: int, queries: list[str]) -> None:
        context = mp.get_context("spawn")
        self._workers: list[tuple[Any, Connection]] = []
        self._busy = False
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=_worker_main, args=(child, queries), daemon=True)
            process.start()
            child.close()
            self._workers.append((process, parent))

    @property
    def pids(self) -> list[int]:
        return [process.pid for process, _ in self._workers]

    def run(self, job: CallerJob, *, on_start: Callable[[], None] = lambda: None) -> list[Call]:
        """Spreads the job's callers over the processes and merges their records.
        `on_start` runs once every process is connected, just before they start."""
        self._busy = True  # until every process has reported: close() ends them at once
        count = len(self._workers)
        shares = [job.callers // count + (n < job.callers % count) for n in range(count)]
        active = [(n, connection) for n, (_, connection) in enumerate(self._workers) if shares[n]]
        for n, connection in active:
            connection.send(replace(job, callers=shares[n], tag=f"{job.tag}{n}"))
        for _, connection in active:
            expect_reply(connection, "ready", CONNECT_TIMEOUT_SECONDS + _REPORT_SLACK_SECONDS)
        on_start()
        for _, connection in active:
            connection.send("go")
        calls: list[Call] = []
        for _, connection in active:
            timeout = job.seconds + job.drain + _REPORT_SLACK_SECONDS
            calls += expect_reply(connection, "done", timeout)
        self._busy = False
        return calls

    def close(self) -> None:
        """Asks each process to exit, or after an interrupted scenario ends it at once (by
        its own handle): callers still running would otherwise keep the run alive."""
        for _, connection in self._workers:
            try:
                connection.send(None)
            except OSError:
                pass
        for process, connection in self._workers:
            process.join(timeout=0 if self._busy else 10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            connection.close()
        self._workers = []
