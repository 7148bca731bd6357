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
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import grpc

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_grpc.interrupts import stop_on_sigterm

from .corpus import read_queries
from .fresh import corpus_requests, fresh_server
from .options import DEFAULT_CACHE_DIR, DEFAULT_SOURCE
from .overload import env_pair
from .results import Latency

log = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.0


def phase(latencies: Sequence[float]) -> dict[str, float]:
    """The bench's latency summary of one phase (ms), with its longest call."""
    ms = [seconds * 1000 for seconds in latencies]
    return {**asdict(Latency.of(ms)), "max_ms": max(ms)}


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
        stub = pb_grpc.SearchServiceStub(channel)
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
        stub = pb_grpc.IndexServiceStub(channel)
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
    idle = phase(await fulltext_loop(target, queries, until=until, interval=interval))
    ingesting = asyncio.ensure_future(ingest(target, content))
    busy = phase(await fulltext_loop(target, queries, until=ingesting, interval=interval))
    seconds = await ingesting
    ratio = busy["p99_ms"] / idle["p99_ms"]
    return {
        "idle": idle,
        "during_ingest": busy,
        "ingest_seconds": seconds,
        "p99_ratio": ratio,
        "passed": ratio <= TARGET_RATIO,
    }


def _line(name: str, phase: object) -> str:
    assert isinstance(phase, dict)
    return (
        f"{name}: Fulltext p50 {phase['p50_ms']:.2f} ms, p99 {phase['p99_ms']:.2f} ms, "
        f"max {phase['max_ms']:.1f} ms ({phase['count']:.0f} calls)"
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
        type=env_pair,
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
    env.update(args.server_env)
    print(
        f"stall: {args.backend}, {args.chunks} chunks indexed, a {len(content.encode()):,}-byte "
        f"Markdown document, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    requests = corpus_requests(
        DEFAULT_SOURCE,
        args.chunks,
        cache_dir=args.cache_dir,
        embed_pool=min(args.chunks, 2000),
        seed=1,
    )
    with fresh_server(args.backend, env, name="docfoundry-stall") as fresh:
        fresh.load(requests)
        interval = 1 / args.rate
        target = fresh.server.target
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
