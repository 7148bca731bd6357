"""The docfoundry-client distribution on its own: `pip install ./client` into a fresh venv is
small, brings none of the server, searches a real server, and gives a user's mypy real types.
Also the client channel's service config: reads retried on UNAVAILABLE, writes not, and
calls spread over every address of the target."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import grpc.aio
import pytest

from docfoundry_client import DocFoundryClient, SyncDocFoundryClient

from .conftest import Harness
from .corpus import MARKDOWN
from .test_grpc import indexed

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 60 * 1000 * 1000  # the bound for the client installed alone: 60 MB
SERVER_ONLY = ("docfoundry_grpc", "numpy", "tqdm", "onnxruntime", "grpc_health")
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def clean_env() -> dict[str, str]:
    """This environment without what would let the venv see this checkout or this venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with nothing but `pip install ./client` (from a copy, so the build leaves
    nothing in the checkout)."""
    root = tmp_path_factory.mktemp("client-dist")
    source = root / "client"
    shutil.copytree(
        ROOT / "client",
        source,
        ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"),
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", str(source)],
        check=True,
        cwd=root,
        env=clean_env(),
        timeout=600,
    )
    return venv


def site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under `folder`, symlinks counted as links (the venv's python
    is a link to the interpreter it was made from)."""
    return sum(
        (Path(top) / name).lstat().st_size for top, _, names in os.walk(folder) for name in names
    )


def test_the_client_installs_alone_in_under_60_mb(client_venv: Path) -> None:
    size = folder_bytes(client_venv)
    print(f"\nvenv with only docfoundry-client: {size / 1e6:.1f} MB")
    assert size < LIMIT_BYTES, f"the client's venv is {size / 1e6:.1f} MB"
    probe = "import sys, importlib.util as u; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    found = subprocess.run(
        [str(client_venv / "bin/python"), "-I", "-c", probe, *SERVER_ONLY, "docfoundry_client"],
        capture_output=True,
        text=True,
        check=True,
        cwd=client_venv,
    )
    assert json.loads(found.stdout.replace("'", '"')) == ["docfoundry_client"]
    shipped = site_packages(client_venv)
    for name in (
        "docfoundry/py.typed",
        "docfoundry/v1/search_pb2.pyi",
        "docfoundry/v1/search_pb2_grpc.pyi",
        "docfoundry/v1/search.binpb",
        "docfoundry_client/py.typed",
    ):
        assert (shipped / name).is_file(), f"{name} is not in the wheel"


