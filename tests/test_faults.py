"""A fault matrix against real processes: the server run as an operator runs it (`python
server.py`, `docfoundry serve`), fed an IndexDocuments stream over gRPC, then killed (-9),
its PostgreSQL killed (-9), or stopped by SIGTERM under load.

The invariant after every fault, checked after a restart: acknowledged = stored, and
nothing half-written. Every document whose outcome came back CREATED or REPLACED is stored
in that version or a later one sent after it; every stored document holds exactly the
chunks sent for its version (listing, collection counts and a full-text search agree); a
stream that did not acknowledge every document it sent ended with an error status.

Documents carry caller vectors (a caller-vector collection), so no model runs on ingest;
every tenth one replaces an earlier path with a different number of chunks. `pytest -s`
prints what each fault left: versions sent, acknowledged, stored, and how streams ended.

The matrix found three defects that showed now and then, each fixed and now asserted: an
INTERNAL for a write that met a pooled connection of the crashed PostgreSQL, a process that
outlived "DocFoundry stopped" (a reader held by a cancelled call kept its thread), and an
unhandled error logged for the stream the grace period cancels.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from docfoundry.v1 import search_pb2 as pb
from docfoundry_client import DocFoundryClient, DocumentInfo, SearchResult
from docfoundry_grpc.devdb import LocalPostgres, free_port

from .conftest import BACKENDS, PostgresServer, fresh_database, own_local_postgres

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = "faults"
DIMENSION = 8
MARK = "faultmark"  # in every chunk's text: one full-text query finds every stored chunk
GRACE_SECONDS = 2.0
EXIT_MARGIN_SECONDS = 3.0
SHUTDOWN_STATUSES = {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
SERVING = health_pb2.HealthCheckResponse.SERVING
STREAM_LIMIT = 5000  # more than any fault lets through: each stream is cut mid-way
# Acknowledged before the fault: half of the fourth batch of 16, so the server is sending
# that batch's outcomes or already writing the next one.
ACKS_BEFORE_FAULT = 56
SEARCHERS = 8
CALL_TIMEOUT = 10.0  # each search's deadline: a call left hanging fails the test
WINDOW = 40  # unacknowledged documents a stream lets out (the server stores 16 at a time)
Command = list[str]
PYTHON_SERVER: Command = [sys.executable, str(ROOT / "server.py")]
DOCFOUNDRY_SERVE: Command = [sys.executable, "-m", "docfoundry_grpc", "serve"]


# --- what was sent, what was acknowledged ---------------------------------------------

OUTCOME = pb.IndexDocumentsResponse


@dataclass(frozen=True)
class Version:
    path: str
    number: int
    chunks: int

    @property
    def title(self) -> str:
        return f"{self.path} v{self.number}"

    def headings(self) -> list[str]:
        return [f"v{self.number} part {j}" for j in range(self.chunks)]


@dataclass
class Ledger:
    """Every document version sent, in stream order, and the latest acknowledged per path."""

    sent: list[Version] = field(default_factory=list)
    acked: dict[str, Version] = field(default_factory=dict)
    by_title: dict[str, Version] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    ack_count: int = 0

    def next_request(self) -> pb.IndexDocumentsRequest:
        document = self._document(self._next_version())
        return pb.IndexDocumentsRequest(document=document, collection=COLLECTION)

    def acknowledge(self, version: Version, outcome: pb.IndexDocumentsResponse) -> None:
        assert (outcome.path, outcome.chunk_count) == (version.path, version.chunks)
        expected = {OUTCOME.OUTCOME_CREATED, OUTCOME.OUTCOME_REPLACED}  # earlier one lost?
        if version.number == 1:
            expected = {OUTCOME.OUTCOME_CREATED}
        elif version.path in self.acked:
            expected = {OUTCOME.OUTCOME_REPLACED}
        assert outcome.outcome in expected, f"{version.title}: {outcome}"
        self.acked[version.path] = version
        self.ack_count += 1

    def _next_version(self) -> Version:
        n = len(self.sent)
        if n % 10 == 9:
            path = self.paths[n // 3]
            previous = [v for v in self.sent if v.path == path][-1]
            chunks = previous.chunks % 6 + 1  # never the previous count
            version = Version(path, previous.number + 1, chunks)
        else:
            path = f"fault/doc-{len(self.paths):05d}.md"
            self.paths.append(path)
            version = Version(path, 1, 1 + n * 7 % 6)
        self.sent.append(version)
        self.by_title[version.title] = version
        return version

    @staticmethod
    def _document(version: Version) -> pb.Document:
        chunks = [
            pb.ChunkInput(
                heading=heading,
                anchor=f"part-{j}",
                text=f"{MARK} {version.path} version {version.number} part {j}",
                embedding=[math.sin(version.number + j + d * 0.7) for d in range(DIMENSION)],
            )
            for j, heading in enumerate(version.headings())
        ]
        return pb.Document(path=version.path, title=version.title, chunks=chunks)


def _index_documents(
    channel: grpc.aio.Channel,
) -> grpc.aio.StreamStreamMultiCallable[pb.IndexDocumentsRequest, pb.IndexDocumentsResponse]:
    return channel.stream_stream(
        "/docfoundry.v1.IndexService/IndexDocuments",
        request_serializer=pb.IndexDocumentsRequest.SerializeToString,
        response_deserializer=pb.IndexDocumentsResponse.FromString,
    )


@dataclass(frozen=True)
class Ended:
    """How a stream ended: its status code, and details for messages."""

    code: grpc.StatusCode
    details: str = ""

    @property
    def write_lost_the_status(self) -> bool:
        """grpc/grpc#36066: an asyncio client whose write fails as the server ends the call
        reports INTERNAL "Internal error from Core" in place of the server's status."""
        return self.code == grpc.StatusCode.INTERNAL and "execute_batch" in self.details


