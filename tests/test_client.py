"""The Python client (async and blocking) and the `docfoundry` client commands, against a
real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from docfoundry_client import DocFoundryClient, DocumentSpec, SyncDocFoundryClient

from .conftest import Harness, run_cli
from .corpus import MARKDOWN

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def write_docs(root: Path) -> Path:
    for path, content in MARKDOWN.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    (root / ".git").mkdir()
    (root / ".git" / "ignored.md").write_text("# hidden")
    return root


async def test_async_client_round_trip(server: Harness) -> None:
    async with DocFoundryClient(server.target) as client:
        outcomes = [
            o
            async for o in client.index_documents(
                [DocumentSpec(path="a.md", title="A", content="# Alpha\n\nport numbers")]
            )
        ]
        assert [(o.path, o.outcome, o.chunk_count) for o in outcomes] == [("a.md", "created", 1)]
        result = await client.search("port", "hybrid", k=3)
        assert result.search_type == "hybrid" and result.hits[0].link == "a.md#alpha"
        click_id = await client.record_click("port", result.hits[0].chunk_id, position=1)
        assert click_id > 0
        health = await client.health()
        assert health.serving and health.click_count == 1
        deleted = await client.delete_document("a.md")
        assert (deleted.chunks_deleted, deleted.clicks_deleted) == (1, 1)
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await client.fulltext("")
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_blocking_client(server: Harness) -> None:
    def use_blocking_client() -> tuple[int, int]:
        with SyncDocFoundryClient(server.target) as client:
            outcomes = client.index_documents([DocumentSpec(path="b.txt", content="lava rock")])
            return len(outcomes), len(client.semantic("volcano", k=1).hits)

    assert await asyncio.to_thread(use_blocking_client) == (1, 1)


async def test_cli_commands(server: Harness, tmp_path: Path) -> None:
    folder = write_docs(tmp_path / "docs")
    target = ["--target", server.target]
    ingest = await run_cli("ingest", str(folder), *target)
    assert ingest.returncode == 0, ingest.stderr
    assert "indexed 3 documents: 3 created, 0 replaced, 0 unchanged" in ingest.stdout
    again = await run_cli("ingest", str(folder), *target)
    assert "0 created, 0 replaced, 3 unchanged" in again.stdout
    search = await run_cli(
        "search", "which port", "--mode", "fulltext", "-k", "2", "--json", *target
    )
    hits = json.loads(search.stdout)["hits"]
    assert hits[0]["document_path"] == "docs/guides/install.md"
    click = await run_cli(
        "click",
        "--query",
        "which port",
        "--chunk-id",
        str(hits[0]["chunk_id"]),
        "--position",
        "1",
        *target,
    )
    assert click.returncode == 0 and int(click.stdout.strip()) > 0
    health = await run_cli("health", "--json", *target)
    assert json.loads(health.stdout)["click_count"] == 1
    delete = await run_cli("delete", "docs/guides/install.md", *target)
    assert delete.returncode == 0, delete.stderr
    missing = await run_cli("delete", "docs/guides/install.md", *target)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: NOT_FOUND") and "Traceback" not in missing.stderr