async def run_in(venv: Path, program: str, *args: str, cwd: Path) -> str:
    """Runs `program` (a file in the venv's bin/) and returns its standard output; the
    server answering it runs on this event loop, so the wait must not block."""
    process = await asyncio.create_subprocess_exec(
        str(venv / "bin" / program),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=clean_env(),
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    return out.decode()


SEARCH = """
import json, sys
from docfoundry_client import SyncDocFoundryClient

with SyncDocFoundryClient(sys.argv[1]) as client:
    result = client.hybrid("which port does the server use", k=3)
print(json.dumps([[hit.document_path, hit.score] for hit in result.hits]))
"""


@sqlite_only
async def test_the_installed_client_indexes_and_searches_a_real_server(
    client_venv: Path, server: Harness, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    for path, content in MARKDOWN.items():
        (docs / path).parent.mkdir(parents=True, exist_ok=True)
        (docs / path).write_text(content)
    # The client's own command, without the `cli` extra: no progress bar, same summary.
    ingest = ("ingest", str(docs), "--target", server.target)
    out = await run_in(client_venv, "docfoundry-client", *ingest, cwd=tmp_path)
    assert "indexed 3 documents: 3 created" in out
    hits = json.loads(
        await run_in(client_venv, "python", "-c", SEARCH, server.target, cwd=tmp_path)
    )
    assert hits and hits[0][0] == "docs/guides/install.md"
    assert all(score > 0 for _, score in hits)


USER_SCRIPT = """
from docfoundry.v1 import search_pb2
from docfoundry_client import SearchResult, SyncDocFoundryClient


def best_score(client: SyncDocFoundryClient) -> float:
    result: SearchResult = client.hybrid("configure the port", k=5)
    return result.hits[0].score


request = search_pb2.HybridRequest(q="port", k=3)
depth: int = request.k
"""
WRONG_USES = """
reveal_type(best_score)
reveal_type(request.q)
reveal_type(search_pb2.Hit().score)
wrong: int = request.q
search_pb2.HybridRequest(k="three")
"""


def user_mypy(client_venv: Path, tmp_path: Path, program: str) -> subprocess.CompletedProcess[str]:
    """Strict mypy (this venv's) on a user's program against the client venv's packages
    only: no config, no path into this checkout."""
    (tmp_path / "user.py").write_text(program)
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(tmp_path / "mypy.ini"),
            "--python-executable",
            str(client_venv / "bin/python"),
            "--no-incremental",
            "user.py",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=300,
    )


def test_a_users_mypy_sees_the_installed_clients_types(client_venv: Path, tmp_path: Path) -> None:
    clean = user_mypy(client_venv, tmp_path, USER_SCRIPT)
    assert clean.returncode == 0, clean.stdout
    wrong = user_mypy(client_venv, tmp_path, USER_SCRIPT + WRONG_USES)
    assert wrong.returncode == 1, wrong.stdout
    report = wrong.stdout
    revealed = re.findall(r'Revealed type is "(.*)"', report)
    builtin = r"(builtins\.)?"
    assert len(revealed) == 3, report
    assert re.fullmatch(
        rf"def \(client: [\w.]*SyncDocFoundryClient\) -> {builtin}float", revealed[0]
    )
    assert re.fullmatch(rf"{builtin}str", revealed[1]) and re.fullmatch(
        rf"{builtin}float", revealed[2]
    )
    assert (
        'Incompatible types in assignment (expression has type "str", variable has type "int")'
        in report
    )
    assert 'Argument "k" to "HybridRequest" has incompatible type "str"; expected "int"' in report


class ForwardingHandler(grpc.GenericRpcHandler):
    """Passes unary calls on to `upstream` as bytes, counting them by method; the first call
    of each method in `fail_first` is answered UNAVAILABLE instead."""

    def __init__(self, upstream: grpc.aio.Channel, fail_first: frozenset[str]) -> None:
        self.upstream = upstream
        self.fail_first = fail_first
        self.calls: Counter[str] = Counter()

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        method: str = handler_call_details.method
        name = method.rpartition("/")[2]
        forward: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = self.upstream.unary_unary(method)

        async def handle(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            self.calls[name] += 1
            if name in self.fail_first and self.calls[name] == 1:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "dropped by the test's proxy")
            response: bytes = await forward(request)
            return response

        return grpc.unary_unary_rpc_method_handler(handle)


@asynccontextmanager
async def proxy(
    target: str, *, fail_first: frozenset[str] = frozenset()
) -> AsyncIterator[tuple[str, ForwardingHandler]]:
    """A gRPC proxy in front of `target` on a free port: its address and handler."""
    async with grpc.aio.insecure_channel(target) as upstream:
        handler = ForwardingHandler(upstream, fail_first)
        server = grpc.aio.server()
        server.add_generic_rpc_handlers([handler])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            yield f"127.0.0.1:{port}", handler
        finally:
            await server.stop(None)


@sqlite_only
async def test_reads_are_retried_on_unavailable_and_clicks_are_not(server: Harness) -> None:
    await indexed(server)
    flaky = frozenset({"Hybrid", "Fulltext", "ListCollections", "RecordClick"})
    async with proxy(server.target, fail_first=flaky) as (address, handler):
        async with DocFoundryClient(address) as client:
            result = await client.hybrid("which port", k=2)
            assert result.hits and handler.calls["Hybrid"] == 2
            assert [c.name for c in await client.list_collections()] == ["default"]
            assert handler.calls["ListCollections"] == 2
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.record_click("which port", result.hits[0].chunk_id, position=1)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert handler.calls["RecordClick"] == 1  # not sent twice
            # The blocking client is the same client underneath.
            blocking = await asyncio.to_thread(blocking_fulltext, address)
            assert blocking and handler.calls["Fulltext"] == 2


def blocking_fulltext(address: str) -> int:
    with SyncDocFoundryClient(address) as client:
        return len(client.fulltext("port", k=2).hits)


@sqlite_only
async def test_a_callers_service_config_replaces_the_default(server: Harness) -> None:
    no_retries = json.dumps({"methodConfig": []})
    async with proxy(server.target, fail_first=frozenset({"Hybrid"})) as (address, handler):
        options = [("grpc.service_config", no_retries)]
        async with DocFoundryClient(address, options=options) as client:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await client.hybrid("which port", k=2)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert handler.calls["Hybrid"] == 1


@sqlite_only
async def test_calls_spread_over_every_address_of_the_target(server: Harness) -> None:
    """Two addresses in one target, as DNS gives for several servers: round_robin sends
    calls to both (pick_first, gRPC's default, would send them all to the first)."""
    async with proxy(server.target) as (first, one), proxy(server.target) as (second, two):
        target = f"ipv4:{first},{second}"
        async with DocFoundryClient(target) as client:
            for _ in range(20):
                assert (await client.health()).serving
    assert one.calls["Health"] + two.calls["Health"] == 20
    assert one.calls["Health"] >= 5 and two.calls["Health"] >= 5, (one.calls, two.calls)
