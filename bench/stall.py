"""`python -m bench.stall`: does ingesting a large document stall other callers?

One caller sends Fulltext at a steady rate (50 a second), first on an idle server, then
while a large Markdown document (2 MB by default) is indexed through IndexDocuments, the
server embedding it with its model. Work that runs on the server's event loop (chunking,
tokenising, index updates) delays every call queued behind it; work in threads and
processes does not. The target:
Fulltext p99 during the ingest at most twice its idle p99. Loopback only; the server, its
database and any PostgreSQL cluster go when the run ends, however it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import grpc

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_grpc.interrupts import stop_on_sigterm

from .corpus import embedding_texts, generate_documents, prefix, read_queries, read_source
from .ingest import index_requests, send_documents
from .options import DEFAULT_CACHE_DIR, DEFAULT_SOURCE
from .server import PostgresHost, ServerProcess, sqlite_database
from .vectors import corpus_vectors, open_cached_model

log = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.0


@dataclass(frozen=True)
class Phase:
    calls: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, latencies: Sequence[float]) -> Phase:
        ordered = sorted(latencies)

        def at(quantile: float) -> float:
            return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000

        return cls(len(ordered), at(0.5), at(0.99), ordered[-1] * 1000)


def markdown_document(size: int) -> str:
    """`size` bytes of real Markdown: this project's docs, repeated, with unique headings."""
    parts = [p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))] + [
        (ROOT / "README.md").read_text()
    ]
    text: list[str] = []
    length = 0
    while length < size:
        text.append(f"\n\n# Copy {len(text)}\n\n" + parts[len(text) % len(parts)])
        length += len(text[-1])
    return "".join(text)[:size]


async def fulltext_loop(
    target: str,
    queries: Sequence[str],
    *,
    until: asyncio.Future[float] | float,
    interval: float,
) -> list[float]:
    """Fulltext every `interval` seconds until `until` (a time.monotonic() or a future),
    one call at a time. Each latency counts from when the call was due, not from when it
    could be sent: a stall of a second then shows in every call it held up, as users
    arriving at that rate would see it, instead of in the one call that waited through
    it (a caller that only sends after each answer hides stalls: coordinated omission)."""
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.SearchServiceStub(channel)  # type: ignore[no-untyped-call]
        due = time.perf_counter()
        n = 0
        while not (until.done() if isinstance(until, asyncio.Future) else time.monotonic() > until):
            pause = due - time.perf_counter()
            if pause > 0:
                await asyncio.sleep(pause)
            await stub.Fulltext(pb.FulltextRequest(q=queries[n % len(queries)], k=10), timeout=60)
            latencies.append(time.perf_counter() - due)
            due += interval
            n += 1
    return latencies


async def ingest(target: str, content: str) -> float:
    started = time.monotonic()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.IndexServiceStub(channel)  # type: ignore[no-untyped-call]
        document = pb.Document(path="stall/large.md", title="Large", content=content)
        async for result in stub.IndexDocuments(
            iter([pb.IndexDocumentsRequest(document=document)])
        ):
            if result.outcome != pb.IndexDocumentsResponse.OUTCOME_CREATED:
                raise RuntimeError(f"the large document was not stored: {result}")
    return time.monotonic() - started


async def measure(
    target: str, queries: Sequence[str], content: str, idle_seconds: float, interval: float
) -> dict[str, object]:
    warm_up = time.monotonic() + 1.0
    await fulltext_loop(target, queries, until=warm_up, interval=interval)
    until = time.monotonic() + idle_seconds
    idle = Phase.of(await fulltext_loop(target, queries, until=until, interval=interval))
    ingesting = asyncio.ensure_future(ingest(target, content))
    busy = Phase.of(await fulltext_loop(target, queries, until=ingesting, interval=interval))
    seconds = await ingesting
    ratio = busy.p99_ms / idle.p99_ms
    return {
        "idle": asdict(idle),
        "during_ingest": asdict(busy),
        "ingest_seconds": seconds,
        "p99_ratio": ratio,
        "passed": ratio <= TARGET_RATIO,
    }


@contextlib.contextmanager
def loaded_server(backend: str, chunks: int, cache_dir: Path, env: dict[str, str]) -> Iterator[str]:
    source = read_source(DEFAULT_SOURCE / "corpus.jsonl")
    documents = prefix(
        list(generate_documents(source, chunks, seed=1, chunks_per_document=8)), chunks
    )
    model = open_cached_model(cache_dir / "bench-embeddings.sqlite")
    try:
        texts = embedding_texts(documents)
        vectors = corpus_vectors(model, texts, pool_size=min(chunks, 2000), seed=1)
    finally:
        model.close()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="docfoundry-stall-")))
        if backend == "postgresql":
            postgres = PostgresHost(None)
            stack.callback(postgres.close)
            database = stack.enter_context(postgres.database())
        else:
            database = stack.enter_context(sqlite_database(work / "sqlite"))
        database = replace(database, env={**database.env, **env})
        server = ServerProcess(database, log_path=work / "server.log")
        stack.callback(server.stop)
        server.wait_serving()
        asyncio.run(send_documents(server.target, index_requests(documents, vectors.vectors)))
        yield server.target


def _line(name: str, phase: object) -> str:
    assert isinstance(phase, dict)
    return (
        f"{name}: Fulltext p50 {phase['p50_ms']:.2f} ms, p99 {phase['p99_ms']:.2f} ms, "
        f"max {phase['max_ms']:.1f} ms ({phase['calls']} calls)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stall", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--document-bytes", type=int, default=2_000_000)
    parser.add_argument("--chunks", type=int, default=2000, help="corpus already indexed")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--rate", type=float, default=50.0, help="Fulltext calls per second from the caller"
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra server environment variable (repeatable)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    stop_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    queries = read_queries(DEFAULT_SOURCE / "queries.jsonl")
    content = markdown_document(args.document_bytes)
    env = {"MAX_DOCUMENT_BYTES": str(len(content.encode()) + 1), "LOG_LEVEL": "WARNING"}
    env.update(pair.split("=", 1) for pair in args.server_env)
    print(
        f"stall: {args.backend}, {args.chunks} chunks indexed, a {len(content.encode()):,}-byte "
        f"Markdown document, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    with loaded_server(args.backend, args.chunks, args.cache_dir, env) as target:
        interval = 1 / args.rate
        report = asyncio.run(measure(target, queries, content, args.idle_seconds, interval))
    print(_line("idle", report["idle"]))
    print(
        _line("during ingest", report["during_ingest"]),
        f"(ingest {report['ingest_seconds']:.1f} s)",
    )
    verdict = "PASS" if report["passed"] else "MISS"
    print(f"[{verdict}] p99 during ingest <= {TARGET_RATIO:g}x idle: {report['p99_ratio']:.2f}x")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
