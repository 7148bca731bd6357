"""The server as an operator runs it: `python server.py`, stopped by SIGTERM; and a
PostgreSQL without pgvector refused at start with a message that says what to install."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from docfoundry_grpc.devdb import free_port

from .conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
PLAIN_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


async def wait_for_health(target: str, status: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == status:
                    return
            except grpc.aio.AioRpcError:
                pass
            assert time.monotonic() < deadline, "server never reached the expected status"
            await asyncio.sleep(0.1)


async def test_server_py_serves_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "SQLITE_PATH": str(tmp_path / "s.db"),
        "GRPC_PORT": str(port),
        "METRICS_PORT": "0",
        "SHUTDOWN_GRACE_SECONDS": "2",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "server.py"),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await wait_for_health(f"127.0.0.1:{port}", health_pb2.HealthCheckResponse.SERVING)
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
    log = output.decode()
    assert process.returncode == 0, log
    assert "shutting down" in log and "DocFoundry stopped" in log
    assert "Traceback" not in log


async def plain_postgres_answers() -> bool:
    try:
        connection = await asyncpg.connect(PLAIN_POSTGRES, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        available = await connection.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
        )
    finally:
        await connection.close()
    return bool(available == 0)


async def test_missing_pgvector_fails_fast_with_install_hint() -> None:
    if not await plain_postgres_answers():
        pytest.skip("no PostgreSQL without pgvector on 127.0.0.1:5432 to try")
    result = await run_cli(
        "init-db", env={"DATABASE_TYPE": "postgresql", "DATABASE_URL": PLAIN_POSTGRES}
    )
    assert result.returncode == 2
    assert "pgvector" in result.stderr and "install" in result.stderr
    assert "Traceback" not in result.stderr


async def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"SQLITE_PATH": str(tmp_path / "p.db"), "GRPC_PORT": str(port), "METRICS_PORT": "0"}
        result = await run_cli("serve", env=env)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


async def test_ready_is_logged_once_ingest_is_done(tmp_path: Path) -> None:
    """`serve --ingest` logs "ready on" only after the files are indexed: a search made the
    moment it appears sees every document."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(40):
        (docs / f"page{i}.md").write_text(f"# Page {i}\n\n" + "Words about ports. " * 200)
    port = free_port()
    env = {
        **os.environ,
        "SQLITE_PATH": str(tmp_path / "s.db"),
        "GRPC_PORT": str(port),
        "METRICS_PORT": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "docfoundry_grpc",
        "serve",
        "--ingest",
        str(docs),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        lines: list[str] = []
        while not any("ready on" in line for line in lines):
            line = await asyncio.wait_for(process.stdout.readline(), timeout=120)
            assert line, "".join(lines)
            lines.append(line.decode())
        health = await run_cli("health", "--json", "--target", f"127.0.0.1:{port}")
        assert health.returncode == 0, health.stderr
        assert json.loads(health.stdout)["document_count"] == 40
        log = "".join(lines)
        assert log.index("listening on") < log.index("indexed") < log.index("ready on")
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), timeout=30)