async def ingest(target: str, ledger: Ledger, *, limit: int) -> Ended:
    """One IndexDocuments stream of up to `limit` documents; returns its final status.
    Each outcome is matched with the version sent at its place in the stream.

    At most WINDOW documents are unacknowledged at a time, as a client that keeps its
    memory bounded would send them: enough for two batches, while no write waits on flow
    control when a fault strikes. The generated stream call, not DocFoundryClient: gRPC's
    own request consumer stops quietly once the call has ended, where the client's writer
    can raise InvalidStateError in place of the server's status."""
    first = len(ledger.sent)
    received = 0
    ended = asyncio.Event()

    async def requests() -> AsyncIterator[pb.IndexDocumentsRequest]:
        for n in range(limit):
            while n - received >= WINDOW:
                if ended.is_set():
                    return
                await asyncio.sleep(0.002)
            yield ledger.next_request()

    async with grpc.aio.insecure_channel(target) as channel:
        try:
            async for outcome in _index_documents(channel)(requests()):
                ledger.acknowledge(ledger.sent[first + received], outcome)
                received += 1
        except grpc.aio.AioRpcError as exc:
            assert received < len(ledger.sent) - first, "an error after every acknowledgement"
            return Ended(exc.code(), f"{exc.details()} ({exc.debug_error_string()})")
        finally:
            ended.set()
    assert received == limit, "the stream ended OK without acknowledging every document"
    return Ended(grpc.StatusCode.OK)


# --- the invariant ----------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    acknowledged: int
    stored: int
    chunks: int


async def _listed(client: DocFoundryClient) -> dict[str, DocumentInfo]:
    listed: dict[str, DocumentInfo] = {}
    token = ""
    for _ in range(100):
        page = await client.list_documents(collection=COLLECTION, page_size=1000, page_token=token)
        listed.update({d.path: d for d in page.documents})
        token = page.next_page_token
        if not token:
            return listed
    raise AssertionError("the listing never ended")


async def _searched_headings(client: DocFoundryClient) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    token = ""
    for _ in range(100):
        page = await client.fulltext(MARK, k=1000, collection=COLLECTION, page_token=token)
        for hit in page.hits:
            found.setdefault(hit.document_path, []).append(hit.heading)
        token = page.next_page_token
        if not token:
            return {path: sorted(headings) for path, headings in found.items()}
    raise AssertionError("the search never ended")


