"""The README's commands, run as a reader would run them: each ```bash block and the Python
snippet, verbatim, from a folder laid out like a checkout after `make run`, against the
server `make run` starts (on the README's own ports, 50051 and 9464). `<…>` placeholders,
which the README marks as such, are filled in with real values. Every block is accounted
for: one the test does not know fails it. The Docker block is the one known and not run
(no engine runs in CI; hadolint checks the Dockerfile)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from .conftest import PostgresServer, fresh_database
from .test_evaluation import write_beir

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PORTS = (50051, 9464)
POSTGRES_URL = "postgresql://<user>:<password>@<host>/docfoundry"
# The environment a reader's shell would not have set.
CLEARED = ("DOCFOUNDRY_TARGET", "DOCFOUNDRY_API_KEY", "SQLITE_PATH", "DATABASE_TYPE")
CLEARED_PREFIXES = ("POSTGRES_", "GRPC_", "METRICS_", "TLS_", "DATABASE_URL", "AUTH")


@dataclass(frozen=True)
class Block:
    language: str
    text: str

    @property
    def commands(self) -> list[str]:
        """Its commands, continuation lines joined, comments and blank lines left out."""
        joined = self.text.replace("\\\n", " ")
        lines = (line.split("  #")[0].strip() for line in joined.splitlines())
        return [line for line in lines if line and not line.startswith("#")]


def readme_blocks() -> list[Block]:
    fences = re.findall(r"^```(\w+)\n(.*?)^```", README.read_text(), re.M | re.S)
    return [Block(language, text) for language, text in fences]


def block_starting(prefix: str) -> Block:
    [block] = [b for b in readme_blocks() if b.text.startswith(prefix)]
    return block


def make_run_command() -> str:
    """The command of the Makefile's `run` target, after its setup prerequisite."""
    recipe = re.search(r"^run: setup\n\t(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "Makefile has no run target"
    return recipe.group(1)


def corpus_files() -> int:
    """Files `make run` indexes: docs/ and the README."""
    docs = [p for p in (ROOT / "docs").rglob("*") if p.suffix in (".md", ".html", ".txt")]
    return len(docs) + 1


def reader_env(**extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in CLEARED and not name.startswith(CLEARED_PREFIXES)
    }
    return {**env, **extra}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A folder like the checkout after `make run`: the same venv, docs and README, and
    a data/ folder of its own."""
    folder = tmp_path / "checkout"
    folder.mkdir()
    for name in (".venv", "docs", "README.md", "client", "scripts"):
        (folder / name).symlink_to(ROOT / name)
    return folder


COPY_IGNORED = shutil.ignore_patterns(
    ".venv",
    ".git",
    ".tools",
    "data",
    "build",
    "*.egg-info",
    "eval-results",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "node_modules",
    "bench-results",
)


def copy_of_checkout(folder: Path) -> Path:
    """The project's files, without virtual environments, caches or data."""
    shutil.copytree(ROOT, folder, ignore=COPY_IGNORED, symlinks=True)
    return folder


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout after `make run`'s setup, the runtime one: `scripts/bootstrap.sh`
    without `dev`, in a copy of the project, so its .venv has what `make run` installs
    and nothing the tests add."""
    folder = copy_of_checkout(tmp_path_factory.mktemp("made") / "checkout")
    result = subprocess.run(
        ["scripts/bootstrap.sh"],
        cwd=folder,
        env=reader_env(PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


def in_venv(venv: Path, **extra: str) -> dict[str, str]:
    """The environment of a shell with `venv` activated."""
    path = [p for p in os.environ["PATH"].split(os.pathsep) if ".venv" not in p]
    return reader_env(
        PATH=os.pathsep.join([str(venv / "bin"), *path]), VIRTUAL_ENV=str(venv), **extra
    )


def ports_free() -> None:
    for port in PORTS:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"the README's commands need port {port}, which is in use")


def run(command: str, cwd: Path, env: dict[str, str], timeout: float = 120) -> str:
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@contextmanager
def serving(command: str, cwd: Path, env: dict[str, str]) -> Iterator[str]:
    """`command` (a server) started in its own process group, until it logs "ready on";
    stopped by SIGTERM to that group afterwards. Yields its log so far."""
    ports_free()
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while not any("ready on" in line for line in lines):
            line = process.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        yield "".join(lines)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(lines) + rest
    assert "Traceback" not in rest, rest


def test_every_block_is_accounted_for() -> None:
    known = (
        "make run",
        ".venv/bin/docfoundry search",
        "import asyncio",
        "python -m pip install --upgrade pip",
        "python -m pip install ./client",
        "DATABASE_TYPE=postgresql",
        ".venv/bin/docfoundry migrate",
        "docker build",
        '.venv/bin/docfoundry search "install" --target <host>',
        ".venv/bin/docfoundry keys create",
    )
    blocks = readme_blocks()
    assert len(blocks) >= 8
    for block in blocks:
        assert block.language in ("bash", "python"), block
        assert block.text.startswith(known), f"a README block no test runs:\n{block.text}"


def test_the_two_commands_are_the_makefile_targets() -> None:
    """`make test` is what CI runs (this test runs inside it); `make run` is the server the
    tests below start, with the command its Makefile target runs."""
    commands = block_starting("make run").commands
    assert [c.split()[:2] for c in commands] == [["make", "run"], ["make", "test"]]
    assert make_run_command().startswith(".venv/bin/docfoundry serve --ingest docs")


def test_commands_after_make_run(made: Path) -> None:
    checkout, env = made, reader_env()
    with serving(make_run_command(), checkout, env) as log:
        assert "listening on 127.0.0.1:50051" in log
        block = block_starting('.venv/bin/docfoundry search "how')
        outputs = [run(command, checkout, env) for command in block.commands]
        search, health, listing, hybrid, check, metrics = outputs
        assert "docs/" in search
        # The whole corpus was in before "ready": every file of docs/ and the README.
        assert re.search(rf"document_count\s+{corpus_files()}\n", health), health
        assert "docfoundry.v1.SearchService" in listing
        assert json.loads(hybrid)["hits"]
        assert json.loads(check) == {"status": "SERVING"}
        assert 'grpc_server_handled_total{grpc_code="OK"' in metrics
        [python] = [b for b in readme_blocks() if b.language == "python"]
        script = checkout / "snippet.py"
        script.write_text(python.text)
        printed = run(f".venv/bin/python {script}", checkout, env)
        assert "default" in printed and "docs/" in printed


def test_eval_after_make_run(made: Path) -> None:
    """`docfoundry eval` (the README's command table) from `make run`'s environment."""
    write_beir(made / "tiny")
    table = run(".venv/bin/docfoundry eval tiny --backend sqlite", made, reader_env(), 600)
    assert "tiny on sqlite: 3 queries, 5 documents" in table


def test_pip_install_commands(tmp_path: Path) -> None:
    """The "pip install" section, in a new virtual environment made the way the README
    assumes one, from a copy of the checkout."""
    checkout = copy_of_checkout(tmp_path / "checkout")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = in_venv(venv)
    *installs, serve = block_starting("python -m pip install --upgrade pip").commands
    for command in installs:
        run(command, checkout, env, timeout=900)
    with serving(serve, checkout, env) as log:
        assert "listening on 127.0.0.1:50051" in log
        health = run("docfoundry health", checkout, env)
        docs = [p for p in (ROOT / "docs").rglob("*") if p.suffix in (".md", ".html", ".txt")]
        assert re.search(rf"document_count\s+{len(docs)}\n", health), health
    client_venv = tmp_path / "client-venv"
    subprocess.run([sys.executable, "-m", "venv", str(client_venv)], check=True, timeout=120)
    [client_only] = block_starting("python -m pip install ./client").commands
    run(client_only, checkout, in_venv(client_venv), timeout=600)


def test_keys_commands(checkout: Path) -> None:
    env = reader_env()
    commands = block_starting(".venv/bin/docfoundry keys create").commands
    *creates, listing, revoke = commands
    for command in creates:
        assert re.search(r"dfk_[0-9a-f]{16}_\S+", run(command, checkout, env))
    keys = run(listing, checkout, env)
    key_id = re.findall(r"\b[0-9a-f]{16}\b", keys)[0]
    run(revoke.replace("<KEY_ID>", key_id), checkout, env)
    assert "revoked" in run(listing, checkout, env)


async def test_postgresql_and_migration_commands(
    checkout: Path, postgres_server: PostgresServer
) -> None:
    env = reader_env()
    async with fresh_database(postgres_server) as dsn:
        # An index on SQLite first, where `make run` leaves it: data/docfoundry.db.
        with serving(make_run_command(), checkout, env):
            pass
        init_db, serve = block_starting("DATABASE_TYPE=postgresql").commands
        run(init_db.replace(POSTGRES_URL, dsn), checkout, env)
        [migrate] = block_starting(".venv/bin/docfoundry migrate").commands
        migrated = run(migrate.replace(POSTGRES_URL, dsn), checkout, env, timeout=300)
        assert "documents" in migrated
        with serving(serve.replace(POSTGRES_URL, dsn), checkout, env) as log:
            assert "backend postgresql" in log
            found = run('.venv/bin/docfoundry search "rank fusion" --json', checkout, env)
            assert json.loads(found)["hits"]


def test_tls_client_commands(checkout: Path, tmp_path: Path) -> None:
    authority = trustme.CA()
    files = {
        "<ca.pem>": tmp_path / "ca.pem",
        "<client.pem>": tmp_path / "client.pem",
        "<client.key>": tmp_path / "client.key",
    }
    authority.cert_pem.write_to_path(str(files["<ca.pem>"]))
    client = authority.issue_cert("client.example")
    client.cert_chain_pems[0].write_to_path(str(files["<client.pem>"]))
    client.private_key_pem.write_to_path(str(files["<client.key>"]))
    server_cert = authority.issue_cert("localhost")
    server_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    server_cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    server_env = reader_env(
        TLS_CERT_FILE=str(tmp_path / "server.pem"), TLS_KEY_FILE=str(tmp_path / "server.key")
    )
    # "A certificate of a public CA": the system's roots, here made to be this CA's.
    env = reader_env(GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=str(files["<ca.pem>"]))
    with serving(".venv/bin/docfoundry serve", checkout, server_env):
        for command in block_starting('.venv/bin/docfoundry search "install"').commands:
            command = command.replace("<host>", "localhost")
            for placeholder, path in files.items():
                command = command.replace(placeholder, str(path))
            assert "<" not in command, command
            run(command, checkout, env)
