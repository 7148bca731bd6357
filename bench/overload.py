"""`python -m bench.overload`: how the server behaves when more callers come than it can
serve, on a fresh server and corpus, loopback only, stopping by itself.

It measures what one caller gets alone (single-caller capacity, every query new so the
model runs for each), then two bounded scenarios against it: many callers with a per-call
deadline ("deadlines"), and more callers with none ("no-deadlines"). Each reports goodput,
status codes, latency of admitted calls, time to refusal, RetryInfo, and the server's peak
memory, next to the targets the project is judged on (bench/overload_report.py).

The server, the corpus and the PostgreSQL cluster come from the bench's own machinery
(bench/server.py, bench/corpus.py, bench/ingest.py, bench/vectors.py), so a figure here
and one in a benchmark report describe the same server on the same data.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from docfoundry_grpc.interrupts import stop_on_sigterm

from .corpus import read_queries
from .fresh import corpus_requests, fresh_server
from .options import DEFAULT_CACHE_DIR, DEFAULT_SOURCE
from .overload_callers import CallerJob, CallerProcesses
from .overload_floor import refusing_server
from .overload_report import (
    Capacity,
    Memory,
    ScenarioResult,
    capacity_of,
    deadline_checks,
    format_capacity,
    format_scenario,
    summarize,
    to_json,
    unbounded_checks,
)
from .results import Latency
from .server import ServerProcess, cpu_seconds

log = logging.getLogger("bench")
MODES = {"fulltext": "Fulltext", "semantic": "Semantic", "hybrid": "Hybrid"}
_QUIET_CPU_SHARE = 0.1  # of one core: the server has finished the work callers left it
_QUIET_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class OverloadOptions:
    backend: str = "sqlite"
    chunks: int = 10_000
    mode: str = "hybrid"
    callers: int = 300
    deadline: float = 1.0
    callers_unbounded: int = 500
    seconds: float = 10.0
    capacity_seconds: float = 5.0
    warmup_seconds: float = 2.0
    drain: float = 5.0
    refusal_pause: float = 0.1
    max_rss_growth_mb: float = 256.0
    k: int = 10
    client_processes: int = 2
    embed_pool: int = 2000
    seed: int = 1
    source: Path = DEFAULT_SOURCE
    cache_dir: Path = DEFAULT_CACHE_DIR
    server_env: tuple[tuple[str, str], ...] = ()
    split_cpus: bool = False
    out: Path | None = None
    smoke: bool = False


FULL = OverloadOptions()
# Plumbing in a few seconds: vectors derived from 8 real embeddings, tiny scenarios.
SMOKE = replace(
    FULL,
    chunks=500,
    callers=20,
    callers_unbounded=30,
    seconds=2.0,
    capacity_seconds=2.0,
    warmup_seconds=0.5,
    drain=1.0,
    embed_pool=8,
    smoke=True,
)


def env_pair(text: str) -> tuple[str, str]:
    """An argparse type for a server environment variable given as KEY=VALUE."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_options(argv: Sequence[str] | None = None) -> OverloadOptions:
    """Options left unset take the preset's value (--smoke or the full run)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.overload",
        description="Overload a fresh DocFoundry server on loopback: single-caller capacity, "
        "then callers with deadlines and callers without, judged against the overload targets.",
    )
    add = parser.add_argument
    add("--smoke", action="store_true", help="tiny preset (500 chunks, 20/30 callers, 2 s)")
    add("--backend", choices=("sqlite", "postgresql"), help="default sqlite")
    add("--chunks", type=_count, help=f"corpus chunks (default {FULL.chunks})")
    add("--mode", choices=tuple(MODES), help="search RPC (default hybrid)")
    add("--callers", type=_count, help=f"callers with deadlines (default {FULL.callers})")
    add("--deadline", type=_positive, help=f"per-call deadline, s (default {FULL.deadline:g})")
    add(
        "--callers-unbounded",
        type=_count,
        help=f"callers without deadlines (default {FULL.callers_unbounded})",
    )
    add("--seconds", type=_positive, help=f"per scenario (default {FULL.seconds:g})")
    add("--capacity-seconds", type=_positive, help="single-caller measurement (default 5)")
    add("--warmup-seconds", type=_positive, help="one caller before anything is timed")
    add(
        "--drain",
        type=_positive,
        help="no-deadlines: how long calls still running after the scenario may finish "
        f"before the bench cancels them (default {FULL.drain:g} s)",
    )
    add(
        "--refusal-pause",
        type=_non_negative,
        help="a caller's pause after an error without a RetryInfo delay "
        f"(default {FULL.refusal_pause:g} s; with one, its delay, at most 1 s)",
    )
    add("--max-rss-growth-mb", type=float, help="memory target (default 256)")
    add("-k", type=_count, dest="k", help="hits per search (default 10)")
    add("--client-processes", type=_count, help="processes the callers are spread over (2)")
    add("--embed-pool", type=_count, help=f"chunks embedded for real (default {FULL.embed_pool})")
    add("--seed", type=int, help="corpus and vector seed (default 1)")
    add("--source", type=Path, help=f"BEIR folder (default {DEFAULT_SOURCE})")
    add("--cache-dir", type=Path, help=f"embedding cache folder (default {DEFAULT_CACHE_DIR})")
    add(
        "--server-env",
        type=env_pair,
        action="append",
        metavar="KEY=VALUE",
        help="extra server environment variable (repeatable)",
    )
    parser.add_argument(
        "--split-cpus",
        action="store_true",
        default=None,
        help="pin the server (and PostgreSQL) to the first half of the CPUs and the callers "
        "to the rest, so the callers' own CPU use cannot delay what they measure",
    )
    add("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None and k != "smoke"}
    if "server_env" in given:
        given["server_env"] = tuple(given["server_env"])
    return replace(SMOKE if args.smoke else FULL, **given)


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread. The kernel's peak
    (VmHWM) covers the whole life of the process, load included, so a scenario's own
    peak has to be sampled."""

    def __init__(self, pid: int, *, interval: float = 0.02) -> None:
        self._path = Path(f"/proc/{pid}/status")
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.start_mb = self.peak_mb = self._read()
        self.samples = 1

    def _read(self) -> float:
        with contextlib.suppress(OSError):
            for line in self._path.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_mb = max(self.peak_mb, self._read())
            self.samples += 1

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._read())

    def memory(self) -> Memory:
        return Memory(self.start_mb, self.peak_mb, self.samples)


