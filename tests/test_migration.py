"""SQLite → PostgreSQL migration: same answers afterwards, nothing duplicated on a re-run."""

from __future__ import annotations

from pathlib import Path

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

QUERIES = ["which port does the server use", "kittens", "rank fusion", "errors NOT_FOUND"]


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
    hit = (await source.search.Fulltext(pb.FulltextRequest(q="purr", k=1))).hits[0]
    for session in ("a", "b"):
        await source.search.RecordClick(
            pb.RecordClickRequest(
                query="purr", chunk_id=hit.chunk_id, position=1, session_id=session
            )
        )
    expected = await answers(source)
    await stop_harness(source)

    async with fresh_database(postgres_server) as dsn:
        first = await run_cli("migrate", "--from", f"sqlite:{sqlite.sqlite_path}", "--to", dsn)
        assert first.returncode == 0, first.stderr
        assert "5 documents copied, 0 already present, 2 clicks copied" in first.stdout
        assert "click_feedback           2         2" in first.stdout

        again = await run_cli("migrate", "--from", f"sqlite:{sqlite.sqlite_path}", "--to", dsn)
        assert again.returncode == 0, again.stderr
        assert "0 documents copied, 5 already present, 0 clicks copied" in again.stdout

        target = await start_harness(postgres_config(dsn), embedder)
        try:
            assert await answers(target) == expected
            health = await target.search.Health(pb.HealthRequest())
            assert (health.document_count, health.click_count) == (5, 2)
            click = await target.search.RecordClick(
                pb.RecordClickRequest(query="purr", chunk_id=hit.chunk_id, position=1)
            )
            assert click.click_id == 3
        finally:
            await stop_harness(target)


async def test_migrate_rejects_bad_urls(tmp_path: Path) -> None:
    bad = await run_cli("migrate", "--from", "mysql://x", "--to", f"sqlite:{tmp_path / 'b.db'}")
    assert bad.returncode == 2 and "expected sqlite:PATH" in bad.stderr
    assert "Traceback" not in bad.stderr
