"""deploy/'s Compose file and Kubernetes manifests, checked with what installs here.

No Docker engine or Kubernetes cluster runs in CI, so the files are validated against their
schemas (the Compose specification's, as check-jsonschema vendors it; Kubernetes' OpenAPI
through kubernetes-validate, strict), linted with yamllint, the Compose stack's Prometheus
configuration is loaded by promtool as the container would see it, and what makes them work
is asserted: who the pod runs as, what the probes ask, what selects what, how shutdown fits
its grace period, and that every setting they pass is one the server reads and accepts."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from docfoundry_grpc.config import Settings
from docfoundry_grpc.service.app import LIVENESS_SERVICE
from docfoundry_grpc.storage.postgres import sql as postgres_sql

from .conftest import Harness
from .test_prometheus import tool

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "docker-compose.yml"
# The oldest Kubernetes these manifests are meant for (grpc probes GA since 1.27) and the
# newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
SERVERS = ("docfoundry-1", "docfoundry-2")
# Measured peak RSS of a server on PostgreSQL (README, "Performance"): 433 MB at 100k
# chunks, 724 MB at 1M with the posting segment cache full.
PEAK_RSS_100K = 433_000_000
PEAK_RSS_1M = 724_000_000
# PostgreSQL's default max_connections less its superuser_reserved_connections.
POSTGRES_CONNECTIONS = 100 - 3
SECRET_SETTINGS = {"POSTGRES_PASSWORD", "DATABASE_URL", "PAGE_TOKEN_SECRET"}


# Loading ---------------------------------------------------------------------------------


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict[str, Any]:
    return documents(KUBERNETES / "kustomization.yaml")[0]


def manifests() -> list[dict[str, Any]]:
    return [doc for name in kustomization()["resources"] for doc in documents(KUBERNETES / name)]


def manifest(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in manifests()
        if doc["kind"] == kind and name in (None, doc["metadata"]["name"])
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} manifests"
    return found[0]


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = manifest("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return dict(only)


def container_port(name: str) -> int:
    return int(next(p["containerPort"] for p in container()["ports"] if p["name"] == name))


def pod_environment() -> dict[str, str]:
    """What envFrom gives the container: the ConfigMap's data and the Secret's stringData."""
    env: dict[str, str] = {}
    for source in container()["envFrom"]:
        if "configMapRef" in source:
            env |= manifest("ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            env |= manifest("Secret", source["secretRef"]["name"])["stringData"]
    return env


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def interpolated(value: str) -> str:
    """A Compose value with each ${NAME:-default} replaced by its default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> file or folder of the repository, for a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = (COMPOSE.parent / source).resolve()
    return mounts


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (1, 500m, 768Mi, 1G) as a number."""
    units = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    match = re.fullmatch(r"([0-9.]+)(m|k|M|G|Ki|Mi|Gi|)", str(value))
    assert match, f"not a quantity: {value!r}"
    return float(match.group(1)) * units[match.group(2)]


class ReadingEnv(Mapping[str, str]):
    """An environment that notes every name looked up in it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def read_settings(values: Mapping[str, str]) -> tuple[Settings, set[str]]:
    """The settings the server would build from `values`, and every variable it reads
    (with these values and with none, so that no branch is missed)."""
    env, bare = ReadingEnv(values), ReadingEnv({})
    settings = Settings.from_env(env)
    Settings.from_env(bare)
    return settings, env.read | bare.read


# Schemas and linters ---------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization()["resources"]) == sorted(files)
    kinds = {doc["kind"] for doc in manifests()}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert {"ConfigMap", "Secret"} <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_strictly(version: str) -> None:
    """Strict: a field the API does not define fails too. A kind without a schema raises
    SchemaNotFoundError, which fails the test as well."""
    errors = []
    for doc in manifests():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(map(str, error.path))
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}")
    assert not errors, errors


def test_yaml_passes_yamllint() -> None:
    files = [
        *sorted(DEPLOY.rglob("*.yml")),
        *sorted(DEPLOY.rglob("*.yaml")),
        ROOT / ".yamllint.yaml",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-f", "parsable", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(files) >= 14


def test_compose_file_matches_the_compose_specification() -> None:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose())
    ]
    assert not errors, errors


