"""The dashboard and scrape config under deploy/ refer to metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from docfoundry_grpc.metrics import ServiceMetrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
COLLECTED = {"docfoundry_pool_connections", "docfoundry_index_documents",
             "docfoundry_index_chunks", "docfoundry_click_events"}


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    ServiceMetrics(registry, backend="sqlite")
    names = set(COLLECTED)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"),
                "gauge": ("",)}
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
