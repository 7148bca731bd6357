"""Several stateless servers on one PostgreSQL: what one writes, every other serves at
once (nothing a server keeps in memory goes stale: posting segments are versioned, cached
filters carry the collection's version); at rest they answer alike; one compacts at a time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.storage.postgres import sql

from .conftest import (
    Harness,
    PostgresServer,
    fresh_database,
    postgres_config,
    start_harness,
    stop_harness,
)
from .test_grpc import indexed

TRIALS = 200
VISIBLE_WITHIN_SECONDS = 1.0
QUERIES = ("port", "cats purr", "rank fusion", "how do I configure the server", "zebra")


@pytest.fixture
async def pair(
    postgres_server: PostgresServer, embedder: MiniLMEmbedder
) -> AsyncIterator[tuple[Harness, Harness]]:
    async with fresh_database(postgres_server) as dsn:
        first = await start_harness(postgres_config(dsn), embedder)
        second = await start_harness(postgres_config(dsn), embedder)
        try:
            yield first, second
        finally:
            await stop_harness(second)
            await stop_harness(first)


def hits(
    response: pb.FulltextResponse | pb.SemanticResponse | pb.HybridResponse,
) -> list[tuple[int, str, float]]:
    return [(h.chunk_id, h.document_path, round(h.score, 9)) for h in response.hits]


async def answers(server: Harness) -> list[list[tuple[int, str, float]]]:
    found = []
    for q in QUERIES:
        found.append(hits(await server.search.Fulltext(pb.FulltextRequest(q=q))))
        found.append(hits(await server.search.Semantic(pb.SemanticRequest(q=q))))
        found.append(hits(await server.search.Hybrid(pb.HybridRequest(q=q))))
    return found


async def seconds_until_visible(writer: Harness, reader: Harness, trial: int) -> float:
    word = f"walrus{trial}okapi"
    document = pb.Document(path=f"trial/{trial}.md", content=f"# Trial\n\nA {word}.")
    [outcome] = [
        o
        async for o in writer.index.IndexDocuments(
            iter([pb.IndexDocumentsRequest(document=document)])
        )
    ]
    assert outcome.outcome == pb.IndexDocumentsResponse.OUTCOME_CREATED
    acknowledged = time.perf_counter()
    # One database, no replica: the first search after the acknowledgement must see it.
    found = await reader.search.Fulltext(pb.FulltextRequest(q=word))
    assert [h.document_path for h in found.hits] == [f"trial/{trial}.md"], trial
    return time.perf_counter() - acknowledged


async def test_a_write_through_one_is_served_by_the_other(
    pair: tuple[Harness, Harness],
) -> None:
    first, second = pair
    await indexed(first)
    await second.search.Fulltext(pb.FulltextRequest(q="port"))  # caches warm on both
    delays = [await seconds_until_visible(first, second, trial) for trial in range(TRIALS)]
    p99 = statistics.quantiles(delays, n=100)[98]
    print(
        f"visible through the other server: p50 {statistics.median(delays) * 1000:.2f} ms, "
        f"p99 {p99 * 1000:.2f} ms over {TRIALS} trials"
    )
    assert p99 < VISIBLE_WITHIN_SECONDS
    # Replaced and deleted through the second, seen by the first.
    changed = pb.Document(path="trial/0.md", content="# Trial\n\nA capybara now.")
    [
        o
        async for o in second.index.IndexDocuments(
            iter([pb.IndexDocumentsRequest(document=changed)])
        )
    ]
    assert (await first.search.Fulltext(pb.FulltextRequest(q="walrus0okapi"))).hits == []
    assert [
        h.document_path
        for h in (await first.search.Fulltext(pb.FulltextRequest(q="capybara"))).hits
    ] == ["trial/0.md"]
    await second.index.DeleteDocument(pb.DeleteDocumentRequest(path="trial/0.md"))
    assert (await first.search.Fulltext(pb.FulltextRequest(q="capybara"))).hits == []


async def test_at_rest_both_answer_alike_across_compactions(
    pair: tuple[Harness, Harness],
) -> None:
    first, second = pair
    await indexed(first)
    before = await answers(first)
    assert before == await answers(second)
    # One packs the postings the other has cached decoded: the other fetches the new
    # segments, since their versions changed.
    assert await first.app.store.inner.compact() is not None  # type: ignore[attr-defined]
    await answers(second)
    extra = pb.Document(path="extra.md", content="# Extra\n\nThe port of cats.")
    [o async for o in second.index.IndexDocuments(iter([pb.IndexDocumentsRequest(document=extra)]))]
    assert await second.app.store.inner.compact() is not None  # type: ignore[attr-defined]
    after = await answers(first)
    assert after == await answers(second)
    assert after != before


async def test_clicks_through_one_shape_the_other(pair: tuple[Harness, Harness]) -> None:
    first, second = pair
    await indexed(first)
    query = "cats purr"
    before = hits(await second.search.Hybrid(pb.HybridRequest(q=query)))
    chosen = before[-1][0]
    for session in range(3):  # shown by the second server, clicked through the first
        shown = await second.search.Hybrid(pb.HybridRequest(q=query))
        clicked = await first.search.RecordClick(
            pb.RecordClickRequest(
                chunk_id=chosen, impression_id=shown.impression_id, session_id=f"s{session}"
            )
        )
        assert clicked.outcome == pb.CLICK_OUTCOME_COUNTED
    after = hits(await second.search.Hybrid(pb.HybridRequest(q=query)))
    assert after == hits(await first.search.Hybrid(pb.HybridRequest(q=query)))
    assert after != before


async def test_one_server_compacts_at_a_time(
    pair: tuple[Harness, Harness], postgres_server: PostgresServer
) -> None:
    """Compaction runs under a session lock on the database: while one compactor holds it
    (here, a session standing in for a third server mid-compaction), no other starts."""
    first, second = pair
    await indexed(first)
    dsn = first.app.settings.database.postgres.url
    holder = await asyncpg.connect(dsn)
    try:
        assert await holder.fetchval(sql.COMPACTOR_LOCK)
        for server in pair:
            assert await server.app.store.inner.compact() is None  # type: ignore[attr-defined]
    finally:
        await holder.close()
    assert await second.app.store.inner.compact() is not None  # type: ignore[attr-defined]
