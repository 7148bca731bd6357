"""The server under test, run as a client would find it: `docfoundry serve` in its own
process, configured only through its environment; plus the databases it runs on and the
CPU and memory those processes use (read from /proc, so nothing is sampled or missed
between samples: the kernel keeps the totals and the peak)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from docfoundry_grpc.config import DatabaseConfig, PostgresConfig
from docfoundry_grpc.devdb import LocalPostgres, free_port

log = logging.getLogger("bench")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# Process accounting --------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU of `pid`; with_children adds its live children and the exited
    ones it has waited for (PostgreSQL backends are children of the postmaster)."""
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
        for child in _children(pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                child_fields = _stat_fields(child)
                ticks += int(child_fields[11]) + int(child_fields[12])
    return ticks / _CLOCK_TICKS


def _children(pid: int) -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    yield int(entry.name)


def peak_rss_mb(pid: int) -> float:
    """The kernel's high-water mark of the process's resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# Databases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """One fresh database: how the server is told about it and how to open it in-process."""

    backend: str
    env: Mapping[str, str]
    config: DatabaseConfig


def buffer_cache_size() -> str:
    """A quarter of the machine's memory, the usual shared_buffers sizing. It holds the
    vector index of every corpus the bench builds (about 2 GB at 1M chunks); PostgreSQL's
    default of 128 MB made HNSW search twice as slow at 100k (docs/operations.md)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{memory // 4 // 2**20}MB"


class PostgresHost:
    """Where PostgreSQL databases come from: `dsn` if given (the run may create and drop
    databases there), else a throwaway local cluster that lives as long as this object."""

    def __init__(self, dsn: str | None) -> None:
        self._local: LocalPostgres | None = None
        if dsn is None:
            self._local = LocalPostgres(settings={"shared_buffers": buffer_cache_size()})
            self._local.start()
            dsn = self._local.dsn
        self.admin_dsn = dsn

    def describe(self) -> dict[str, object]:
        """The server's version and buffer cache, for the report."""
        return {
            "version": _fetchval(self.admin_dsn, "SHOW server_version"),
            "shared_buffers": _fetchval(self.admin_dsn, "SHOW shared_buffers"),
            "own_cluster": self._local is not None,
        }

    def postmaster_pid(self) -> int | None:
        """The cluster's main process when this run owns it (for its CPU time)."""
        if self._local is None:
            return None
        pid_file = self._local.data_dir / "postmaster.pid"
        return int(pid_file.read_text().split()[0]) if pid_file.exists() else None

    def dsn_for(self, name: str) -> str:
        base, _, _ = self.admin_dsn.rpartition("/")
        return f"{base}/{name}"

    def _admin(self, statement: str) -> None:
        _fetchval(self.admin_dsn, statement)

    @contextlib.contextmanager
    def database(self) -> Iterator[Database]:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        dsn = self.dsn_for(name)
        config = DatabaseConfig(
            type="postgresql",
            postgres=PostgresConfig(url=dsn, pool_min_size=1, pool_max_size=4),
        )
        try:
            env = {
                "DATABASE_TYPE": "postgresql",
                "DATABASE_URL": dsn,
                # The HNSW graph of a 1M-chunk corpus is built in memory: several GB.
                "POSTGRES_INDEX_BUILD_MEMORY": "4GB",
            }
            yield Database("postgresql", env, config)
        finally:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._local is not None:
            self._local.destroy()
            self._local = None


def without_vector_index(database: Database) -> Database:
    """The same database, served without a vector index: how a bulk load should run."""
    return replace(database, env={**database.env, "POSTGRES_VECTOR_INDEX": "none"})


def _fetchval(dsn: str, statement: str) -> object:
    import asyncpg

    async def run() -> object:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetchval(statement)
        finally:
            await connection.close()

    return asyncio.run(run())


_UNPACKED = """
SELECT (SELECT count(*) FROM chunks c, segment_state s WHERE c.id > s.through)
     + (SELECT count(*) FROM segment_tombstones)
"""


INDEX_WAIT_SECONDS = 3600.0


def settle(database: Database, *, timeout: float = 3600.0) -> float:
    """Brings a freshly loaded PostgreSQL database to the state a server reaches once writes
    pause: the server packs the new postings by itself (its compactor runs when the backlog
    stops growing), then autovacuum brings planner statistics and a visibility map, and a
    checkpoint writes the load's pages out. Waits for the first and runs the others;
    returns the seconds spent waiting for the packing."""
    dsn = database.env["DATABASE_URL"]
    started = time.monotonic()
    while _fetchval(dsn, _UNPACKED):
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the server left postings unpacked for {timeout:.0f}s")
        time.sleep(0.5)
    waited = time.monotonic() - started
    _fetchval(dsn, "VACUUM (ANALYZE)")
    _checkpoint(dsn)
    return waited


def _checkpoint(dsn: str) -> None:
    """Without it, the checkpoints the load set off may still be writing during the first
    timed levels. Needs superuser (or pg_checkpoint) on a server given by --dsn."""
    import asyncpg

    try:
        _fetchval(dsn, "CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        log.warning("no CHECKPOINT after the load: the --dsn role may not run one")


@contextlib.contextmanager
def sqlite_database(folder: Path) -> Iterator[Database]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench-{uuid.uuid4().hex[:8]}.db"
    try:
        yield Database(
            "sqlite",
            {"DATABASE_TYPE": "sqlite", "SQLITE_PATH": str(path)},
            DatabaseConfig(type="sqlite", sqlite_path=path),
        )
    finally:
        for suffix in ("", "-wal", "-shm", ".lock"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        shutil.rmtree(path.with_name(path.name + ".graphs"), ignore_errors=True)


# The server -----------------------------------------------------------------------------


def _serve_command() -> list[str]:
    script = Path(sys.executable).with_name("docfoundry")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "docfoundry_grpc", "serve"]


class ServerProcess:
    """`docfoundry serve` on a free loopback port, its output in `log_path`."""

    def __init__(self, database: Database, *, log_path: Path) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if k != "EMBEDDING_CACHE_PATH"}
        env.update(database.env)
        # faulthandler: a crash in native code still leaves a traceback in the log.
        env.update(
            GRPC_HOST="127.0.0.1",
            GRPC_PORT=str(self.port),
            METRICS_PORT=str(self.metrics_port),
            LOG_LEVEL="WARNING",
            PYTHONFAULTHANDLER="1",
        )
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                _serve_command(),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_serving(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        request = health_pb2.HealthCheckRequest()
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                self.check_alive()
                with contextlib.suppress(grpc.RpcError):
                    status = stub.Check(request, timeout=2).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                time.sleep(0.2)
        raise RuntimeError(f"server not serving after {timeout:g} s: {self._log_tail()}")

    def check_alive(self) -> None:
        """Raises with the exit status and the log's end if the server has stopped."""
        code = self._process.poll()
        if code is not None:
            raise RuntimeError(f"server exited with status {code}: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def segment_cache_lookups(self) -> tuple[float, float] | None:
        """(hits, misses) of the server's full-text segment cache so far, from its metrics
        endpoint; None where the backend keeps no such cache."""
        counts = self._samples("docfoundry_fulltext_cache_lookups_total", "result")
        return (counts["hit"], counts["miss"]) if counts else None

    def segment_cache_bytes(self) -> tuple[float, float] | None:
        """(used, capacity) bytes of the server's full-text segment cache, or None."""
        used = self._samples("docfoundry_fulltext_cache_bytes", "backend")
        capacity = self._samples("docfoundry_fulltext_cache_capacity_bytes", "backend")
        if not used or not capacity:
            return None
        return sum(used.values()), sum(capacity.values())

    def wait_vector_graphs(self, timeout: float = INDEX_WAIT_SECONDS) -> float | None:
        """Waits until the server's approximate vector graphs are built (SQLite); returns
        the seconds waited, None if the server has no graph at all."""
        started = time.monotonic()
        while self._samples("docfoundry_vector_graph_builds", "backend").get("sqlite", 0):
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the server's vector graphs took over {timeout:.0f}s")
            time.sleep(0.5)
        chunks = self._samples("docfoundry_vector_graph_chunks", "backend").get("sqlite", 0)
        return time.monotonic() - started if chunks else None

    def _samples(self, name: str, label: str) -> dict[str, float]:
        """The values of the metric samples called `name`, keyed by `label`."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode()
        return {
            sample.labels[label]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        }

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.pid)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
