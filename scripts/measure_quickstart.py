"""Figures for the quick start: cold start of `docfoundry serve`, ingest throughput of this
project's docs, and p50/p95 latency of each search mode through the Python client.

    .venv/bin/python scripts/measure_quickstart.py [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from docfoundry_client import DocFoundryClient, iter_documents
from docfoundry_grpc.devdb import free_port

ROOT = Path(__file__).resolve().parents[1]
QUERIES = [
    "how do I run the server",
    "reciprocal rank fusion",
    "which port does it listen on",
    "migrate sqlite to postgresql",
    "what happens when the database is down",
    "prometheus metrics for the pool",
    "how are clicks used",
    "configure the log format",
]


def _fresh_queries(mode: str) -> Callable[[int], str]:
    """The i-th query, made new by its mode and number, so the model runs on each."""
    return lambda i: f"{QUERIES[i % len(QUERIES)]} {mode} {i}"


async def wait_serving(target: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                response = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("server did not become SERVING")
            await asyncio.sleep(0.02)


async def measure(requests: int) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "SQLITE_PATH": f"{folder}/q.db",
            "GRPC_PORT": str(port),
            "METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
        }
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "docfoundry_grpc", "serve"], env=env)
        try:
            await wait_serving(target)
            cold_start = time.perf_counter() - started
            async with DocFoundryClient(target) as client:
                t0 = time.perf_counter()
                docs = list(iter_documents([ROOT / "docs", ROOT / "README.md"], root=ROOT))
                chunks = sum([o.chunk_count async for o in client.index_documents(docs)])
                ingest = time.perf_counter() - t0
                print(f"cold start (process start → SERVING): {cold_start:.2f} s")
                print(
                    f"ingest: {len(docs)} documents, {chunks} chunks in {ingest:.2f} s "
                    f"= {chunks / ingest:.1f} chunks/s (server-side embedding)"
                )
                print(f"{'mode':<10}{'p50 ms':>9}{'p95 ms':>9}  ({requests} requests, 1 caller)")
                for mode in ("fulltext", "semantic", "hybrid"):
                    for q in QUERIES:  # warm-up: the first pass embeds each query once
                        await client.search(q, mode)
                    await report(client, mode, requests, lambda i: QUERIES[i % len(QUERIES)])
                for mode in ("semantic", "hybrid"):  # every query new: the model runs each time
                    await report(client, f"{mode}*", requests // 4, _fresh_queries(mode))
                print("* distinct queries, so the query embedding is computed on every call")
        finally:
            server.terminate()
            server.wait(30)


async def report(
    client: DocFoundryClient, mode: str, requests: int, query: Callable[[int], str]
) -> None:
    latencies = []
    for i in range(requests):
        started = time.perf_counter()
        await client.search(query(i), mode.rstrip("*"))  # type: ignore[arg-type]
        latencies.append((time.perf_counter() - started) * 1000)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"{mode:<10}{statistics.median(latencies):>9.2f}{p95:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    asyncio.run(measure(parser.parse_args().requests))


if __name__ == "__main__":
    main()
