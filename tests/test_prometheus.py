"""A real Prometheus scrapes a real server under real traffic, with deploy/'s alert rules
loaded: every query of the Grafana dashboard, and a stock gRPC dashboard's, must return
data. promtool checks the scrape configuration and unit-tests the alert rules."""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from prometheus_client import start_http_server

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.devdb import free_port

from .conftest import IN_CI, Harness
from .test_grpc import indexed

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
# What Grafana puts for $__rate_interval at a 1 s scrape interval is about 4 s; a little
# more keeps a window from missing a scrape on a busy machine.
RATE_INTERVAL = "10s"
# From a stock gRPC dashboard (go-grpc-prometheus's Grafana boards query the same).
STOCK_QUERIES = (
    'sum(rate(grpc_server_handled_total{grpc_code!="OK"}[5m])) by (grpc_method)',
    'sum(rate(grpc_server_started_total{grpc_type="unary"}[1m])) by (grpc_service)',
    "histogram_quantile(0.99, sum(rate(grpc_server_handling_seconds_bucket[1m])) by (le))",
    'sum(rate(grpc_server_msg_received_total{grpc_type="bidi_stream"}[1m]))',
)
RULES = 8


def tool(name: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        message = f"{name} not installed (scripts/install-prometheus.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return binary


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of the dashboard, Grafana's variables filled."""
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [
        (panel["title"], target["expr"].replace("$__rate_interval", RATE_INTERVAL))
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def query(port: int, promql: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def finite_values(result: list[dict[str, object]]) -> list[float]:
    values = [float(series["value"][1]) for series in result]  # type: ignore[index]
    return [v for v in values if math.isfinite(v)]


def rules(port: int) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/rules"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    return [rule for group in body["data"]["groups"] for rule in group["rules"]]


@pytest.fixture
async def server(replicated: Harness) -> Harness:
    """A server on PostgreSQL reading from a streaming replica, so that every panel, the
    replicas' too, has something to show."""
    return replicated


@pytest.fixture
def metrics_port(server: Harness) -> Iterator[int]:
    http_server, thread = start_http_server(0, "127.0.0.1", registry=server.registry)
    yield http_server.server_port
    http_server.shutdown()
    http_server.server_close()
    thread.join(5)


@pytest.fixture
def prometheus(metrics_port: int, tmp_path: Path) -> Iterator[int]:
    """A Prometheus scraping the server every second, with the alert rules of deploy/."""
    binary = tool("prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{DEPLOY / 'alerts.yml'}']\n"
        "scrape_configs:\n"
        "  - job_name: docfoundry\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    web_port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield web_port
    finally:
        process.terminate()
        process.wait(10)


@asynccontextmanager
async def traffic(server: Harness) -> AsyncIterator[None]:
    """Calls of every kind, a few a second, until the block ends: searches in each mode, a
    click, a bad request (InvalidArgument) and a collection that exists (AlreadyExists,
    which the storage layer counts as a failed operation)."""

    async def calls() -> None:
        n = 0
        while True:
            n += 1
            hits = (await server.search.Hybrid(pb.HybridRequest(q=f"port {n}"))).hits
            await server.search.Fulltext(pb.FulltextRequest(q="purr"))
            await server.search.Semantic(pb.SemanticRequest(q=f"cats {n}"))
            if hits:
                click = pb.RecordClickRequest(query="port", chunk_id=hits[0].chunk_id, position=1)
                await server.search.RecordClick(click)
            for failing in (
                server.search.Fulltext(pb.FulltextRequest(q="")),
                server.collections.CreateCollection(pb.CreateCollectionRequest(name="default")),
            ):
                try:
                    await failing
                except grpc.aio.AioRpcError:
                    pass
            await asyncio.sleep(0.1)

    task = asyncio.create_task(calls())
    try:
        yield
    finally:
        if task.done():  # the loop only ends by the cancel below, unless a call failed
            task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until_answered(
    port: int, queries: list[tuple[str, str]], timeout: float = 90
) -> dict[str, list[float]]:
    """Polls until every query has a finite value; returns the last values of each."""
    deadline = time.monotonic() + timeout
    values: dict[str, list[float]] = {}
    while True:
        try:
            for _, promql in queries:
                values[promql] = finite_values(await asyncio.to_thread(query, port, promql))
        except OSError:  # Prometheus still starting
            pass
        empty = [(title, promql) for title, promql in queries if not values.get(promql)]
        if not empty:
            return values
        assert time.monotonic() < deadline, f"queries without data: {empty}"
        await asyncio.sleep(1)


async def test_every_dashboard_query_returns_data_from_a_real_scrape(
    server: Harness, prometheus: int
) -> None:
    await indexed(server)
    # Packed postings, so full-text queries go through the server's segment cache.
    assert await server.app.store.inner.compact() is not None  # type: ignore[attr-defined]
    panels = dashboard_queries()
    assert len({title for title, _ in panels}) >= 15
    stock = [("stock", promql) for promql in STOCK_QUERIES]
    async with traffic(server):
        values = await until_answered(prometheus, panels + stock)
    errors = values['sum(rate(grpc_server_handled_total{grpc_code!="OK"}[5m])) by (grpc_method)']
    assert any(v > 0 for v in errors)
    up = await asyncio.to_thread(query, prometheus, 'up{job="docfoundry"}')
    assert finite_values(up) == [1.0]
    loaded = await asyncio.to_thread(rules, prometheus)
    assert len(loaded) == RULES
    assert {rule["health"] for rule in loaded} == {"ok"}, loaded
    # A healthy server under light traffic sets off none of them.
    assert {rule["state"] for rule in loaded} == {"inactive"}, loaded


def promtool(*args: str) -> str:
    """promtool's output, run in deploy/; it must succeed."""
    result = subprocess.run(
        [tool("promtool"), *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_alert_rules_pass_their_unit_tests() -> None:
    promtool("test", "rules", "alerts.test.yml")
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "alerts.test.yml").read_text()))
    defined = set(re.findall(r"- alert: (\w+)", (DEPLOY / "alerts.yml").read_text()))
    assert len(defined) == RULES and tested == defined


def test_scrape_config_is_valid_and_loads_the_rules() -> None:
    assert f"{RULES} rules found" in promtool("check", "config", "prometheus.yml")