async def check_invariant(target: str, ledger: Ledger) -> Observed:
    """Acknowledged = stored, nothing half-written (see the module's docstring)."""
    async with DocFoundryClient(target) as client:
        listed = await _listed(client)
        headings = await _searched_headings(client)
        fetched = {
            path: await client.get_document(path, collection=COLLECTION)
            for path in ledger.acked
            if path in listed
        }
        collection = await client.get_collection(COLLECTION)
    for path, acked in ledger.acked.items():
        stored = ledger.by_title.get(listed[path].title) if path in listed else None
        assert stored is not None and stored.number >= acked.number, (
            f"{path}: v{acked.number} acknowledged, {stored} stored"
        )
        assert fetched[path] == listed[path], f"{path}: GetDocument and ListDocuments differ"
    searched = sum(len(found) for found in headings.values())
    assert searched == collection.chunk_count, (
        f"full-text search found {searched} chunks of {collection.chunk_count}"
    )
    chunks = 0
    for path, info in listed.items():
        version = ledger.by_title.get(info.title)
        assert version is not None and version.path == path, f"{path}: stored, never sent"
        assert info.chunk_count == version.chunks, (
            f"{path} v{version.number}: {info.chunk_count} chunks stored of {version.chunks}"
        )
        assert headings.get(path) == version.headings(), f"{path}: searchable chunks differ"
        chunks += version.chunks
    assert set(headings) <= set(listed), "chunks of a document that is not stored"
    assert (collection.document_count, collection.chunk_count) == (len(listed), chunks)
    return Observed(len(ledger.acked), len(listed), chunks)


# --- server and database processes ----------------------------------------------------


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    target: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with grpc.aio.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.process.poll() is None, f"the server exited:\n{self.log()}"
                with suppress(grpc.aio.AioRpcError):
                    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if answer.status == SERVING:
                        return
                assert time.monotonic() < deadline, f"never SERVING:\n{self.log()}"
                await asyncio.sleep(0.1)

    async def exited_within(self, timeout: float) -> float | None:
        """Seconds until the process exited, or None if it still ran after `timeout`."""
        started = time.monotonic()
        while self.process.poll() is None:
            if time.monotonic() - started > timeout:
                return None
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@asynccontextmanager
async def running_server(
    command: Command, env: dict[str, str], folder: Path
) -> AsyncIterator[ServerProcess]:
    """The server on a free loopback port, SERVING; killed on the way out if still running."""
    port = free_port()
    settings = {
        "GRPC_HOST": "127.0.0.1",
        "GRPC_PORT": str(port),
        "METRICS_PORT": "0",
        "EMBEDDING_PRECISION": "float32",  # starts faster; documents bring their vectors
        "SEARCH_MAX_K": "100000",  # pages go this deep: the invariant's search sees every chunk
        "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        **env,
    }
    log_path = folder / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env={**os.environ, **settings}, cwd=folder, stdout=log, stderr=log
        )
    server = ServerProcess(process, f"127.0.0.1:{port}", log_path)
    try:
        await server.wait_serving()
        yield server
    finally:
        server.kill()


def postgres_env(dsn: str) -> dict[str, str]:
    return {
        "DATABASE_TYPE": "postgresql",
        "DATABASE_URL": dsn,
        "POSTGRES_POOL_MIN_SIZE": "1",
        "POSTGRES_POOL_MAX_SIZE": "4",
    }


def kill_postmaster(cluster: LocalPostgres) -> None:
    pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)


async def restart_postgres(cluster: LocalPostgres, timeout: float = 30) -> None:
    """pg_ctl start, retried while the killed postmaster's backends still hold its memory."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await asyncio.to_thread(cluster.start)
            return
        except subprocess.CalledProcessError:
            assert time.monotonic() < deadline, "PostgreSQL did not start again"
            await asyncio.sleep(0.3)


async def until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.002)


async def create_collection(target: str) -> None:
    async with DocFoundryClient(target) as client:
        await client.create_collection(COLLECTION, vectors="caller", dimension=DIMENSION)


async def fault_mid_ingest(
    target: str, ledger: Ledger, fault: Callable[[], Awaitable[None]]
) -> Ended:
    """Starts a long stream, injects `fault` once some batches are acknowledged while the
    stream still runs, and returns the stream's status (a hang fails)."""
    enough = ledger.ack_count + ACKS_BEFORE_FAULT
    stream = asyncio.create_task(ingest(target, ledger, limit=STREAM_LIMIT))
    try:
        await until(lambda: ledger.ack_count >= enough or stream.done(), "acknowledged")
        assert not stream.done(), f"the stream ended before the fault: {stream.result()}"
        await fault()
        return await asyncio.wait_for(stream, 15)
    finally:
        stream.cancel()
        await asyncio.gather(stream, return_exceptions=True)