@dataclass
class Harness:
    """The server under test, its callers, and what a measurement needs to read."""

    options: OverloadOptions
    server: ServerProcess
    clients: CallerProcesses
    postmaster: int | None

    def refusal_floor(self, callers: int) -> dict[str, float]:
        """Time to refusal from a server that does nothing else (bench/overload_floor.py),
        with this run's callers and processes."""
        with refusing_server() as target:
            job = replace(
                self.job("floor", callers=callers, seconds=5.0, deadline=None), target=target
            )
            calls = self.clients.run(job)
        refused = Latency.of([c.seconds * 1000 for c in calls if c.code == "RESOURCE_EXHAUSTED"])
        if not refused.count:
            return {"refusals": 0, "p50_ms": 0.0, "p99_ms": 0.0}
        return {"refusals": refused.count, "p50_ms": refused.p50_ms, "p99_ms": refused.p99_ms}

    def job(self, tag: str, *, callers: int, seconds: float, deadline: float | None) -> CallerJob:
        # A call with a deadline ends by itself; the drain is only a margin for those.
        drain = self.options.drain if deadline is None else deadline + 1.0
        return CallerJob(
            self.server.target,
            MODES[self.options.mode],
            callers,
            seconds,
            deadline,
            drain,
            self.options.k,
            tag,
            self.options.refusal_pause,
        )

    def cpu(self) -> float:
        """CPU seconds of the server, plus PostgreSQL's when this run owns the cluster."""
        used = self.server.cpu_seconds()
        if self.postmaster is not None:
            with contextlib.suppress(OSError):
                used += cpu_seconds(self.postmaster, with_children=True)
        return used

    def wait_quiet(self) -> None:
        """Waits until the server has finished what earlier callers left it (a call the
        client gave up on may still be worked on), so it does not weigh on the next
        measurement. Bounded: an idle server that stays busy only costs the timeout."""
        started = time.monotonic()
        while time.monotonic() - started < _QUIET_TIMEOUT_SECONDS:
            before = self.cpu()
            time.sleep(0.5)
            if (self.cpu() - before) / 0.5 < _QUIET_CPU_SHARE:
                return
        log.warning("the server stayed busy for %.0f s after the callers", _QUIET_TIMEOUT_SECONDS)

    def capacity(self) -> Capacity:
        options = self.options
        warm = self.job("w", callers=1, seconds=options.warmup_seconds, deadline=None)
        self.clients.run(warm)
        self.wait_quiet()
        job = self.job("c", callers=1, seconds=options.capacity_seconds, deadline=None)
        calls = self.clients.run(job)
        self.server.check_alive()
        return capacity_of(job.rpc, calls, seconds=job.seconds)

    def scenario(
        self, name: str, *, callers: int, deadline: float | None, capacity: Capacity
    ) -> ScenarioResult:
        self.wait_quiet()
        job = self.job(name[0], callers=callers, seconds=self.options.seconds, deadline=deadline)
        marks: list[float] = []  # server CPU seconds and the clock, as the callers start

        def mark() -> None:
            marks.extend([self.server.cpu_seconds(), time.perf_counter()])

        sampler = RssSampler(self.server.pid)
        with sampler:
            calls = self.clients.run(job, on_start=mark)
            cpu = (self.server.cpu_seconds() - marks[0]) / (time.perf_counter() - marks[1])
        self.server.check_alive()
        result = summarize(
            name,
            calls,
            callers=callers,
            deadline=deadline,
            seconds=job.seconds,
            capacity_rps=capacity.requests_per_second,
            memory=sampler.memory(),
            server_cpu_share=cpu,
        )
        if deadline is not None:
            return deadline_checks(result)
        return unbounded_checks(result, max_rss_growth_mb=self.options.max_rss_growth_mb)


