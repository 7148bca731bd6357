"""`python -m bench.overload`: the smoke preset end to end on a real server process, and its
callers against a real gRPC server that refuses with RetryInfo and leaves calls hanging,
as the server will once it has admission control. Figures are plausibility-checked only:
the targets are measured by the command, not asserted by a test."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from bench.overload_callers import REFUSED, UNFINISHED, CallerJob, run_callers
from bench.overload_report import Memory, summarize, unbounded_checks
from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "datasets" / "scifact"


@pytest.mark.skipif(not (SOURCE / "corpus.jsonl").is_file(), reason=f"no data set at {SOURCE}")
def test_smoke_run_reports_every_scenario_figure(tmp_path: Path) -> None:
    out = tmp_path / "overload.json"
    # One BLAS thread per process: the smoke is about plumbing on a two-core machine.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    started = time.monotonic()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.overload",
            "--smoke",
            "--backend",
            "sqlite",
            "--server-env",
            "LOG_LEVEL=WARNING",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--source",
            str(SOURCE),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=55,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert time.monotonic() - started < 55
    report = json.loads(out.read_text())

    assert report["options"]["chunks"] == 500 and report["server_env"] == {"LOG_LEVEL": "WARNING"}
    capacity = report["capacity"]
    assert capacity["rpc"] == "Hybrid" and capacity["requests_per_second"] > 0
    assert capacity["latency"]["p50_ms"] > 0
    assert set(report["scenarios"]) == {"deadlines", "no-deadlines"}
    for name, callers, deadline in (("deadlines", 20, 1.0), ("no-deadlines", 30, None)):
        scenario = report["scenarios"][name]
        assert (scenario["callers"], scenario["deadline_seconds"]) == (callers, deadline)
        assert scenario["calls_sent"] >= scenario["ok"] > 0
        assert sum(scenario["status_counts"].values()) == scenario["calls_sent"]
        assert scenario["goodput_rps"] > 0 and scenario["goodput_percent_of_capacity"] > 0
        assert 0 < scenario["admitted_latency"]["p50_ms"] <= scenario["admitted_latency"]["p99_ms"]
        for figure in ("refused", "deadline_exceeded", "neither", "refusals_with_retry_info"):
            assert scenario[figure] >= 0
        assert "p99_ms" in scenario["time_to_refusal"]
        rss = scenario["server_rss"]
        assert rss["samples"] > 1 and 50 < rss["start_mb"] <= rss["peak_mb"] < 4096
        assert 0 < scenario["server_cpu_share"] <= (os.cpu_count() or 1) + 0.5
        assert all(check["passed"] in (True, False, None) for check in scenario["checks"])
    assert len(report["scenarios"]["deadlines"]["checks"]) == 3
    assert len(report["scenarios"]["no-deadlines"]["checks"]) == 4
    floor = report["refusal_floor"]
    assert floor["refusals"] > 0 and 0 < floor["p50_ms"] <= floor["p99_ms"]
    for line in ("single-caller capacity, Hybrid:", "scenario deadlines:", "goodput >= 80%"):
        assert line in completed.stdout


class RefusingServicer(pb_grpc.SearchServiceServicer):
    """Answers, refuses with RetryInfo, and hangs, in turn."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._turn = itertools.count()

    async def Hybrid(self, request: pb.HybridRequest, context: Any) -> pb.HybridResponse:
        self.texts.append(request.q)
        turn = next(self._turn) % 3
        if turn == 1:
            retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=20_000_000))
            detail = any_pb2.Any()
            detail.Pack(retry)
            status = rpc_status.to_status(
                status_pb2.Status(
                    code=code_pb2.RESOURCE_EXHAUSTED, message="busy", details=[detail]
                )
            )
            await context.abort(status.code, status.details, status.trailing_metadata)
        if turn == 2:
            await asyncio.sleep(3600)
        return pb.HybridResponse()


@pytest.mark.parametrize("deadline", [None, 0.2])
async def test_callers_record_refusals_with_retry_info_and_stop_by_themselves(
    deadline: float | None,
) -> None:
    servicer = RefusingServicer()
    server = grpc.aio.server()
    pb_grpc.add_SearchServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    job = CallerJob(
        f"127.0.0.1:{port}",
        "Hybrid",
        callers=4,
        seconds=0.6,
        deadline=deadline,
        drain=0.3,
        k=10,
        tag="t",
        refusal_pause=1.0,  # RetryInfo's 20 ms must win
    )
    try:
        started = time.monotonic()
        calls = await run_callers(job, ["first query", "second query"])
        elapsed = time.monotonic() - started
    finally:
        await server.stop(None)

    assert elapsed < 0.6 + 0.3 + 0.5  # seconds + drain, connecting included
    assert len(set(servicer.texts)) == len(servicer.texts) == len(calls)
    refusals = [c for c in calls if c.code == REFUSED]
    assert refusals and all(c.retry_delay == pytest.approx(0.02) for c in refusals)
    assert all(c.code == "OK" or c.code == REFUSED for c in calls if c.seconds < 0.15)
    hung = "DEADLINE_EXCEEDED" if deadline else UNFINISHED
    assert sum(c.code == hung for c in calls) >= 4  # every caller meets the hanging turn
    if deadline is None:
        assert sum(c.code == UNFINISHED for c in calls) == 4  # one per caller, cancelled

    result = unbounded_checks(
        summarize(
            "t",
            calls,
            callers=4,
            deadline=deadline,
            seconds=job.seconds,
            capacity_rps=10.0,
            memory=Memory(100.0, 110.0, 2),
            server_cpu_share=0.5,
        ),
        max_rss_growth_mb=5,
    )
    assert result.refused == result.refusals_with_retry_info == len(refusals)
    assert result.retry_delay_p50_ms == pytest.approx(20)
    assert result.refused_within_50ms == len(refusals)
    assert result.neither == sum(c.code == hung for c in calls)
    assert result.ok == sum(c.code == "OK" for c in calls) > 0
    verdicts = {check.target.split(":")[0]: check.passed for check in result.checks}
    assert verdicts["p99 time to refusal <= 50 ms"] is True
    unanswered = verdicts["no call still unanswered when the bench gave up on it"]
    assert unanswered is (deadline is not None)
    assert verdicts["server memory bounded"] is False  # +10 MB against 5
