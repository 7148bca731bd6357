"""The learned ranker over gRPC on both backends: training on a tiny data set, versions,
going live, what Health says, the plain ranking, and the errors."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.learned_ranker import FEATURES, LearnedRanker, NeighbourClicks
from tests.conftest import Harness
from tests.test_grpc import expect_status, indexed

# A query of the test corpus and the document its users want.
WANTED = {
    "install the package": "guides/install.md",
    "pip install then run": "guides/install.md",
    "change the port": "guides/install.md",
    "default port number": "guides/install.md",
    "server does not start": "guides/install.md",
    "log level and database path": "guides/install.md",
    "term frequency ranking": "guides/search.md",
    "sentence transformer embeddings": "guides/search.md",
    "reciprocal rank fusion": "guides/search.md",
    "hybrid search rankings": "guides/search.md",
    "invalid arguments": "api/errors.md",
    "database outage": "api/errors.md",
    "unknown chunks": "api/errors.md",
    "cats purr": "blog/pets.html",
    "dogs love walks": "blog/pets.html",
    "sleep most of the day": "blog/pets.html",
    "bake the bread": "notes/cooking.txt",
    "dough rise overnight": "notes/cooking.txt",
}


async def users_click(server: Harness, sessions: int = 3) -> None:
    """Each query's users click its wanted document wherever Hybrid shows it."""
    for query, wanted in WANTED.items():
        for session in range(sessions):
            shown = await server.search.Hybrid(pb.HybridRequest(q=query, k=10))
            hit = next(h for h in shown.hits if h.document_path == wanted)
            receipt = await server.search.RecordClick(
                pb.RecordClickRequest(
                    chunk_id=hit.chunk_id,
                    impression_id=shown.impression_id,
                    session_id=f"{query}-{session}",
                    dwell_time=45,
                )
            )
            assert receipt.outcome == pb.CLICK_OUTCOME_COUNTED


async def train(server: Harness, collection: str = "") -> list[pb.TrainRankerResponse]:
    request = pb.TrainRankerRequest(collection=collection)
    return [step async for step in server.collections.TrainRanker(request)]


async def test_a_ranker_trains_on_a_tiny_data_set_and_is_versioned(server: Harness) -> None:
    await indexed(server)
    await users_click(server)
    steps = await train(server)
    *progress, last = steps
    assert progress and progress[0].queries_done == 0
    assert all(p.queries_total == len(WANTED) for p in progress)
    assert [p.queries_done for p in progress] == sorted(p.queries_done for p in progress)
    result = last.result
    assert last.HasField("result") and result.version == 1
    assert result.fitted_queries >= 10 and result.validation_queries >= 1
    assert result.fitted_queries + result.validation_queries <= len(WANTED)
    assert set(result.weights) == {*FEATURES, "bias"}
    assert 0 <= result.plain_validation_ndcg <= 1 and 0 <= result.validation_ndcg <= 1
    assert result.live == (result.validation_ndcg > result.plain_validation_ndcg)
    health = await server.search.Health(pb.HealthRequest())
    assert dict(health.rankers) == ({"default": "v1"} if result.live else {})
    again = (await train(server))[-1].result
    assert again.version == 2 and again.weights == result.weights  # same clicks, same fit


async def test_training_needs_clicked_queries_and_a_collection(server: Harness) -> None:
    await indexed(server)
    details = await expect_status(train(server), grpc.StatusCode.FAILED_PRECONDITION)
    assert "at least 10" in details
    await expect_status(train(server, "nowhere"), grpc.StatusCode.NOT_FOUND)
    await expect_status(train(server, "Bad Name!"), grpc.StatusCode.INVALID_ARGUMENT)


async def test_a_live_ranker_reorders_hybrid_unless_the_plain_ranking_is_asked(
    server: Harness,
) -> None:
    """A hand-made live ranker that ranks by heading match alone: Hybrid's head follows
    it on every server within seconds, plain_ranking does not, Health names it."""
    await indexed(server)
    query = "search modes full-text semantic hybrid"
    plain = await server.search.Hybrid(pb.HybridRequest(q=query, k=5, plain_ranking=True))
    weights = np.zeros(len(FEATURES) + 1, dtype=np.float32)
    weights[FEATURES.index("heading")] = -1.0  # the least heading match first
    weights[FEATURES.index("fused")] = 0.001
    empty = NeighbourClicks([], np.zeros((0, 384), np.float32), [])
    model = LearnedRanker(0, weights, empty, {}).to_json()
    version = await server.app.store.save_ranker("default", model, live=True)
    server.app.engine.rankers.forget()
    learned = await server.search.Hybrid(pb.HybridRequest(q=query, k=5))
    assert [h.chunk_id for h in learned.hits] != [h.chunk_id for h in plain.hits]
    assert {h.chunk_id for h in learned.hits} <= {
        h.chunk_id for h in (await server.search.Hybrid(pb.HybridRequest(q=query, k=30))).hits
    }
    scores = [h.score for h in learned.hits]
    assert scores == sorted(scores, reverse=True)
    again = await server.search.Hybrid(pb.HybridRequest(q=query, k=5, plain_ranking=True))
    assert [h.chunk_id for h in again.hits] == [h.chunk_id for h in plain.hits]
    health = await server.search.Health(pb.HealthRequest())
    assert dict(health.rankers) == {"default": f"v{version}"}
    retired = await server.app.store.save_ranker("default", model, live=False)
    assert retired == version + 1
    assert await server.app.store.live_rankers() == {"default": version}


@pytest.mark.parametrize("live", [True, False])
async def test_only_one_version_is_live(server: Harness, live: bool) -> None:
    empty = NeighbourClicks([], np.zeros((0, 384), np.float32), [])
    model = LearnedRanker(0, np.zeros(len(FEATURES) + 1, np.float32), empty, {}).to_json()
    first = await server.app.store.save_ranker("default", model, live=True)
    second = await server.app.store.save_ranker("default", model, live=live)
    expected = {"default": second if live else first}
    assert await server.app.store.live_rankers() == expected
    assert await server.app.store.ranker_model("default", second) == model
    assert await server.app.store.ranker_model("default", 99) is None


async def test_a_ranker_that_cannot_be_loaded_is_logged_and_ranked_without(
    server: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await indexed(server)
    query = "search modes full-text semantic hybrid"
    plain = await server.search.Hybrid(pb.HybridRequest(q=query, k=5, plain_ranking=True))
    version = await server.app.store.save_ranker("default", '{"features": ["old"]}', live=True)
    server.app.engine.rankers.forget()
    for _ in range(2):  # the second search does not try the broken version again
        served = await server.search.Hybrid(pb.HybridRequest(q=query, k=5))
        assert [h.chunk_id for h in served.hits] == [h.chunk_id for h in plain.hits]
    warnings = [r for r in caplog.records if "is not used" in r.getMessage()]
    assert len(warnings) == 1 and f"v{version}" in warnings[0].getMessage()