def report(case: str, ledger: Ledger, observed: Observed, ended: Ended, extra: str = "") -> None:
    """One line for `pytest -s`: what the fault left, and how the cut stream ended."""
    print(
        f"\n{case}: {len(ledger.sent)} versions sent, {ledger.ack_count} acknowledged "
        f"({observed.acknowledged} paths); {observed.stored} documents with {observed.chunks} "
        f"chunks stored; stream ended {ended.code.name}{extra}"
    )


# --- the cases ------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
async def database_env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {"DATABASE_TYPE": "sqlite", "SQLITE_PATH": str(tmp_path / "faults.db")}
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    async with fresh_database(server) as dsn:
        yield postgres_env(dsn)


async def test_server_killed_mid_ingest_keeps_what_it_acknowledged(
    database_env: dict[str, str], tmp_path: Path
) -> None:
    ledger = Ledger()
    async with running_server(PYTHON_SERVER, database_env, tmp_path) as server:
        await create_collection(server.target)

        async def kill_server() -> None:
            server.kill()

        ended = await fault_mid_ingest(server.target, ledger, kill_server)
    assert ended.code != grpc.StatusCode.OK, "the cut stream reported success"
    async with running_server(DOCFOUNDRY_SERVE, database_env, tmp_path) as server:
        observed = await check_invariant(server.target, ledger)
    report(f"kill -9 server, {database_env['DATABASE_TYPE']}", ledger, observed, ended)


@pytest.fixture
def crashing_postgres() -> Iterator[LocalPostgres]:
    """A cluster of this test alone, started: killing it disturbs no other test."""
    cluster = own_local_postgres()
    try:
        yield cluster.start()
    finally:
        cluster.destroy(mode="immediate")


async def test_postgres_crash_mid_ingest_reports_errors_and_recovers(
    crashing_postgres: LocalPostgres, tmp_path: Path
) -> None:
    ledger = Ledger()
    env = postgres_env(crashing_postgres.dsn)
    async with running_server(DOCFOUNDRY_SERVE, env, tmp_path) as server:
        await create_collection(server.target)

        async def crash() -> None:
            kill_postmaster(crashing_postgres)

        crashed = await fault_mid_ingest(server.target, ledger, crash)
        assert crashed.code != grpc.StatusCode.OK, "the cut stream reported success"
        acked = ledger.ack_count
        down = await ingest(server.target, ledger, limit=5)  # all sent before the first write
        assert down.code == grpc.StatusCode.UNAVAILABLE, down
        assert ledger.ack_count == acked, "acknowledged while PostgreSQL was down"
        await restart_postgres(crashing_postgres)
        await server.wait_serving(timeout=30)
        recovered = await ingest(server.target, ledger, limit=40)
        assert recovered.code == grpc.StatusCode.OK, recovered
        observed = await check_invariant(server.target, ledger)
    report("kill -9 postmaster", ledger, observed, crashed)
    assert crashed.code == grpc.StatusCode.UNAVAILABLE or crashed.write_lost_the_status, crashed


