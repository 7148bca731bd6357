"""Click feedback over gRPC on both backends: impressions, the click model's outcomes, every
cap, the bound on one source, dwell, and the plain ranking."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace

import grpc
import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.config import ClickConfig, SearchConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.engine import SearchEngine
from docfoundry_grpc.models import ClickEvent, ClickOutcome
from docfoundry_grpc.service.convert import document_from_pb
from docfoundry_grpc.storage import StorageAdapter
from docfoundry_grpc.validation import SearchQuery
from tests.conftest import Harness, start_harness, stop_harness
from tests.corpus import documents
from tests.test_grpc import expect_status, index, indexed
from tests.test_grpc_collections import index_into

OUTCOME = pb.ClickOutcome
QUERY = "search rankings"


async def hybrid(
    server: Harness, q: str = QUERY, *, k: int = 5, plain_ranking: bool = False
) -> pb.HybridResponse:
    request = pb.HybridRequest(q=q, k=k, plain_ranking=plain_ranking)
    response: pb.HybridResponse = await server.search.Hybrid(request)
    return response


async def click(
    server: Harness,
    shown: pb.HybridResponse,
    rank: int,
    *,
    session_id: str = "",
    user_id: str = "",
    dwell_time: float = 0.0,
) -> pb.RecordClickResponse:
    """A click on the hit at 1-based `rank` of `shown`, sent with its impression."""
    request = pb.RecordClickRequest(
        chunk_id=shown.hits[rank - 1].chunk_id,
        impression_id=shown.impression_id,
        session_id=session_id,
        user_id=user_id,
        dwell_time=dwell_time,
    )
    response: pb.RecordClickResponse = await server.search.RecordClick(request)
    return response


def distinct(response: pb.HybridResponse) -> list[int]:
    """The rank of each document's first hit: clicks are deduplicated per document."""
    first: dict[str, int] = {}
    for rank, hit in enumerate(response.hits, start=1):
        first.setdefault(hit.document_path, rank)
    return list(first.values())


def order(response: pb.HybridResponse) -> list[int]:
    return [h.chunk_id for h in response.hits]


async def test_every_search_names_its_hits_with_an_impression(server: Harness) -> None:
    await indexed(server)
    responses: list[pb.FulltextResponse | pb.SemanticResponse | pb.HybridResponse] = [
        await server.search.Fulltext(pb.FulltextRequest(q=QUERY)),
        await server.search.Semantic(pb.SemanticRequest(q=QUERY)),
        await hybrid(server),
    ]
    assert all(r.hits and r.impression_id for r in responses)
    assert len({r.impression_id for r in responses}) == 3
    fulltext = responses[0]
    counted = await server.search.RecordClick(
        pb.RecordClickRequest(
            chunk_id=fulltext.hits[0].chunk_id, impression_id=fulltext.impression_id
        )
    )
    assert counted.outcome == OUTCOME.CLICK_OUTCOME_COUNTED and counted.click_id > 0


async def test_clicks_lift_a_result_and_plain_ranking_ignores_them(server: Harness) -> None:
    await indexed(server)
    before = await hybrid(server)
    target = before.hits[-1].chunk_id
    for session in range(3):
        shown = await hybrid(server)
        rank = order(shown).index(target) + 1
        outcome = await click(server, shown, rank, session_id=f"s{session}", dwell_time=60)
        assert outcome.outcome == OUTCOME.CLICK_OUTCOME_COUNTED
    after = await hybrid(server)
    assert order(after).index(target) < len(before.hits) - 1
    assert order(await hybrid(server, plain_ranking=True)) == order(before)
    other = "port configuration"
    assert order(await hybrid(server, other)) == order(
        await hybrid(server, other, plain_ranking=True)
    )


async def test_a_click_without_impression_or_on_a_hit_not_shown_weighs_nothing(
    server: Harness,
) -> None:
    await indexed(server)
    before = await hybrid(server, k=2)
    target = before.hits[-1]
    unverified = await server.search.RecordClick(
        pb.RecordClickRequest(query=QUERY, chunk_id=target.chunk_id, position=5, session_id="a")
    )
    assert unverified.outcome == OUTCOME.CLICK_OUTCOME_NO_IMPRESSION
    other = await server.search.Fulltext(pb.FulltextRequest(q="cats purr", k=1))
    elsewhere = other.hits[0].chunk_id
    assert elsewhere not in order(before)
    not_shown = await server.search.RecordClick(
        pb.RecordClickRequest(chunk_id=elsewhere, impression_id=before.impression_id)
    )
    assert not_shown.outcome == OUTCOME.CLICK_OUTCOME_NOT_SHOWN
    assert order(await hybrid(server, k=2)) == order(before)
    health = await server.search.Health(pb.HealthRequest())
    assert health.click_count == 2  # stored all the same


