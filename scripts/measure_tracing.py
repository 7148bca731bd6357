"""Per-request cost of tracing: Hybrid latency on servers started side by side on copies of
one SQLite index and called in turn, so drift hits all alike.

    before  a source tree from before tracing (--baseline; e.g. `git worktree add DIR REV`)
    off     this tree with tracing off, the default
    on      this tree with OTEL_TRACES_EXPORTER=otlp, exporting to a collector in this script
    on 1%   the same, sampling 1% of traces (OTEL_TRACES_SAMPLER=parentbased_traceidratio)

    .venv/bin/python scripts/measure_tracing.py [--baseline DIR] [--requests 500]
        [--servers before,off,on,on 1%]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_client import DocFoundryClient, iter_documents
from docfoundry_grpc.config import DatabaseConfig, Settings
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.service.app import build_app

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["reciprocal rank fusion", "which port", "migrate to postgresql", "metrics"]
WARMUP = 20


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP receiver that counts spans, on threads of its own."""

    def __init__(self) -> None:
        self.spans = 0

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    times: list[float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def build_index(path: Path) -> None:
    database = DatabaseConfig(type="sqlite", sqlite_path=path)
    settings = replace(Settings(), database=database, grpc_port=0, metrics_port=0)
    app = build_app(settings, embedder=MiniLMEmbedder())
    await app.start()
    async with DocFoundryClient(app.address) as client:
        docs = list(iter_documents([ROOT / "docs", ROOT / "README.md"], root=ROOT))
        [o async for o in client.index_documents(docs)]
    await app.stop(grace=0)


def start(name: str, tree: Path, database: Path, env: dict[str, str]) -> Server:
    port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'client'}",
        "DATABASE_TYPE": "sqlite",
        "SQLITE_PATH": str(database),
        "GRPC_PORT": str(port),
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "OTEL_TRACES_EXPORTER": "none",
        **env,
    }
    command = [sys.executable, "-m", "docfoundry_grpc", "serve"]
    process = subprocess.Popen(command, cwd=tree, env=environment)
    return Server(name, process, port, [])


async def wait_serving(server: Server) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(600):
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited with {server.process.returncode}")
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{server.name} did not start")


async def call(stub: pb_grpc.SearchServiceAsyncStub, q: str) -> float:
    started = time.perf_counter()
    await stub.Hybrid(pb.HybridRequest(q=q, k=10))
    return (time.perf_counter() - started) * 1000


async def measure(servers: list[Server], requests: int) -> None:
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{s.port}") for s in servers]
    pairs = [(s, pb_grpc.SearchServiceStub(c)) for s, c in zip(servers, channels, strict=True)]
    for i in range(WARMUP):
        for _, stub in pairs:
            await call(stub, QUERIES[i % len(QUERIES)])
    for i in range(requests):
        q = QUERIES[i % len(QUERIES)]
        turn = i % len(pairs)  # who goes first rotates too
        for server, stub in pairs[turn:] + pairs[:turn]:
            server.times.append(await call(stub, q))
    for channel in channels:
        await channel.close()


def report(servers: list[Server]) -> None:
    off = next(s for s in servers if s.name == "off")
    p50_off = statistics.median(off.times)
    print(f"{'server':<8}{'p50':>9}{'p90':>9}{'mean':>9}{'p50 vs off':>12}  (ms, Hybrid)")
    for s in servers:
        p50 = statistics.median(s.times)
        p90 = statistics.quantiles(s.times, n=10)[-1]
        mean = statistics.fmean(s.times)
        print(f"{s.name:<8}{p50:>9.3f}{p90:>9.3f}{mean:>9.3f}{p50 - p50_off:>+12.3f}")


async def main_async(baseline: Path | None, requests: int, wanted: set[str]) -> None:
    collector = Collector()
    receiver = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        collector, receiver
    )
    receiver_port = receiver.add_insecure_port("127.0.0.1:0")
    receiver.start()
    servers: list[Server] = []
    with tempfile.TemporaryDirectory() as folder:
        index = Path(folder) / "index.db"
        await build_index(index)
        trees: list[tuple[str, Path, dict[str, str]]] = []
        if baseline is not None:
            trees.append(("before", baseline, {}))
        otlp = {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver_port}",
        }
        sampled = {
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.01",
        }
        trees += [("off", ROOT, {}), ("on", ROOT, otlp), ("on 1%", ROOT, {**otlp, **sampled})]
        try:
            for name, tree, env in trees:
                if name not in wanted:
                    continue
                copy = Path(folder) / f"{name}.db"
                shutil.copyfile(index, copy)
                servers.append(start(name, tree.resolve(), copy, env))
            for server in servers:
                await wait_serving(server)
            await measure(servers, requests)
        finally:
            for server in servers:
                server.process.terminate()
                server.process.wait(30)
    receiver.stop(None)
    report(servers)
    print(f"spans received by the collector: {collector.spans}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, help="a source tree from before tracing")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--servers", default="before,off,on,on 1%", help="which to run")
    args = parser.parse_args()
    asyncio.run(main_async(args.baseline, args.requests, set(args.servers.split(","))))


if __name__ == "__main__":
    main()
