"""Per-request cost of metrics and logging: the same index served twice in one process,
once as `build_app` wires it (metrics on every layer, one INFO log line per RPC) and once
bare (no metrics, RPC log off), called alternately so drift hits both alike.

    .venv/bin/python scripts/measure_observability.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import grpc

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_client import DocFoundryClient, iter_documents
from docfoundry_grpc.config import DatabaseConfig, Settings
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.engine import SearchEngine
from docfoundry_grpc.logs import configure_logging
from docfoundry_grpc.service.app import build_app
from docfoundry_grpc.service.interceptors import ServiceInterceptor
from docfoundry_grpc.service.servicer import SearchServicer
from docfoundry_grpc.storage import build_store

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["reciprocal rank fusion", "which port", "migrate to postgresql", "metrics"]


async def bare_server(database: DatabaseConfig, embedder: MiniLMEmbedder) -> tuple[object, int]:
    store = build_store(database, dimension=embedder.dimension)
    await store.open()
    engine = SearchEngine(store, embedder, Settings().search)
    server = grpc.aio.server(interceptors=[ServiceInterceptor(None)])
    pb_grpc.add_SearchServiceServicer_to_server(SearchServicer(engine), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def timed(stub: pb_grpc.SearchServiceStub, method: str, q: str) -> float:
    started = time.perf_counter()
    await getattr(stub, method)(getattr(pb, f"{method}Request")(q=q, k=10))
    return (time.perf_counter() - started) * 1000


async def measure(requests: int) -> None:
    embedder = MiniLMEmbedder()
    with tempfile.TemporaryDirectory() as folder:
        database = DatabaseConfig(type="sqlite", sqlite_path=Path(folder) / "o.db")
        settings = replace(Settings(), database=database, grpc_port=0, metrics_port=0)
        app = build_app(settings, embedder=embedder)
        await app.start()
        async with DocFoundryClient(app.address) as client:
            docs = list(iter_documents([ROOT / "docs", ROOT / "README.md"], root=ROOT))
            [o async for o in client.index_documents(docs)]
        bare, bare_port = await bare_server(database, embedder)
        log_file = Path(folder) / "rpc.log"
        configure_logging("INFO")
        logging.getLogger().handlers[0] = logging.FileHandler(log_file)
        rpc_log = logging.getLogger("docfoundry_grpc.rpc")
        async with (
            grpc.aio.insecure_channel(app.address) as full_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{bare_port}") as bare_channel,
        ):
            full = pb_grpc.SearchServiceStub(full_channel)
            plain = pb_grpc.SearchServiceStub(bare_channel)
            print(f"{'rpc':<10}{'with p50':>10}{'bare p50':>10}{'overhead':>10}  (ms)")
            for method in ("Fulltext", "Hybrid"):
                with_obs: list[float] = []
                without: list[float] = []
                for i in range(requests):
                    q = QUERIES[i % len(QUERIES)]
                    rpc_log.disabled = False
                    with_obs.append(await timed(full, method, q))
                    rpc_log.disabled = True
                    without.append(await timed(plain, method, q))
                a, b = statistics.median(with_obs), statistics.median(without)
                print(f"{method:<10}{a:>10.3f}{b:>10.3f}{a - b:>+10.3f}")
        await bare.stop(None)  # type: ignore[attr-defined]
        await app.stop(grace=0)
        print(f"log lines written: {sum(1 for _ in log_file.open())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(measure(parser.parse_args().requests))


if __name__ == "__main__":
    main()
