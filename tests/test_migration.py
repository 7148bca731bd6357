"""SQLite → PostgreSQL migration: same answers afterwards, nothing duplicated on a re-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.config import DatabaseConfig
from docfoundry_grpc.embedding import MiniLMEmbedder

from .conftest import (
    PostgresServer,
    fresh_database,
    postgres_config,
    run_cli,
    start_harness,
    stop_harness,
)
from .test_grpc import indexed
from .test_grpc_collections import index_into

QUERIES = ["which port does the server use", "kittens", "rank fusion", "errors NOT_FOUND", "purr"]


async def answers(harness: object) -> dict[str, list[tuple[str, str]]]:
    result = {}
    for q in QUERIES:
        for mode in ("Fulltext", "Semantic", "Hybrid"):
            request = getattr(pb, f"{mode}Request")(q=q, k=5)
            response = await getattr(harness.search, mode)(request)  # type: ignore[attr-defined]
            result[f"{mode}:{q}"] = [(h.document_path, h.anchor) for h in response.hits]
    return result


async def test_migrate_sqlite_to_postgres(
    tmp_path: Path, postgres_server: PostgresServer, embedder: MiniLMEmbedder
) -> None:
    sqlite = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "source.db")
    source = await indexed(await start_harness(sqlite, embedder))
    hit = (await source.search.Hybrid(pb.HybridRequest(q="purr", k=5))).hits[-1]
    for session in ("a", "b"):  # counted clicks: their votes must move with them
        shown = await source.search.Hybrid(pb.HybridRequest(q="purr", k=5))
        counted = await source.search.RecordClick(
            pb.RecordClickRequest(
                chunk_id=hit.chunk_id, impression_id=shown.impression_id, session_id=session
            )
        )
        assert counted.outcome == pb.CLICK_OUTCOME_COUNTED
    await source.collections.CreateCollection(
        pb.CreateCollectionRequest(name="extra", vectors=pb.VECTOR_SOURCE_CALLER, dimension=4)
    )
    extra = pb.Document(
        path="x.md",
        title="Extra",
        chunks=[pb.ChunkInput(text="extra purring", embedding=[0.5, 0.5, 0.5, 0.5])],
        metadata={"team": pb.MetadataValue(string_value="b")},
    )
    [stored] = await index_into(source, "extra", [extra])
    assert stored.outcome == pb.IndexDocumentsResponse.OUTCOME_CREATED
    extra_hit = (
        await source.search.Fulltext(pb.FulltextRequest(q="purring", collection="extra"))
    ).hits[0]
    await source.search.RecordClick(
        pb.RecordClickRequest(query="purring", chunk_id=extra_hit.chunk_id, position=1)
    )
    expected = await answers(source)
    await stop_harness(source)

    async with fresh_database(postgres_server) as dsn:
        first = await run_cli("migrate", "--from", f"sqlite:{sqlite.sqlite_path}", "--to", dsn)
        assert first.returncode == 0, first.stderr
        assert "6 documents copied, 0 already present, 3 clicks copied" in first.stdout
        assert "click_feedback           3         3" in first.stdout

        again = await run_cli("migrate", "--from", f"sqlite:{sqlite.sqlite_path}", "--to", dsn)
        assert again.returncode == 0, again.stderr
        assert "0 documents copied, 6 already present, 0 clicks copied" in again.stdout

        target = await start_harness(postgres_config(dsn), embedder)
        try:
            assert await answers(target) == expected
            health = await target.search.Health(pb.HealthRequest())
            assert (health.document_count, health.click_count) == (6, 3)
            click = await target.search.RecordClick(
                pb.RecordClickRequest(query="purr", chunk_id=hit.chunk_id, position=1)
            )
            assert click.click_id == 4
            copied = await target.collections.GetCollection(pb.GetCollectionRequest(name="extra"))
            assert (copied.collection.vectors, copied.collection.dimension) == (
                pb.VECTOR_SOURCE_CALLER,
                4,
            )
            found = await target.search.Semantic(
                pb.SemanticRequest(collection="extra", query_vector=[1, 1, 1, 1])
            )
            assert [h.document_path for h in found.hits] == ["x.md"]
            assert found.hits[0].metadata["team"].string_value == "b"
            assert found.hits[0].score == pytest.approx(1.0, abs=1e-6)
        finally:
            await stop_harness(target)


async def test_migrate_rejects_bad_urls(tmp_path: Path) -> None:
    bad = await run_cli("migrate", "--from", "mysql://x", "--to", f"sqlite:{tmp_path / 'b.db'}")
    assert bad.returncode == 2 and "expected sqlite:PATH" in bad.stderr
    assert "Traceback" not in bad.stderr