@contextlib.contextmanager
def _harness(options: OverloadOptions, queries: list[str]) -> Iterator[Harness]:
    """A loaded server and its callers; everything goes (server, client processes,
    database, cluster, temporary folder) when the block ends, however it ends."""
    requests = corpus_requests(
        options.source,
        options.chunks,
        cache_dir=options.cache_dir,
        embed_pool=options.embed_pool,
        seed=options.seed,
    )
    with fresh_server(
        options.backend, dict(options.server_env), name="docfoundry-overload"
    ) as fresh:
        # Inside the server's block, so the callers stop before their server.
        clients = CallerProcesses(min(options.client_processes, options.callers), queries)
        try:
            if options.split_cpus:
                fresh.server.wait_serving()
                _split_cpus(fresh.server.pid, clients.pids, fresh.postmaster)
            seconds = fresh.load(requests)
            log.info("loaded %d chunks in %.1f s", options.chunks, seconds)
            yield Harness(options, fresh.server, clients, fresh.postmaster)
        finally:
            clients.close()


def _split_cpus(server: int, clients: Sequence[int], postmaster: int | None) -> None:
    """Server and database on the first half of the CPUs, callers on the rest. Every
    thread is pinned (a thread made later inherits its creator's CPUs), and PostgreSQL's
    backends with their postmaster."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--split-cpus needs at least two CPUs")
    half = len(cpus) // 2
    serving, calling = set(cpus[:half]), set(cpus[half:])
    owners = [server, *_children(postmaster)] if postmaster else [server]
    for pid in owners:
        _pin(pid, serving)
    for pid in clients:
        _pin(pid, calling)
    log.info("server on CPUs %s, callers on CPUs %s", sorted(serving), sorted(calling))


def _pin(pid: int, cpus: set[int]) -> None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)


def _children(parent: int) -> list[int]:
    """`parent` and the processes whose parent it is."""
    found = [parent]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == parent:
                    found.append(int(entry.name))
    return found


def run(options: OverloadOptions, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs the measurement and the two scenarios; returns the report written as JSON."""
    queries = read_queries(options.source / "queries.jsonl")
    report: dict[str, Any] = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "options": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in asdict(options).items()
            if k != "server_env"
        },
        "server_env": dict(options.server_env),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
    }
    with _harness(options, queries) as harness:
        capacity = harness.capacity()
        say(format_capacity(capacity))
        report["capacity"] = capacity
        scenarios: dict[str, ScenarioResult] = {}
        for name, callers, deadline in (
            ("deadlines", options.callers, options.deadline),
            ("no-deadlines", options.callers_unbounded, None),
        ):
            scenarios[name] = harness.scenario(
                name, callers=callers, deadline=deadline, capacity=capacity
            )
            say(format_scenario(scenarios[name]))
        report["scenarios"] = scenarios
        floor = harness.refusal_floor(options.callers)
        say(
            f"refusal floor ({options.callers} callers against a server that only refuses): "
            f"time to refusal p50 {floor['p50_ms']:.1f} ms, p99 {floor['p99_ms']:.1f} ms"
        )
        report["refusal_floor"] = floor
    report["load_after"] = os.getloadavg()[0]
    return report


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    stop_on_sigterm()  # its server, client processes and PostgreSQL cluster go with it
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    print(
        f"overload: {options.backend}, {options.chunks} chunks, {options.mode}, "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
        + (f", server env {dict(options.server_env)}" if options.server_env else "")
        + (", server and callers on separate CPUs" if options.split_cpus else ""),
        flush=True,
    )
    try:
        report = run(options, say=lambda text: print(text, flush=True))
    except KeyboardInterrupt:
        print("stopped; its server, callers and databases were shut down", file=sys.stderr)
        return 130
    if options.out is not None:
        options.out.parent.mkdir(parents=True, exist_ok=True)
        options.out.write_text(to_json(report) + "\n")
        print(f"wrote {options.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