async def test_an_impression_is_checked(server: Harness) -> None:
    await indexed(server)
    shown = await hybrid(server)
    chunk_id = shown.hits[0].chunk_id
    raw = base64.urlsafe_b64decode(shown.impression_id + "=" * (-len(shown.impression_id) % 4))
    altered = base64.urlsafe_b64encode(raw.replace(b'"default"', b'"defaulx"')).decode()
    for bad in (altered, "not-a-token", shown.impression_id[:-4]):
        await expect_status(
            server.search.RecordClick(pb.RecordClickRequest(chunk_id=chunk_id, impression_id=bad)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    await expect_status(
        server.search.RecordClick(
            pb.RecordClickRequest(
                query="another query", chunk_id=chunk_id, impression_id=shown.impression_id
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    same_query = await server.search.RecordClick(
        pb.RecordClickRequest(
            query="Rankings SEARCH", chunk_id=chunk_id, impression_id=shown.impression_id
        )
    )
    assert same_query.outcome == OUTCOME.CLICK_OUTCOME_COUNTED


async def test_clicks_are_deduplicated_per_session_and_per_impression(server: Harness) -> None:
    await indexed(server)
    shown = await hybrid(server)
    first = await click(server, shown, 2, session_id="s")
    later = await hybrid(server)
    paths = [h.document_path for h in later.hits]
    other = next(r for r, path in enumerate(paths, 1) if path != shown.hits[1].document_path)
    again = await click(server, later, other, session_id="s")
    repeat = await click(server, shown, 2, session_id="s")
    assert [first.outcome, again.outcome, repeat.outcome] == [
        OUTCOME.CLICK_OUTCOME_COUNTED,
        OUTCOME.CLICK_OUTCOME_COUNTED,
        OUTCOME.CLICK_OUTCOME_DUPLICATE,
    ]
    anonymous = await hybrid(server)
    outcomes = [(await click(server, anonymous, 3)).outcome for _ in range(2)]
    assert outcomes == [OUTCOME.CLICK_OUTCOME_COUNTED, OUTCOME.CLICK_OUTCOME_DUPLICATE]


@pytest.fixture
async def capped(database: object, embedder: MiniLMEmbedder) -> object:
    clicks = ClickConfig(session_cap=2, user_cap=3, key_cap=4)
    harness = await start_harness(database, embedder, search=SearchConfig(clicks=clicks))  # type: ignore[arg-type]
    yield harness
    await stop_harness(harness)


async def test_a_session_and_a_user_are_capped_per_query(capped: Harness) -> None:
    server = await indexed(capped)
    shown = await hybrid(server, k=20)
    ranks = distinct(shown)
    session = [(await click(server, shown, rank, session_id="s")).outcome for rank in ranks[:3]]
    assert session == [OUTCOME.CLICK_OUTCOME_COUNTED] * 2 + [OUTCOME.CLICK_OUTCOME_SESSION_CAP]
    other_query = await hybrid(server, "port configuration")
    assert (await click(server, other_query, 1, session_id="s")).outcome == (
        OUTCOME.CLICK_OUTCOME_COUNTED
    )
    # The same query in another collection has caps of its own.
    await server.collections.CreateCollection(pb.CreateCollectionRequest(name="other"))
    await index_into(server, "other", [pb.Document(path="x.md", content="# Search rankings")])
    elsewhere = await server.search.Hybrid(pb.HybridRequest(q=QUERY, collection="other"))
    assert (await click(server, elsewhere, 1, session_id="s")).outcome == (
        OUTCOME.CLICK_OUTCOME_COUNTED
    )
    fresh = await hybrid(server, k=20)  # clicks are deduplicated per impression too
    user = [
        (await click(server, fresh, rank, user_id="u", session_id=f"u{rank}")).outcome
        for rank in distinct(fresh)[:4]
    ]
    assert user == [OUTCOME.CLICK_OUTCOME_COUNTED] * 3 + [OUTCOME.CLICK_OUTCOME_USER_CAP]


async def test_concurrent_clicks_cannot_slip_under_a_cap(capped: Harness) -> None:
    server = await indexed(capped)
    shown = await hybrid(server, k=20)
    outcomes = await asyncio.gather(
        *(click(server, shown, rank, session_id="racer") for rank in distinct(shown))
    )
    counted = [o for o in outcomes if o.outcome == OUTCOME.CLICK_OUTCOME_COUNTED]
    assert len(counted) == 2, [o.outcome for o in outcomes]


async def test_an_api_key_is_capped_per_query(
    store: StorageAdapter, embedder: MiniLMEmbedder
) -> None:
    """The key is what the auth layer fills in from the caller's credentials; the cap is the
    engine's, so it is exercised here through the engine on each backend's store."""
    config = SearchConfig(clicks=ClickConfig(key_cap=2))
    engine = SearchEngine(store, embedder, config)
    try:
        await engine.index([document_from_pb(d) for d in documents()])
        page = await engine.hybrid(SearchQuery(q=QUERY, k=20))
        first: dict[str, int] = {}
        for hit in page.hits:
            first.setdefault(hit.chunk.document_path, hit.chunk.chunk_id)
        outcomes = []
        for session, chunk_id in enumerate(list(first.values())[:3]):
            event = ClickEvent(
                query="",
                chunk_id=chunk_id,
                position=0,
                session_id=f"s{session}",
                key_id="frontend",
                impression_id=page.impression_id,
            )
            outcomes.append((await engine.record_click(event))[1])
        assert outcomes == [ClickOutcome.COUNTED] * 2 + [ClickOutcome.KEY_CAP]
    finally:
        engine.close()


async def test_one_source_moves_a_result_by_at_most_the_bound(server: Harness) -> None:
    """1,000 clicks from one session and one key on the last result: one counts, and it
    raises the result's score by at most source_bound × the top score."""
    await indexed(server)
    bound = server.app.settings.search.clicks.source_bound
    before = await hybrid(server)
    target = before.hits[-1]
    other = order(await hybrid(server, "port configuration"))
    shown = await hybrid(server)
    outcomes: list[pb.RecordClickResponse] = []
    for _ in range(20):  # 1,000 clicks, 50 at a time (within admission's queue)
        outcomes += await asyncio.gather(
            *(
                click(server, shown, len(shown.hits), session_id="attacker", dwell_time=300)
                for _ in range(50)
            )
        )
    assert sum(o.outcome == OUTCOME.CLICK_OUTCOME_COUNTED for o in outcomes) == 1
    after = await hybrid(server)
    lifted = next(h for h in after.hits if h.chunk_id == target.chunk_id)
    assert 0 < lifted.score - target.score <= bound * before.hits[0].score + 1e-9
    assert order(await hybrid(server, "port configuration")) == other


async def test_a_short_dwell_counts_against_a_result(server: Harness) -> None:
    await indexed(server)
    before = await hybrid(server)
    top = before.hits[0]
    for session in range(3):
        await click(server, await hybrid(server), 1, session_id=f"b{session}", dwell_time=2)
    after = await hybrid(server)
    demoted = next(h for h in after.hits if h.chunk_id == top.chunk_id)
    assert demoted.score < top.score


async def test_health_names_the_click_model(server: Harness) -> None:
    health = await server.search.Health(pb.HealthRequest())
    assert health.click_model.startswith("pbm-ipw eta=1")


async def test_feedback_off_reports_no_model_and_ignores_clicks(
    database: object, embedder: MiniLMEmbedder
) -> None:
    search = replace(SearchConfig(), clicks=ClickConfig(weight=0))
    server = await indexed(await start_harness(database, embedder, search=search))  # type: ignore[arg-type]
    try:
        assert (await server.search.Health(pb.HealthRequest())).click_model == ""
        before = await hybrid(server)
        for session in range(3):
            await click(server, await hybrid(server), 5, session_id=f"s{session}")
        assert order(await hybrid(server)) == order(before)
    finally:
        await stop_harness(server)


async def test_clicks_survive_a_document_replace_and_go_with_its_delete(server: Harness) -> None:
    await indexed(server)
    shown = await hybrid(server)
    target = shown.hits[-1]
    await click(server, shown, len(shown.hits), session_id="s", dwell_time=60)
    lifted = next(h for h in (await hybrid(server)).hits if h.chunk_id == target.chunk_id)
    assert lifted.score > target.score
    [old] = [d for d in documents() if d.path == target.document_path]
    replaced = pb.Document(path=old.path, title=old.title, content=old.content + "\n\nMore.")
    [outcome] = await index(server, [replaced])
    assert outcome.outcome == pb.IndexDocumentsResponse.OUTCOME_REPLACED
    after = await hybrid(server, k=30)
    plain = await hybrid(server, k=30, plain_ranking=True)
    new_ids = {h.chunk_id for h in after.hits if h.document_path == target.document_path}
    assert target.chunk_id not in new_ids  # re-chunked under new ids
    boosted = {h.chunk_id: h.score for h in after.hits}
    assert any(boosted[i] > next(h.score for h in plain.hits if h.chunk_id == i) for i in new_ids)
    deleted = await server.index.DeleteDocument(pb.DeleteDocumentRequest(path=target.document_path))
    assert deleted.clicks_deleted == 1


async def test_a_click_on_an_expired_impression_does_not_count(
    database: object, embedder: MiniLMEmbedder
) -> None:
    search = SearchConfig(clicks=ClickConfig(impression_ttl_seconds=-1))  # expired at once
    server = await indexed(await start_harness(database, embedder, search=search))  # type: ignore[arg-type]
    try:
        shown = await hybrid(server)
        late = await click(server, shown, 1, session_id="s")
        assert late.outcome == OUTCOME.CLICK_OUTCOME_NO_IMPRESSION
    finally:
        await stop_harness(server)