def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """promtool reads the configuration as the container sees it: the compose file's bind
    mounts laid out under /etc/prometheus, so alerts.yml is found where it is mounted."""
    promtool = tool("promtool")
    mounts = bind_mounts(compose()["services"]["prometheus"])
    for target, source in mounts.items():
        if target.startswith("/etc/prometheus/"):
            shutil.copy(source, tmp_path / Path(target).relative_to("/etc/prometheus"))
    result = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rules = len(re.findall(r"^\s*- alert: ", (DEPLOY / "alerts.yml").read_text(), re.M))
    assert f"{rules} rules found" in result.stdout + result.stderr
    assert mounts["/etc/prometheus/prometheus.yml"] == DEPLOY / "compose" / "prometheus.yml"


# Compose ---------------------------------------------------------------------------------


def test_compose_runs_database_servers_prometheus_and_grafana() -> None:
    services = compose()["services"]
    assert {"db", *SERVERS, "prometheus", "grafana"} <= set(services)
    db = services["db"]
    assert db["image"].startswith("pgvector/pgvector:")
    assert "healthcheck" in db
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose()["volumes"], "the database keeps its data in a named volume"
    built = {name for name, service in services.items() if "build" in service}
    assert built == set(SERVERS)
    for name in SERVERS:
        service = services[name]
        context = (COMPOSE.parent / service["build"]["context"]).resolve()
        assert context == ROOT and (context / service["build"]["dockerfile"]).is_file()
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        assert service["healthcheck"]["test"][0] == "CMD"


def test_compose_servers_pass_settings_the_server_reads() -> None:
    for name in SERVERS:
        environment = compose()["services"][name]["environment"]
        values = {key: interpolated(str(value)) for key, value in environment.items()}
        settings, read = read_settings(values)
        assert set(values) <= read, set(values) - read
        assert settings.database.type == "postgresql"
        settings.check_exposure()
        for key in SECRET_SETTINGS & set(environment):
            assert re.fullmatch(rf"\$\{{{key}:-[^}}]+\}}", environment[key]), key


def test_both_servers_compact_because_postgres_lets_one_at_a_time() -> None:
    """The compose file runs the compactor in both servers and says why that is safe: each
    packing first tries a session advisory lock, so a second server skips its turn."""
    intervals = {
        float(compose()["services"][name]["environment"]["POSTGRES_COMPACT_INTERVAL"])
        for name in SERVERS
    }
    assert intervals == {5.0}
    assert "pg_try_advisory_lock" in postgres_sql.COMPACTOR_LOCK
    assert "advisory lock" in COMPOSE.read_text()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_compose_healthcheck_probes_grpc_health(server: Harness) -> None:
    """The compose servers' healthcheck, run here with this interpreter: 0 on a serving
    server, 1 where nothing listens."""
    kind, program, *arguments = compose()["services"]["docfoundry-1"]["healthcheck"]["test"]
    assert (kind, program) == ("CMD", "python")
    port = server.target.rpartition(":")[2]
    for grpc_port, expected in ((port, 0), ("1", 1)):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *arguments,
            env={**os.environ, "GRPC_PORT": grpc_port},
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert await asyncio.wait_for(process.wait(), timeout=30) == expected


def test_compose_prometheus_scrapes_both_servers() -> None:
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "docfoundry"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    services = compose()["services"]
    ports = {services[name]["environment"]["METRICS_PORT"] for name in SERVERS}
    assert targets == {f"{name}:{port}" for name in SERVERS for port in ports}
    mounts = bind_mounts(services["prometheus"])
    assert mounts["/etc/prometheus/alerts.yml"] == DEPLOY / "alerts.yml"


def test_compose_grafana_is_provisioned_with_the_dashboard() -> None:
    services = compose()["services"]
    mounts = bind_mounts(services["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in services
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "docfoundry.yml").read_text())[
        "providers"
    ]
    dashboards = {
        target for target, source in mounts.items() if source == DEPLOY / "grafana-dashboard.json"
    }
    assert {str(Path(t).parent) for t in dashboards} == {provider["options"]["path"]}
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == datasource["type"]


# Kubernetes ------------------------------------------------------------------------------


