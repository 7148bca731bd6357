"""The Python client (async and blocking) and the `docfoundry` client commands, against a
real server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
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
        assert result.impression_id
        receipt = await client.record_click(
            "", result.hits[0].chunk_id, impression_id=result.impression_id, dwell_time=40
        )
        assert receipt.click_id > 0 and receipt.counted and receipt.outcome == "counted"
        unverified = await client.record_click("port", result.hits[0].chunk_id, position=1)
        assert (unverified.counted, unverified.outcome) == (False, "no_impression")
        plain = await client.hybrid("port", k=3, plain_ranking=True)
        assert [h.chunk_id for h in plain.hits] == [h.chunk_id for h in result.hits]
        health = await client.health()
        assert health.serving and health.click_count == 2
        assert health.click_model.startswith("pbm-ipw")
        deleted = await client.delete_document("a.md")
        assert (deleted.chunks_deleted, deleted.clicks_deleted) == (1, 2)
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
    found = json.loads(search.stdout)
    hits = found["hits"]
    assert hits[0]["document_path"] == "docs/guides/install.md"
    chunk = str(hits[0]["chunk_id"])
    click = await run_cli(
        "click", "--chunk-id", chunk, "--impression", found["impression_id"], *target
    )
    assert click.returncode == 0, click.stderr
    assert re.fullmatch(r"click \d+: counted", click.stdout.strip()), click.stdout
    bare = await run_cli(
        "click", "--query", "which port", "--chunk-id", chunk, "--position", "1", *target
    )
    assert re.fullmatch(r"click \d+: no_impression", bare.stdout.strip()), bare.stdout
    text = await run_cli("search", "which port", "-k", "2", *target)
    assert (
        f"chunk {chunk}" in text.stdout and "impression (for click --impression): " in text.stdout
    )
    plain = await run_cli("search", "which port", "-k", "2", "--plain", *target)
    assert plain.returncode == 0, plain.stderr
    health = await run_cli("health", "--json", *target)
    assert json.loads(health.stdout)["click_count"] == 2
    delete = await run_cli("delete", "docs/guides/install.md", *target)
    assert delete.returncode == 0, delete.stderr
    missing = await run_cli("delete", "docs/guides/install.md", *target)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: NOT_FOUND") and "Traceback" not in missing.stderr


async def test_client_collections_metadata_filters_and_pages(server: Harness) -> None:
    async with DocFoundryClient(server.target) as client:
        created = await client.create_collection("team-b", description="B's docs")
        assert (created.name, created.vectors, created.dimension) == ("team-b", "model", 384)
        docs = [
            DocumentSpec(
                path=f"{n}.md",
                content=f"# Port {n}\n\nThe port setting, part {n}.",
                metadata={"version": float(n), "tags": ["a", "b"] if n % 2 else ["c"]},
            )
            for n in range(5)
        ]
        outcomes = [o async for o in client.index_documents(docs, collection="team-b")]
        assert {o.outcome for o in outcomes} == {"created"}
        tagged = {"equals": {"field": "tags", "value": {"string_value": "a"}}}
        result = await client.fulltext("port", collection="team-b", filter=tagged, k=1)
        assert result.hits[0].metadata["tags"] == ["a", "b"] and result.next_page_token
        following = await client.fulltext(
            "port", collection="team-b", filter=tagged, k=1, page_token=result.next_page_token
        )
        assert [h.document_path for h in (*result.hits, *following.hits)] == ["1.md", "3.md"]
        assert not following.next_page_token
        assert not (await client.fulltext("port", k=5)).hits  # the default collection is empty
        page = await client.list_documents(collection="team-b", page_size=2)
        assert [d.path for d in page.documents] == ["0.md", "1.md"] and page.next_page_token
        last = await client.list_documents(collection="team-b", page_size=3, page_token="")
        tail = await client.list_documents(
            collection="team-b", page_size=3, page_token=last.next_page_token
        )
        assert [d.path for d in tail.documents] == ["3.md", "4.md"]
        assert not tail.next_page_token
        document = await client.get_document("4.md", collection="team-b")
        assert document.metadata == {"version": 4.0, "tags": ["c"]}
        old = {"range": {"field": "version", "lt": 2}}
        assert (await client.delete_documents(old, collection="team-b")).documents_deleted == 2
        listed = await client.list_collections()
        assert [(c.name, c.document_count) for c in listed] == [("default", 0), ("team-b", 3)]
        rejected = [
            o
            async for o in client.index_documents(
                [DocumentSpec(path="bad.md", content="x", metadata={"bad key": "v"})]
            )
        ]
        assert rejected[0].outcome == "rejected" and rejected[0].error_field == "document.metadata"
        assert (await client.delete_collection("team-b")).documents_deleted == 3
        with pytest.raises(ValueError):
            await client.fulltext("port", filter={"no_such_condition": {}})


async def test_cli_collections_documents_and_filters(server: Harness, tmp_path: Path) -> None:
    folder = write_docs(tmp_path / "docs")
    target = ["--target", server.target]
    created = await run_cli("collections", "create", "guides", *target)
    assert created.returncode == 0 and "created guides: 384-d model vectors" in created.stdout
    ingest = await run_cli(
        "ingest",
        str(folder),
        "--collection",
        "guides",
        "--metadata",
        "product=cli",
        "--metadata",
        "version=2",
        *target,
    )
    assert ingest.returncode == 0, ingest.stderr
    product = '{"equals": {"field": "product", "value": {"string_value": "cli"}}}'
    search = await run_cli(
        "search",
        "port",
        "--collection",
        "guides",
        "--filter",
        product,
        "-k",
        "1",
        "--json",
        *target,
    )
    found = json.loads(search.stdout)
    assert found["hits"][0]["metadata"] == {"product": "cli", "version": 2.0}
    assert found["next_page_token"]
    listing = await run_cli("documents", "list", "--collection", "guides", *target)
    assert listing.stdout.splitlines()[0].startswith("docs/api/errors.md")
    shown = await run_cli(
        "documents", "get", "docs/api/errors.md", "--collection", "guides", *target
    )
    assert json.loads(shown.stdout)["metadata"]["product"] == "cli"
    refused = await run_cli("documents", "delete", "--collection", "guides", *target)
    assert refused.returncode == 1 and "--filter is required" in refused.stderr
    purge = await run_cli(
        "documents", "delete", "--collection", "guides", "--filter", '{"all": {}}', *target
    )
    assert "deleted 3 documents" in purge.stdout
    bad = await run_cli("search", "x", "--filter", "[1]", *target)
    assert bad.returncode == 2 and "JSON object" in bad.stderr
    listed = await run_cli("collections", "list", *target)
    assert "guides: 384-d model vectors, 0 documents" in listed.stdout
    dropped = await run_cli("collections", "delete", "guides", *target)
    assert dropped.returncode == 0 and "deleted guides" in dropped.stdout


async def test_output_into_a_closed_pipe_is_quiet(server: Harness) -> None:
    """`docfoundry health | head -0`: the reader is gone before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first write fails with EPIPE
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "docfoundry_grpc",
            "health",
            "--target",
            server.target,
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 141
    assert err.decode() == ""  # no "Broken pipe" error, no traceback