@dataclass
class SearchLoad:
    """Searchers calling in a loop until stopped, counting every call's status."""

    statuses: Counter[grpc.StatusCode] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, target: str, searcher: int) -> None:
        vector = [math.cos(searcher + d) for d in range(DIMENSION)]
        kinds: list[Callable[[DocFoundryClient], Awaitable[SearchResult]]] = [
            lambda c: c.fulltext(MARK, k=20, collection=COLLECTION),
            lambda c: c.semantic(MARK, k=20, collection=COLLECTION, query_vector=vector),
            lambda c: c.hybrid(MARK, k=20, collection=COLLECTION, query_vector=vector),
            lambda c: c.hybrid("how are documents stored", k=5),  # the model embeds it
        ]
        search = kinds[-1] if searcher == 0 else kinds[searcher % 3]  # one waits on the model
        async with DocFoundryClient(target, timeout=CALL_TIMEOUT) as client:
            while not self.stop.is_set():
                try:
                    await search(client)
                    self.statuses[grpc.StatusCode.OK] += 1
                except grpc.aio.AioRpcError as exc:
                    self.statuses[exc.code()] += 1
                    await asyncio.sleep(0.02)


async def sigterm_under_load(
    server: ServerProcess, ledger: Ledger, load: SearchLoad
) -> tuple[float | None, Ended]:
    """SIGTERM while searches and an ingest stream run; returns seconds until the process
    exited (None: it still ran 2 s past the allowed time, and was killed) and how the stream
    ended. Every call has a deadline: a call the shutdown leaves hanging ends DEADLINE_EXCEEDED."""
    enough = ledger.ack_count + ACKS_BEFORE_FAULT
    stream = asyncio.create_task(ingest(server.target, ledger, limit=STREAM_LIMIT))
    searchers = [asyncio.create_task(load.run(server.target, n)) for n in range(SEARCHERS)]

    def busy() -> bool:
        return ledger.ack_count >= enough and load.statuses[grpc.StatusCode.OK] >= 40

    try:
        await until(lambda: busy() or stream.done(), "under load")
        assert not stream.done(), f"the stream ended before SIGTERM: {stream.result()}"
        server.process.send_signal(signal.SIGTERM)
        exit_seconds = await server.exited_within(GRACE_SECONDS + EXIT_MARGIN_SECONDS + 2)
        if exit_seconds is None:
            server.kill()
        ended = await asyncio.wait_for(stream, CALL_TIMEOUT + 5)
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*searchers), CALL_TIMEOUT + 5)
        return exit_seconds, ended
    finally:
        load.stop.set()
        for task in (stream, *searchers):
            task.cancel()
        await asyncio.gather(stream, *searchers, return_exceptions=True)


async def test_sigterm_under_load_drains_within_grace_and_keeps_what_it_acknowledged(
    tmp_path: Path,
) -> None:
    env = {
        "DATABASE_TYPE": "sqlite",
        "SQLITE_PATH": str(tmp_path / "faults.db"),
        "METRICS_PORT": str(free_port()),  # as deployed: its server stops with the rest
    }
    ledger, load = Ledger(), SearchLoad()
    async with running_server(PYTHON_SERVER, env, tmp_path) as server:
        await create_collection(server.target)
        assert (await ingest(server.target, ledger, limit=32)).code == grpc.StatusCode.OK
        exit_seconds, ended = await sigterm_under_load(server, ledger, load)
        returncode, log = server.process.returncode, server.log()
    assert ended.code in SHUTDOWN_STATUSES or ended.write_lost_the_status, ended
    assert set(load.statuses) <= SHUTDOWN_STATUSES, f"searches ended {dict(load.statuses)}"
    if exit_seconds is not None:
        assert returncode == 0, log[-3000:]
    async with running_server(DOCFOUNDRY_SERVE, env, tmp_path) as server:
        observed = await check_invariant(server.target, ledger)
    statuses = ", ".join(f"{code.name} {n}" for code, n in load.statuses.items())
    report("SIGTERM under load", ledger, observed, ended, f"; searches: {statuses}")
    print(f"exited {exit_seconds} s after SIGTERM (grace {GRACE_SECONDS:g} s)")
    judge_shutdown(exit_seconds, log)  # last: a slow exit must not hide what the rest finds


def judge_shutdown(exit_seconds: float | None, log: str) -> None:
    """The exit within the grace period plus the margin, with nothing logged as an error."""
    assert exit_seconds is not None and exit_seconds <= GRACE_SECONDS + EXIT_MARGIN_SECONDS, (
        f"exited {exit_seconds} s after SIGTERM, grace {GRACE_SECONDS:g} s"
    )
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert not errors and "Traceback" not in log, "\n".join(errors) or log[-3000:]
