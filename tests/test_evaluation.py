"""Evaluation plumbing: metrics on hand-made runs with known answers, and the eval command
on a tiny BEIR folder through real servers."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.config import Settings
from docfoundry_grpc.errors import InvalidArgumentError
from docfoundry_grpc.evaluation.beir import load_dataset
from docfoundry_grpc.evaluation.compare import compare_reports
from docfoundry_grpc.evaluation.runner import evaluate, local_server, postgres_database
from docfoundry_grpc.evaluation.scoring import score_run

from .conftest import Harness, PostgresServer, fresh_database, run_cli

DOCS = [
    ("d1", "Volcanoes", "Lava flows from erupting volcanoes and cools into basalt rock."),
    ("d2", "Glaciers", "Glaciers carve valleys as compacted snow slowly moves downhill."),
    ("d3", "Coral reefs", "Coral reefs bleach when ocean water becomes too warm."),
    ("d4", "Deserts", "Deserts receive very little rain and have sparse vegetation."),
    ("d5", "Rainforests", "Tropical rainforests hold most of the planet's plant species."),
]
QUERIES = [
    ("q1", "erupting volcano lava", "d1"),
    ("q2", "warm ocean bleaching corals", "d3"),
    ("q3", "snow moving down valleys", "d2"),
    ("q0", "unjudged query", ""),
]


def test_metrics_match_hand_computed_values() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d3": 1, "d4": 1}, "q3": {"d9": 2}}
    run = {"q1": {"d2": 2.0, "d1": 1.0}, "q2": {"d3": 1.0}, "q3": {}}
    scores = score_run(qrels, run)
    ndcg_q1 = 1 / math.log2(3)
    ndcg_q2 = 1 / (1 + 1 / math.log2(3))
    assert scores["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2 + 0) / 3)
    assert scores["mrr@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert scores["recall@100"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_mrr_is_cut_at_ten() -> None:
    run = {"q": {f"x{i}": float(100 - i) for i in range(10)} | {"hit": 1.0}}
    assert score_run({"q": {"hit": 1}}, run)["mrr@10"] == 0


def write_beir(root: Path, rows: list[dict[str, object]] | None = None) -> Path:
    """The DOCS and QUERIES as a BEIR folder, or `rows` as its corpus."""
    (root / "qrels").mkdir(parents=True)
    if rows is None:
        rows = [{"_id": doc_id, "title": title, "text": text} for doc_id, title, text in DOCS]
    with (root / "corpus.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for qid, text, _ in QUERIES:
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, _, d in QUERIES if d)
    )
    return root


def test_loader_keeps_judged_queries_and_rejects_other_folders(tmp_path: Path) -> None:
    dataset = load_dataset(write_beir(tmp_path / "tiny"))
    assert set(dataset.queries) == {"q1", "q2", "q3"}
    assert dataset.count_documents() == 5
    with pytest.raises(InvalidArgumentError, match="not a BEIR data set"):
        load_dataset(tmp_path)


async def test_evaluate_through_the_api(server: Harness, tmp_path: Path) -> None:
    report = await evaluate(
        server.target,
        load_dataset(write_beir(tmp_path / "tiny")),
        ["fulltext", "semantic", "hybrid"],
    )
    assert (report.documents, report.queries, report.backend) == (5, 3, server.app.store.backend)
    by_mode = {m.mode: m for m in report.modes}
    assert set(by_mode) == {"fulltext", "semantic", "hybrid"}
    assert by_mode["hybrid"].ndcg_at_10 == 1.0
    assert by_mode["semantic"].mrr_at_10 == 1.0
    assert all(m.p50_ms > 0 and m.p95_ms >= m.p50_ms for m in report.modes)


async def test_eval_command_prints_table_and_writes_json(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny")
    output = tmp_path / "report.json"
    result = await run_cli(
        "eval",
        str(folder),
        "--backend",
        "sqlite",
        "--output",
        str(output),
        "--embedding-cache",
        str(tmp_path / "cache.sqlite"),
    )
    assert result.returncode == 0, result.stderr
    assert "tiny on sqlite: 3 queries, 5 documents" in result.stdout
    assert "hybrid" in result.stdout and "nDCG@10" in result.stdout
    report = json.loads(output.read_text())
    assert [m["mode"] for m in report["modes"]] == ["fulltext", "semantic", "hybrid", "hybrid:rrf"]
    assert report["modes"][0]["top10"]["q1"][0] == "d1"
    compare = await run_cli("eval-compare", str(output), str(output))
    assert compare.returncode == 0, compare.stderr
    assert "fulltext         1.0000     1.0000    +0.0000" in compare.stdout


async def test_a_stopped_eval_takes_its_server_and_cluster_with_it(tmp_path: Path) -> None:
    """SIGTERM during `docfoundry eval --backend postgresql`: the throwaway cluster it started
    is stopped and removed, and the process exits as from Ctrl-C."""
    dataset = write_beir(tmp_path / "tiny")
    with (dataset / "corpus.jsonl").open("a") as f:  # enough to still be loading when stopped
        for n in range(3000):
            text = f"filler text number {n} " * 20  # distinct: no embedding is cached
            f.write(json.dumps({"_id": f"x{n}", "title": f"Extra {n}", "text": text}))
            f.write("\n")
    # Where the cluster goes (TMPDIR), so it can be found; short, as the cluster's socket
    # path must fit in 107 bytes.
    scratch = Path(tempfile.mkdtemp(prefix="df-"))
    try:
        await _stop_eval_midway(dataset, scratch, tmp_path / "out.json")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _stop_eval_midway(dataset: Path, scratch: Path, output: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "docfoundry_grpc",
        "eval",
        str(dataset),
        "--backend",
        "postgresql",
        "--output",
        str(output),
        "--embedding-cache",
        str(scratch / "embeddings.sqlite"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    deadline = time.monotonic() + 120
    while not list(scratch.glob("docfoundry-pg-*/data/postmaster.pid")):
        assert process.returncode is None and time.monotonic() < deadline, "no cluster started"
        await asyncio.sleep(0.2)
    [pid_file] = list(scratch.glob("docfoundry-pg-*/data/postmaster.pid"))
    postmaster = int(pid_file.read_text().split()[0])
    await asyncio.sleep(3)  # the server is up and loading
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 130, err.decode()[-2000:]
    assert not list(scratch.glob("docfoundry-pg-*")), "the cluster's folder is left behind"
    assert not output.exists()  # it was stopped, not finished
    with pytest.raises(ProcessLookupError):
        os.kill(postmaster, 0)


def test_compare_counts_two_empty_answers_as_agreement(tmp_path: Path) -> None:
    """A query both backends answer with nothing is full agreement, not zero overlap; one
    answered by one side only is none."""

    def report(top10: dict[str, list[str]]) -> Path:
        path = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
        path.write_text(
            json.dumps({"modes": [{"mode": "fulltext", "ndcg_at_10": 0.5, "top10": top10}]})
        )
        return path

    first = report({"q1": [], "q2": ["a", "b"], "q3": ["c"]})
    second = report({"q1": [], "q2": ["b", "a"], "q3": []})
    table = compare_reports(first, second)
    # Overlap: q1 agrees (1), q2 holds the same two (1), q3 is found by one side only (0);
    # the same order: q1 only.
    assert "fulltext         0.6667     0.3333    +0.0000" in table


# Markdown and HTML whose headings the server must see; the last row is plain text that only
# looks like Markdown, and stays plain.
TYPED_ROWS: list[dict[str, object]] = [
    {
        "_id": "guides/airships.md",
        "title": "Airships",
        "text": "# Airships\n\nLighter than air.\n\n## Zeppelin care\n\nInflate the envelope.",
    },
    {
        "_id": "harbours",
        "title": "Harbours",
        "text": "## Harbour pilots\n\nShips take a pilot aboard to enter the port.",
        "metadata": {"content_type": "markdown"},
    },
    {
        "_id": "tea",
        "title": "Tea",
        "text": "<h2>Tea ceremony</h2><p>Whisk the matcha until it froths.</p>",
        "content_type": "text/html",
    },
    {"_id": "d1", "title": "Notes", "text": "# Glaciers\n\nCompacted snow moves downhill."},
]


def test_loader_reads_declared_content_types_and_refuses_unknown_ones(tmp_path: Path) -> None:
    dataset = load_dataset(write_beir(tmp_path / "typed", TYPED_ROWS))
    kinds = [doc.content_type for doc in dataset.documents()]
    assert [k and k.value for k in kinds] == [None, "markdown", "html", None]
    odd = write_beir(tmp_path / "odd", [{"_id": "x", "text": "y", "content_type": "pdf"}])
    with pytest.raises(InvalidArgumentError, match="'x': content_type must be one of"):
        list(load_dataset(odd).documents())


async def test_eval_sends_each_document_with_its_type(server: Harness, tmp_path: Path) -> None:
    """A Markdown document keeps its headings (from its path, or the type its row declares),
    HTML too; an id without an extension and no declared type is plain text."""
    await evaluate(server.target, load_dataset(write_beir(tmp_path / "typed", TYPED_ROWS)), [])

    async def heading(query: str) -> tuple[str, str, str]:
        [hit] = (await server.search.Fulltext(pb.FulltextRequest(q=query, k=1))).hits
        return hit.document_path, hit.heading, hit.anchor

    assert await heading("envelope") == ("guides/airships.md", "Zeppelin care", "zeppelin-care")
    assert (await heading("pilot aboard"))[1] == "Harbour pilots"
    assert (await heading("matcha"))[1] == "Tea ceremony"
    assert await heading("compacted snow") == ("d1", "", "")


def test_postgres_settings_keep_every_postgres_variable_but_the_url() -> None:
    env = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://app@db.internal/docs",
            "POSTGRES_VECTOR_INDEX": "ivfflat",
            "POSTGRES_HNSW_EF_SEARCH": "321",
            "POSTGRES_IVFFLAT_PROBES": "7",
            "POSTGRES_POOL_MAX_SIZE": "3",
            "POSTGRES_READ_URLS": "postgresql://app@replica.internal/docs",
        }
    )
    given = postgres_database("postgresql://me@127.0.0.1/eval", env, throwaway=False).postgres
    assert given == replace(env.database.postgres, url="postgresql://me@127.0.0.1/eval")
    throwaway = postgres_database("postgresql://x@127.0.0.1/y", env, throwaway=True).postgres
    assert throwaway == replace(given, url="postgresql://x@127.0.0.1/y", read_urls=())


async def test_eval_on_postgresql_uses_the_postgres_settings(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The server `docfoundry eval --backend postgresql --dsn` starts builds the vector index
    POSTGRES_* asks for, not the default HNSW."""
    monkeypatch.setenv("POSTGRES_VECTOR_INDEX", "ivfflat")
    monkeypatch.setenv("POSTGRES_IVFFLAT_LISTS", "3")
    monkeypatch.setenv("POSTGRES_POOL_MIN_SIZE", "1")
    dataset = load_dataset(write_beir(tmp_path / "tiny"))
    async with fresh_database(postgres_server) as dsn:
        async with local_server("postgresql", dsn, cache_path=tmp_path / "cache.sqlite") as at:
            report = await evaluate(at, dataset, ["semantic"])
        connection = await asyncpg.connect(dsn)
        try:
            indexes = await connection.fetch(
                "SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'chunks_embedding_%'"
            )
        finally:
            await connection.close()
    assert report.modes[0].ndcg_at_10 == 1.0
    [index] = [row["indexdef"] for row in indexes]
    assert "USING ivfflat" in index and "lists='3'" in index, index
