"""End-to-end: a real server on a real port, called through the generated stubs, on both
backends."""

from __future__ import annotations

import math

import grpc
import pytest
from grpc_health.v1 import health_pb2

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.config import DatabaseConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.storage.base import SCHEMA_VERSION

from .conftest import Harness, start_harness, stop_harness
from .corpus import documents, requests

OUTCOME = pb.IndexDocumentsResponse


async def index(harness: Harness, docs: list[pb.Document]) -> list[pb.IndexDocumentsResponse]:
    return [r async for r in harness.index.IndexDocuments(requests(docs))]


async def indexed(harness: Harness) -> Harness:
    results = await index(harness, documents())
    assert [r.outcome for r in results] == [OUTCOME.OUTCOME_CREATED] * len(results)
    return harness


async def expect_status(call: object, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, info.value.details()
    details = info.value.details() or ""
    assert "Traceback" not in details and 'File "' not in details
    return details


async def test_index_is_idempotent_and_replaces(server: Harness) -> None:
    await indexed(server)
    again = await index(server, documents())
    assert [r.outcome for r in again] == [OUTCOME.OUTCOME_UNCHANGED] * len(again)
    health = await server.search.Health(pb.HealthRequest())
    chunks_before = health.chunk_count
    changed = pb.Document(path="notes/cooking.txt", title="Cooking", content="Boil pasta.")
    [result] = await index(server, [changed])
    assert (result.outcome, result.chunk_count) == (OUTCOME.OUTCOME_REPLACED, 1)
    health = await server.search.Health(pb.HealthRequest())
    assert health.chunk_count == chunks_before
    assert health.document_count == len(documents())
    assert (await server.search.Fulltext(pb.FulltextRequest(q="pasta"))).hits
    assert not (await server.search.Fulltext(pb.FulltextRequest(q="bread dough"))).hits


async def test_a_path_sent_twice_in_one_stream_ends_as_its_last_version(server: Harness) -> None:
    """One batch is one write, and a batch cannot hold a path twice: the engine splits it,
    so the second version replaces the first, as if they had come in separate calls."""
    first = pb.Document(path="notes/twice.txt", title="Twice", content="Knead the bread dough.")
    other = pb.Document(path="notes/other.txt", title="Other", content="Water the plants.")
    second = pb.Document(path="notes/twice.txt", title="Twice", content="Boil the pasta.")
    results = await index(server, [first, other, second])
    assert [r.outcome for r in results] == [
        OUTCOME.OUTCOME_CREATED,
        OUTCOME.OUTCOME_CREATED,
        OUTCOME.OUTCOME_REPLACED,
    ]
    assert [r.path for r in results] == ["notes/twice.txt", "notes/other.txt", "notes/twice.txt"]
    health = await server.search.Health(pb.HealthRequest())
    assert (health.document_count, health.chunk_count) == (2, 2)
    [hit] = (await server.search.Fulltext(pb.FulltextRequest(q="pasta"))).hits
    assert hit.document_path == "notes/twice.txt"
    assert not (await server.search.Fulltext(pb.FulltextRequest(q="dough"))).hits


async def test_search_modes_return_deep_links(server: Harness) -> None:
    await indexed(server)
    request = pb.FulltextRequest(q="which port does the server use", k=3)
    fulltext = await server.search.Fulltext(request)
    assert fulltext.search_type == pb.SEARCH_TYPE_FULLTEXT
    top = fulltext.hits[0]
    assert (top.document_path, top.anchor, top.heading) == (
        "guides/install.md",
        "configuration",
        "Configuration",
    )
    assert top.source_url == "https://docs.example/guides/install.md"
    assert "port" in top.snippet.lower()
    semantic = await server.search.Semantic(pb.SemanticRequest(q="kittens napping", k=2))
    assert semantic.search_type == pb.SEARCH_TYPE_SEMANTIC
    assert (semantic.hits[0].document_path, semantic.hits[0].anchor) == ("blog/pets.html", "cats")
    hybrid = await server.search.Hybrid(pb.HybridRequest(q="combine rankings fusion", k=3))
    assert hybrid.search_type == pb.SEARCH_TYPE_HYBRID
    assert hybrid.hits[0].anchor == "hybrid-search"
    assert hybrid.hits[0].HasField("fulltext") and hybrid.hits[0].HasField("semantic")


async def test_hybrid_is_reciprocal_rank_fusion_of_the_legs(server: Harness) -> None:
    await indexed(server)
    q, rrf_k, window = "how do I configure search on the server", 10, 100
    fulltext = await server.search.Fulltext(pb.FulltextRequest(q=q, k=window))
    semantic = await server.search.Semantic(pb.SemanticRequest(q=q, k=window))
    expected: dict[int, float] = {}
    for leg, weight in ((fulltext, 1.0), (semantic, 0.5)):
        for rank, hit in enumerate(leg.hits, start=1):
            expected[hit.chunk_id] = expected.get(hit.chunk_id, 0.0) + weight / (rrf_k + rank)
    hybrid = await server.search.Hybrid(
        pb.HybridRequest(q=q, k=5, rrf_k=rrf_k, semantic_weight=0.5, fusion=pb.FUSION_RRF)
    )
    assert len(hybrid.hits) == 5
    scores = [h.score for h in hybrid.hits]
    assert scores == sorted(expected.values(), reverse=True)[:5]
    for hit in hybrid.hits:
        assert math.isclose(hit.score, expected[hit.chunk_id], rel_tol=1e-9)
        ft_rank = [h.chunk_id for h in fulltext.hits].index(hit.chunk_id) + 1
        assert hit.fulltext.rank == ft_rank


async def test_hybrid_default_is_score_fusion_of_the_legs(server: Harness) -> None:
    await indexed(server)
    q = "how do I configure search on the server"
    fulltext = await server.search.Fulltext(pb.FulltextRequest(q=q, k=100))
    semantic = await server.search.Semantic(pb.SemanticRequest(q=q, k=100))
    expected: dict[int, float] = {}
    for leg, weight in ((fulltext, 2.0), (semantic, 1.0)):
        best = leg.hits[0].score
        for hit in leg.hits:
            part = weight * max(hit.score, 0) / best
            expected[hit.chunk_id] = expected.get(hit.chunk_id, 0.0) + part
    hybrid = await server.search.Hybrid(pb.HybridRequest(q=q, k=4, fulltext_weight=2.0))
    assert [h.score for h in hybrid.hits] == pytest.approx(
        sorted(expected.values(), reverse=True)[:4]
    )
    for hit in hybrid.hits:
        assert hit.score == pytest.approx(expected[hit.chunk_id])


@pytest.mark.parametrize(
    "q",
    [
        '"unbalanced',
        "port AND OR NOT NEAR",
        "NEAR(port server, 2)",
        "-port* ^server: (x",
        "col:value",
        "*",
        "))((",
        "the of and",
        "café über naïve 日本語",
        "x" * 2000,
        "server; DROP TABLE chunks; --",
        "'; SELECT 1",
        "\\ / % _",
    ],
)
async def test_any_typed_text_is_a_valid_query(server: Harness, q: str) -> None:
    await indexed(server)
    for mode in ("Fulltext", "Semantic", "Hybrid"):
        response = await getattr(server.search, mode)(getattr(pb, f"{mode}Request")(q=q, k=5))
        assert len(response.hits) <= 5
    operators = await server.search.Fulltext(pb.FulltextRequest(q="port AND NOT server", k=5))
    assert any(h.anchor == "configuration" for h in operators.hits)


async def test_filters_min_similarity_and_query_vector(
    server: Harness, embedder: MiniLMEmbedder
) -> None:
    await indexed(server)
    only_guides = await server.search.Hybrid(
        pb.HybridRequest(q="errors", k=10, path_prefix="guides/")
    )
    assert only_guides.hits
    assert all(h.document_path.startswith("guides/") for h in only_guides.hits)
    strict = await server.search.Semantic(pb.SemanticRequest(q="kittens", k=10, min_similarity=0.3))
    assert strict.hits and all(h.score >= 0.3 for h in strict.hits)
    loose = await server.search.Semantic(pb.SemanticRequest(q="kittens", k=10))
    assert len(loose.hits) > len(strict.hits)
    vector = embedder.embed(["kittens"])[0]
    by_vector = await server.search.Semantic(pb.SemanticRequest(query_vector=vector.tolist(), k=3))
    assert [h.chunk_id for h in by_vector.hits] == [h.chunk_id for h in loose.hits[:3]]


async def test_pre_chunked_documents_with_vectors(
    server: Harness, embedder: MiniLMEmbedder
) -> None:
    vector = embedder.embed(["volcanoes erupt lava"])[0]
    doc = pb.Document(
        path="geo/volcano",
        title="Volcanoes",
        chunks=[
            pb.ChunkInput(
                heading="Lava", anchor="lava", text="Molten rock.", embedding=vector.tolist()
            ),
            pb.ChunkInput(heading="Ash", anchor="ash", text="Ash clouds ground planes."),
        ],
    )
    [result] = await index(server, [doc])
    assert (result.outcome, result.chunk_count) == (OUTCOME.OUTCOME_CREATED, 2)
    found = await server.search.Semantic(pb.SemanticRequest(query_vector=vector.tolist(), k=1))
    assert found.hits[0].anchor == "lava"
    assert found.hits[0].score == pytest.approx(1.0, abs=1e-5)


async def test_invalid_requests_get_clear_statuses(server: Harness) -> None:
    await indexed(server)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    search = server.search
    assert "empty" in await expect_status(search.Fulltext(pb.FulltextRequest(q="  ")), invalid)
    await expect_status(search.Semantic(pb.SemanticRequest(q="")), invalid)
    await expect_status(search.Hybrid(pb.HybridRequest(q="x" * 5000)), invalid)
    await expect_status(search.Fulltext(pb.FulltextRequest(q="port", k=-1)), invalid)
    await expect_status(search.Fulltext(pb.FulltextRequest(q="port", k=100000)), invalid)
    details = await expect_status(
        search.Semantic(pb.SemanticRequest(q="port", query_vector=[0.1] * 3)), invalid
    )
    assert "384" in details
    await expect_status(search.Semantic(pb.SemanticRequest(query_vector=[math.nan] * 384)), invalid)
    await expect_status(
        search.Hybrid(pb.HybridRequest(q="port", query_vector=[math.inf] * 384)), invalid
    )
    await expect_status(search.Hybrid(pb.HybridRequest(q="port", rrf_k=-5)), invalid)
    await expect_status(search.Semantic(pb.SemanticRequest(q="a", min_similarity=2)), invalid)
    both = pb.Document(path="x.md", content="a", chunks=[pb.ChunkInput(text="b")])
    rejected = await index(server, [both, pb.Document(path="", content="a")])
    assert [r.outcome for r in rejected] == [OUTCOME.OUTCOME_REJECTED] * 2
    assert [r.error.field for r in rejected] == ["document.content", "document.path"]
    assert all(r.error.code == invalid.value[0] for r in rejected)
    not_found = grpc.StatusCode.NOT_FOUND
    await expect_status(
        search.RecordClick(pb.RecordClickRequest(query="q", chunk_id=424242, position=1)),
        not_found,
    )
    await expect_status(
        server.index.DeleteDocument(pb.DeleteDocumentRequest(path="nope.md")), not_found
    )
    health = await search.Health(pb.HealthRequest())
    assert health.document_count == len(documents())


async def test_clicks_lift_results_and_delete_removes_them(server: Harness) -> None:
    await indexed(server)
    q = "search"
    before = await server.search.Hybrid(pb.HybridRequest(q=q, k=5))
    target = before.hits[-1]
    for session in range(3):
        shown = await server.search.Hybrid(pb.HybridRequest(q=q, k=5))
        await server.search.RecordClick(
            pb.RecordClickRequest(
                chunk_id=target.chunk_id,
                impression_id=shown.impression_id,
                session_id=f"s{session}",
            )
        )
    after = await server.search.Hybrid(pb.HybridRequest(q=q, k=5))
    ranks = [h.chunk_id for h in after.hits]
    assert target.chunk_id in ranks and ranks.index(target.chunk_id) < 4
    deleted = await server.index.DeleteDocument(pb.DeleteDocumentRequest(path=target.document_path))
    assert deleted.clicks_deleted == 3 and deleted.chunks_deleted >= 1
    health = await server.search.Health(pb.HealthRequest())
    assert health.click_count == 0
    gone = await server.search.Hybrid(pb.HybridRequest(q=q, k=10))
    assert all(h.document_path != target.document_path for h in gone.hits)


async def test_clicks_survive_restart(database: DatabaseConfig, embedder: MiniLMEmbedder) -> None:
    first = await indexed(await start_harness(database, embedder))
    hit = (await first.search.Fulltext(pb.FulltextRequest(q="purr", k=1))).hits[0]
    click = await first.search.RecordClick(
        pb.RecordClickRequest(
            query="purr",
            chunk_id=hit.chunk_id,
            position=1,
            session_id="s",
            user_id="u",
            dwell_time=12.5,
        )
    )
    assert click.click_id > 0
    await stop_harness(first)
    second = await start_harness(database, embedder)
    try:
        health = await second.search.Health(pb.HealthRequest())
        assert (health.click_count, health.document_count) == (1, len(documents()))
        again = await index(second, documents())
        assert {r.outcome for r in again} == {OUTCOME.OUTCOME_UNCHANGED}
    finally:
        await stop_harness(second)


async def test_health_reports_detail_and_standard_health(server: Harness) -> None:
    await indexed(server)
    health = await server.search.Health(pb.HealthRequest())
    assert health.status == pb.HealthResponse.STATUS_SERVING
    assert health.database_type == server.app.store.backend
    assert health.schema_version == SCHEMA_VERSION == 5
    assert (health.embedding_model, health.embedding_dimension) == (
        "sentence-transformers/all-MiniLM-L6-v2",
        384,
    )
    assert health.chunk_count >= len(documents())
    assert health.timestamp.seconds > 0 and health.database_roundtrip_ms > 0
    assert health.pool.max_size >= 1
    for service in ("", "docfoundry.v1.SearchService"):
        check = await server.health.Check(health_pb2.HealthCheckRequest(service=service))
        assert check.status == health_pb2.HealthCheckResponse.SERVING
