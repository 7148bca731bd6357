"""Two servers on one PostgreSQL, at bench scale: how soon a document written through one is
found through the other (200 trials), and whether at rest both give the same top 10.

    .venv/bin/python -m bench.two_servers [--chunks 100000]

It loads the bench's SciFact corpus (caller vectors, from the bench's embedding cache) into
a throwaway PostgreSQL without the vector index, starts both servers (the first builds
the HNSW index), then measures. The operations guide quotes its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import grpc

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_grpc.config import DatabaseConfig, PostgresConfig, Settings
from docfoundry_grpc.devdb import LocalPostgres
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.service.app import App, build_app

from .corpus import read_queries
from .fresh import corpus_requests
from .ingest import send_documents
from .options import DEFAULT_CACHE_DIR

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"
TRIALS = 200
MODES = ("Fulltext", "Semantic", "Hybrid")


@dataclass
class Server:
    app: App
    channel: grpc.aio.Channel
    search: pb_grpc.SearchServiceAsyncStub
    index: pb_grpc.IndexServiceAsyncStub


async def start(postgres: PostgresConfig, embedder: MiniLMEmbedder) -> Server:
    database = DatabaseConfig(type="postgresql", postgres=postgres)
    settings = replace(Settings(), database=database, grpc_port=0, metrics_port=0)
    app = build_app(settings, embedder=embedder)
    await app.start()
    channel = grpc.aio.insecure_channel(app.address)
    return Server(
        app, channel, pb_grpc.SearchServiceStub(channel), pb_grpc.IndexServiceStub(channel)
    )


async def stop(server: Server) -> None:
    await server.channel.close()
    await server.app.stop(grace=1)


async def top10(server: Server, queries: list[str]) -> list[list[tuple[int, float]]]:
    found = []
    for q in queries:
        for mode in MODES:
            request = getattr(pb, f"{mode}Request")(q=q, k=10)
            response = await getattr(server.search, mode)(request)
            found.append([(hit.chunk_id, round(hit.score, 9)) for hit in response.hits])
    return found


async def visible_after(writer: Server, reader: Server, trial: int) -> float:
    """Seconds from the write's acknowledgement to the other server finding it."""
    word = f"walrus{trial}okapi"
    document = pb.Document(path=f"trial/{trial}.md", content=f"# Trial\n\nA {word}.")
    stream = writer.index.IndexDocuments(iter([pb.IndexDocumentsRequest(document=document)]))
    [_ async for _ in stream]
    acknowledged = time.perf_counter()
    while True:
        response = await reader.search.Fulltext(pb.FulltextRequest(q=word))
        if [hit.document_path for hit in response.hits] == [f"trial/{trial}.md"]:
            return time.perf_counter() - acknowledged
        await asyncio.sleep(0.001)


async def measure(chunks: int) -> None:
    requests = corpus_requests(SCIFACT, chunks, cache_dir=DEFAULT_CACHE_DIR, embed_pool=300, seed=1)
    queries = read_queries(SCIFACT / "queries.jsonl")[:100]
    embedder = MiniLMEmbedder()
    cluster = LocalPostgres(settings={"shared_buffers": "2GB"}).start()
    try:
        admin = await asyncpg.connect(cluster.dsn)
        await admin.execute("CREATE DATABASE two")
        await admin.close()
        postgres = PostgresConfig(url=cluster.dsn_for("two"), pool_min_size=1, pool_max_size=10)
        loader = await start(replace(postgres, vector_index="none"), embedder)
        started = time.perf_counter()
        await send_documents(loader.app.address, requests)
        print(f"loaded {chunks} chunks in {time.perf_counter() - started:.0f} s", flush=True)
        await stop(loader)
        first, second = await start(postgres, embedder), await start(postgres, embedder)
        try:
            await top10(first, queries[:5])
            await top10(second, queries[:5])
            delays = [await visible_after(first, second, trial) for trial in range(TRIALS)]
            p99 = statistics.quantiles(delays, n=100)[98]
            print(
                f"visible through the other server: p50 {statistics.median(delays) * 1e3:.2f} ms,"
                f" p99 {p99 * 1e3:.2f} ms, max {max(delays) * 1e3:.2f} ms ({TRIALS} trials)"
            )
            await first.app.store.compact()  # type: ignore[attr-defined]
            answers = zip(await top10(first, queries), await top10(second, queries), strict=True)
            same = sum(a == b for a, b in answers)
            print(f"identical top 10 at rest: {same} of {len(queries) * len(MODES)}")
        finally:
            await stop(second)
            await stop(first)
    finally:
        cluster.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    asyncio.run(measure(parser.parse_args().chunks))


if __name__ == "__main__":
    main()