def test_pod_runs_as_the_images_non_root_user_on_a_read_only_root() -> None:
    uid = re.search(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid, "the Dockerfile creates no numeric user"
    context = pod_spec()["securityContext"] | container()["securityContext"]
    assert context["runAsUser"] == int(uid.group(1)) and context["runAsUser"] != 0
    assert isinstance(context["runAsGroup"], int) and context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    # The int8 quantization at start writes its model to a temporary folder.
    tmp = next(m for m in container()["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in pod_spec()["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume


def test_probes_ask_grpc_health_on_the_grpc_port() -> None:
    port = container_port("grpc")
    assert port == int(pod_environment()["GRPC_PORT"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = container()[probe]
        assert set(spec) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, probe
        assert spec["grpc"]["port"] == port, probe
        # Readiness follows the database; liveness only the process (LIVENESS_SERVICE).
        expected = LIVENESS_SERVICE if probe == "livenessProbe" else ""
        assert spec["grpc"].get("service", "") == expected, probe
    # grpc probes speak no TLS: the port must be plaintext.
    settings, _ = read_settings(pod_environment())
    assert settings.insecure_plaintext and not settings.tls.enabled
    liveness = container()["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60


def test_shutdown_fits_the_termination_grace_period() -> None:
    settings, _ = read_settings(pod_environment())
    pause = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    # SHUTDOWN_GRACE_SECONDS for running calls, then about half a second to exit.
    needed = float(pause[1]) + settings.shutdown_grace_seconds + 1
    assert pod_spec()["terminationGracePeriodSeconds"] >= needed


def test_headless_service_selects_the_pods_for_dns_balancing() -> None:
    service = manifest("Service", "docfoundry-headless")["spec"]
    assert service["clusterIP"] == "None"
    labels = manifest("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    (port,) = service["ports"]
    assert port["targetPort"] in ("grpc", container_port("grpc"))
    assert port["port"] == container_port("grpc")
    regular = manifest("Service", "docfoundry")["spec"]
    assert regular["selector"] == service["selector"]


def test_hpa_and_pdb_target_the_deployment() -> None:
    deployment = manifest("Deployment")
    hpa = manifest("HorizontalPodAutoscaler")["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["minReplicas"] == deployment["spec"]["replicas"] == 2
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in container()["resources"]["requests"], "utilization needs a CPU request"
    pdb = manifest("PodDisruptionBudget")["spec"]
    assert pdb["selector"] == deployment["spec"]["selector"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert pdb.get("maxUnavailable", 0) >= 1 or pdb["minAvailable"] < hpa["minReplicas"]


def test_configmap_and_secret_hold_settings_the_server_reads() -> None:
    config = manifest("ConfigMap")["data"]
    secret = manifest("Secret")["stringData"]
    names = {s.get("configMapRef", s.get("secretRef"))["name"] for s in container()["envFrom"]}
    assert names == {
        manifest("ConfigMap")["metadata"]["name"],
        manifest("Secret")["metadata"]["name"],
    }
    settings, read = read_settings(pod_environment())
    assert set(config) | set(secret) <= read, (set(config) | set(secret)) - read
    assert settings.database.type == "postgresql" and settings.auth == "keys"
    assert settings.grpc_host == settings.metrics_host == "0.0.0.0"
    settings.check_exposure()
    assert not SECRET_SETTINGS & set(config), "secrets belong in the Secret"
    assert set(secret) <= SECRET_SETTINGS
    assert all("CHANGE-ME" in value for value in secret.values()), "placeholders only"


def test_resources_cover_measured_memory_and_pools_fit_postgres() -> None:
    resources_ = container()["resources"]
    assert quantity(resources_["requests"]["memory"]) >= PEAK_RSS_100K
    assert quantity(resources_["limits"]["memory"]) >= PEAK_RSS_1M
    assert quantity(resources_["limits"]["cpu"]) >= quantity(resources_["requests"]["cpu"]) >= 0.5
    settings, _ = read_settings(pod_environment())
    pools = manifest("HorizontalPodAutoscaler")["spec"]["maxReplicas"]
    assert pools * settings.database.postgres.pool_max_size <= POSTGRES_CONNECTIONS


def test_metrics_port_is_named_and_annotated() -> None:
    port = container_port("metrics")
    assert port == int(pod_environment()["METRICS_PORT"])
    annotations = manifest("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port


def test_operations_guide_names_the_headless_service() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    name = manifest("Service", "docfoundry-headless")["metadata"]["name"]
    port = manifest("Service", name)["spec"]["ports"][0]["port"]
    assert f"dns:///{name}.<namespace>.svc.cluster.local:{port}" in guide
    assert "kubectl apply -k deploy/kubernetes" in guide
    assert "docker compose -f deploy/docker-compose.yml up" in guide
