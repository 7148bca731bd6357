"""The benchmark's smoke configuration, end to end: `python -m bench --smoke` starts a real
server process, loads a small corpus through IndexDocuments, drives every search RPC from
spawned client processes, and writes its report."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "datasets" / "scifact"


@pytest.mark.skipif(not (SOURCE / "corpus.jsonl").is_file(), reason=f"no data set at {SOURCE}")
def test_smoke_run_writes_a_report_with_throughput_and_no_errors(tmp_path: Path) -> None:
    # One BLAS thread per process: on a busy two-core machine multi-threaded OpenBLAS
    # slows the model down by an order of magnitude, and the smoke is about plumbing.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--output",
            str(tmp_path / "results"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--source",
            str(SOURCE),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    (run_dir,) = (tmp_path / "results").iterdir()
    report = (run_dir / "report.md").read_text()
    results = json.loads((run_dir / "results.json").read_text())

    (run,) = results["runs"]
    assert run["backend"] == "sqlite" and run["size"] == 2000
    assert run["ingest"]["chunks"] == 2000 and run["ingest"]["chunks_per_second"] > 0
    assert run["embedding_ingest"]["server_chunks_per_second"] > 0
    levels = {(level["rpc"], level["concurrency"]): level for level in run["levels"]}
    assert set(levels) == {(rpc, c) for rpc in ("Fulltext", "Semantic", "Hybrid") for c in (1, 4)}
    for level in levels.values():
        assert level["error_count"] == 0, level["errors"]
        assert level["ok"] > 0 and level["throughput_rps"] > 0
        assert level["latency"]["p50_ms"] > 0
        assert level["segment_cache_hit_share"] is None  # SQLite has no segment cache
    floor = {f["operation"]: f["latency"] for f in run["floor"]}
    assert set(floor) >= {"fulltext", "vector", "hybrid"}
    for mode in ("fulltext", "semantic", "hybrid"):  # the engine in-process, every query timed
        assert floor[f"engine: {mode}"]["count"] == 20 and floor[f"engine: {mode}"]["p50_ms"] > 0
    assert floor["engine: the model inside"]["count"] == 40  # fresh Semantic and Hybrid queries
    assert [o["rpc"] for o in run["overhead"]] == ["Fulltext", "Semantic", "Hybrid"]
    assert all(o["engine_p50_ms"] > 0 for o in run["overhead"])
    assert run["segment_cache_mb"] is None and run["server_peak_rss_mb"] > 0
    assert run["bare_rpc"]["count"] == 500 and 0 < run["bare_rpc"]["p50_ms"]
    # The bare round trip is a floor: every RPC level's p50 at one caller is above it.
    assert all(o["rpc_p50_ms"] > run["bare_rpc"]["p50_ms"] for o in run["overhead"])
    # The peer's operations as RPCs on the floor's queries, their vectors sent with them.
    given = run["rpc_given_vectors"]
    assert set(given) == {"fulltext", "vector", "hybrid"}
    for latency in given.values():
        assert latency["count"] == 20 and latency["p50_ms"] > run["bare_rpc"]["p50_ms"]

    assert "### sqlite, 2,000 chunks" in report and "gRPC + service" in report
    assert "The model's own p50 inside the engine" in report
    assert "A bare round trip, grpc.health.v1 Check at one caller" in report
    assert "the model in int8" in report  # the server's default precision, timed as it runs
    if importlib.util.find_spec("matplotlib") is not None:
        for name in ("latency_vs_concurrency", "throughput_vs_concurrency", "latency_vs_size"):
            assert (run_dir / f"{name}.png").stat().st_size > 0
            assert f"({name}.png)" in report
    if importlib.util.find_spec("lancedb") is not None:
        assert results["peers"][0]["operations"]["hybrid"]["count"] > 0
        assert "sqlite storage p50 | sqlite RPC p50 |" in report
