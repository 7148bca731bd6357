"""A real Prometheus scrapes the running service; its HTTP API then answers for our metrics."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import start_http_server

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.devdb import free_port

from .conftest import IN_CI, Harness
from .test_grpc import indexed

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
HYBRID_CALLS = 25


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        message = "prometheus not installed (scripts/install-prometheus.sh installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return binary


def query(port: int, promql: str) -> list[dict[str, object]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.fixture
def metrics_port(server: Harness) -> Iterator[int]:
    http_server, thread = start_http_server(0, "127.0.0.1", registry=server.registry)
    yield http_server.server_port
    http_server.shutdown()
    http_server.server_close()
    thread.join(5)


async def test_prometheus_scrapes_requests_and_latency(
    server: Harness, metrics_port: int, prometheus_binary: str, tmp_path: Path
) -> None:
    await indexed(server)
    for i in range(HYBRID_CALLS):
        await server.search.Hybrid(pb.HybridRequest(q=f"which port {i}"))
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: docfoundry\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n"
    )
    web_port = free_port()
    process = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        counter = 'docfoundry_grpc_requests_total{method="Hybrid",code="OK"}'
        quantile = (
            "histogram_quantile(0.5, sum by (le) ("
            'docfoundry_grpc_request_duration_seconds_bucket{method="Hybrid"}))'
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                counts = await asyncio.to_thread(query, web_port, counter)
                if counts:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Prometheus never scraped the service"
            await asyncio.sleep(0.5)
        assert float(counts[0]["value"][1]) == HYBRID_CALLS  # type: ignore[index]
        [median] = await asyncio.to_thread(query, web_port, quantile)
        seconds = float(median["value"][1])  # type: ignore[index]
        assert 0 < seconds < 5
        up = await asyncio.to_thread(query, web_port, 'up{job="docfoundry"}')
        assert float(up[0]["value"][1]) == 1  # type: ignore[index]
    finally:
        process.terminate()
        process.wait(10)
