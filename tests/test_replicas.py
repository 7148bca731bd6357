"""Read replicas, against a real streaming replica on loopback (pg_basebackup from the test
cluster): searches go to the replica, writes to the primary; a read carrying a write's
consistency token sees that write; a replica that stops or lags is skipped and reads fall
back to the primary. And the token's checks, the same on both backends."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import grpc
import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_client import DocFoundryClient
from docfoundry_grpc.devdb import LocalPostgres

from .conftest import (
    Harness,
)
from .test_grpc import expect_status, indexed

TRIALS = 200


def reads(server: Harness) -> dict[str, int]:
    return dict(server.app.store.inner._reads.reads())  # type: ignore[attr-defined]


def healthy(server: Harness) -> dict[str, bool]:
    return dict(server.app.store.inner._reads.health())  # type: ignore[attr-defined]


async def eventually(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def index_one(server: Harness, path: str, content: str) -> str:
    document = pb.Document(path=path, content=content)
    [outcome] = [
        o
        async for o in server.index.IndexDocuments(
            iter([pb.IndexDocumentsRequest(document=document)])
        )
    ]
    assert outcome.outcome == pb.IndexDocumentsResponse.OUTCOME_CREATED
    return outcome.consistency_token


async def test_searches_go_to_the_replica_and_see_their_own_writes(replicated: Harness) -> None:
    server = replicated
    await indexed(server)
    await eventually(lambda: all(healthy(server).values()))
    before = reads(server)
    seen = 0
    for trial in range(TRIALS):
        word = f"zebra{trial}quokka"
        token = await index_one(server, f"trial/{trial}.md", f"# Trial {trial}\n\nThe {word}.")
        assert token.startswith("pg:")
        found = await server.search.Fulltext(pb.FulltextRequest(q=word, consistency_token=token))
        seen += [h.document_path for h in found.hits] == [f"trial/{trial}.md"]
    assert seen == TRIALS
    # A hundred writes can put the replica past POSTGRES_READ_MAX_LAG_SECONDS (0.5 here) on
    # a loaded machine, and a lagging replica is rightly skipped: the share below is about
    # a healthy one.
    await eventually(lambda: all(healthy(server).values()))
    for i in range(100):
        await server.search.Hybrid(pb.HybridRequest(q=f"cats and ports {i}"))
    after = reads(server)
    counted = {target: after[target] - before.get(target, 0) for target in after}
    total = sum(counted.values())
    assert counted["primary"] / total < 0.10, counted
    metric = "docfoundry_reads_total"
    scraped = await asyncio.to_thread(
        server.registry.get_sample_value, metric, {"backend": "postgresql", "target": "primary"}
    )
    assert scraped == after["primary"]


async def test_a_lagging_replica_is_skipped_and_tokens_still_hold(
    replicated: Harness, replica: LocalPostgres
) -> None:
    server = replicated
    await eventually(lambda: all(healthy(server).values()))
    standby = await asyncpg.connect(replica.dsn)
    try:
        await standby.execute("SELECT pg_wal_replay_pause()")
        token = await index_one(server, "late.md", "# Late\n\nA platypus arrives late.")
        # The replica cannot have it: a read with the token waits, then reads the primary.
        found = await server.search.Fulltext(
            pb.FulltextRequest(q="platypus", consistency_token=token)
        )
        assert [h.document_path for h in found.hits] == ["late.md"]
        await eventually(lambda: not any(healthy(server).values()))
        primary_before = reads(server)["primary"]
        plain = await server.search.Fulltext(pb.FulltextRequest(q="platypus"))
        # From the primary: the paused replica has not replayed it.
        assert [h.document_path for h in plain.hits] == ["late.md"]
        assert reads(server)["primary"] > primary_before
    finally:
        await standby.execute("SELECT pg_wal_replay_resume()")
        await standby.close()
    await eventually(lambda: all(healthy(server).values()))


async def test_a_stopped_replica_fails_only_calls_in_flight(
    replicated: Harness, replica: LocalPostgres
) -> None:
    server = replicated
    await indexed(server)
    await eventually(lambda: all(healthy(server).values()))
    failures: list[grpc.StatusCode] = []
    done = 0

    async def search_until(stop: asyncio.Event) -> None:
        nonlocal done
        while not stop.is_set():
            try:
                await server.search.Hybrid(pb.HybridRequest(q="port"), timeout=10)
                done += 1
            except grpc.aio.AioRpcError as exc:
                failures.append(exc.code())

    stop = asyncio.Event()
    callers = [asyncio.create_task(search_until(stop)) for _ in range(2)]
    try:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(replica.stop)
        stopped_at = done
        await eventually(lambda: not any(healthy(server).values()))
        await asyncio.sleep(1.0)
        assert done > stopped_at + 5  # searches go on, from the primary
    finally:
        stop.set()
        await asyncio.gather(*callers)
        await asyncio.to_thread(replica.start)
    # At most the calls that were on the replica when it stopped: one per caller.
    assert len(failures) <= len(callers), failures
    await eventually(lambda: all(healthy(server).values()), timeout=30)


@pytest.mark.parametrize("token", ["pg:zz", "garbage", "pg:1/2/3", "pg:0/0\n"])
async def test_a_malformed_token_is_invalid_argument_on_both_backends(
    server: Harness, token: str
) -> None:
    reads = (
        server.search.Fulltext(pb.FulltextRequest(q="port", consistency_token=token)),
        server.search.Hybrid(pb.HybridRequest(q="port", consistency_token=token)),
        server.index.GetDocument(pb.GetDocumentRequest(path="a.md", consistency_token=token)),
        server.index.ListDocuments(pb.ListDocumentsRequest(consistency_token=token)),
        server.collections.GetCollection(
            pb.GetCollectionRequest(name="default", consistency_token=token)
        ),
    )
    for read in reads:
        details = await expect_status(read, grpc.StatusCode.INVALID_ARGUMENT)
        assert "consistency_token" in details


async def test_writes_return_a_token_that_reads_accept(server: Harness) -> None:
    token = await index_one(server, "a.md", "# A\n\nAn aardvark.")
    if server.app.store.backend == "sqlite":
        assert token == ""  # one process, one file: every read sees every write
        token = "pg:0/1"  # and a token from elsewhere asks for nothing it lacks
    else:
        assert token.startswith("pg:")
    found = await server.search.Hybrid(pb.HybridRequest(q="aardvark", consistency_token=token))
    assert [h.document_path for h in found.hits][:1] == ["a.md"]


async def test_the_python_client_carries_tokens(
    replicated: Harness, replica: LocalPostgres
) -> None:
    """With the replica's replay paused, only the token keeps its reads from the stale copy
    (the replica is still in use: the monitor skips it only after POSTGRES_READ_MAX_LAG)."""
    await eventually(lambda: all(healthy(replicated).values()))
    standby = await asyncpg.connect(replica.dsn)
    try:
        async with DocFoundryClient(replicated.app.address) as client:
            await standby.execute("SELECT pg_wal_replay_pause()")
            document = pb.Document(path="client.md", content="# Client\n\nA pangolin writes.")
            [outcome] = [o async for o in client.index_documents([document])]
            assert outcome.consistency_token.startswith("pg:")
            token = outcome.consistency_token
            found = await client.fulltext("pangolin", consistency_token=token)
            assert [h.document_path for h in found.hits] == ["client.md"]
            deleted = await client.delete_document("client.md")
            after = await client.hybrid("pangolin", consistency_token=deleted.consistency_token)
            assert "client.md" not in [h.document_path for h in after.hits]
    finally:
        await standby.execute("SELECT pg_wal_replay_resume()")
        await standby.close()


async def test_a_read_that_runs_out_of_time_waiting_for_replay_frees_its_connection(
    replicated: Harness, replica: LocalPostgres
) -> None:
    server = replicated
    await eventually(lambda: all(healthy(server).values()))
    router = server.app.store.inner._reads  # type: ignore[attr-defined]
    standby = await asyncpg.connect(replica.dsn)
    try:
        await standby.execute("SELECT pg_wal_replay_pause()")
        token = await index_one(server, "slow.md", "# Slow\n\nA sloth.")
        waiting = server.search.Fulltext(
            pb.FulltextRequest(q="sloth", consistency_token=token), timeout=0.3
        )
        await expect_status(waiting, grpc.StatusCode.DEADLINE_EXCEEDED)
        await eventually(lambda: router.replicas[0].connections.pool_stats().in_use == 0)
    finally:
        await standby.execute("SELECT pg_wal_replay_resume()")
        await standby.close()
