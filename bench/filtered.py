"""Filtered search through a real server: hits returned, recall against exact filtered search,
and latency against the unfiltered query of the same mode, measured in one run.

    python -m bench.filtered --size 100000 --backends sqlite,postgresql

Every document of the bench corpus gets `bucket` = its number mod 100, so a filter on
`bucket < 10` admits 10% of the chunks and `bucket == 0` 1%. Each query is sent with its
vector (embedded once, in-process), so latency is the search's, not the model's. Recall is
the semantic hits' overlap with the exact 10 nearest among the chunks the filter admits
(numpy over the same vectors); full-text ranking is exact on both backends, so for it the
check is that it returns k hits (or every admitted chunk holding a query term, when fewer
exist) and that all match. Writes report.md and results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_grpc.interrupts import stop_on_sigterm
from docfoundry_grpc.text import analyze, chunk_tokens

from .corpus import (
    BenchDocument,
    chunk_count,
    embedding_texts,
    generate_documents,
    prefix,
    read_queries,
    read_source,
)
from .ingest import index_requests, send_documents
from .options import DEFAULT_SOURCE
from .server import Database, PostgresHost, ServerProcess, settle, sqlite_database
from .vectors import corpus_vectors, open_cached_model

F32 = npt.NDArray[np.float32]
K = 10
MODES = ("Fulltext", "Semantic", "Hybrid")
FILTERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "10%": {"range": {"field": "bucket", "lt": 10}},
    "1%": {"equals": {"field": "bucket", "value": {"number_value": 0}}},
}


def bucket(document_number: int) -> int:
    return document_number % 100


def admitted(name: str, document_number: int) -> bool:
    """The reference for FILTERS, written from their meaning."""
    return (
        name == "none"
        or (name == "10%" and bucket(document_number) < 10)
        or (name == "1%" and bucket(document_number) == 0)
    )


@dataclass(frozen=True)
class Cell:
    backend: str
    mode: str
    filter: str
    chunk_share: float
    p50_ms: float
    p95_ms: float
    ratio_to_unfiltered: float
    full_pages: float  # share of queries answered with k hits
    all_match: bool  # every hit satisfied the filter
    recall_at_10: float | None  # semantic only


def with_metadata(requests: list[pb.IndexDocumentsRequest]) -> list[pb.IndexDocumentsRequest]:
    for number, request in enumerate(requests):
        request.document.metadata["bucket"].number_value = bucket(number)
    return requests


def exact_nearest(
    vectors: F32, rows_admitted: npt.NDArray[np.bool_], query: F32, k: int
) -> list[int]:
    """Row numbers of the exact k nearest admitted rows (cosine; vectors are unit length)."""
    scores = vectors @ query
    scores[~rows_admitted] = -np.inf
    top = np.argpartition(-scores, k)[:k]
    return [int(r) for r in top[np.argsort(-scores[top])]]


async def measure_backend(
    database: Database,
    documents: list[BenchDocument],
    vectors: F32,
    queries: Sequence[str],
    query_vectors: F32,
    log_dir: Path,
) -> list[Cell]:
    server = ServerProcess(database, log_path=log_dir / f"server-{database.backend}.log")
    try:
        server.wait_serving()
        requests = with_metadata(index_requests(documents, vectors))
        seconds = await send_documents(server.target, requests)
        print(f"{database.backend}: loaded {len(vectors)} chunks in {seconds:.0f} s", flush=True)
        if database.backend == "postgresql":
            await asyncio.to_thread(settle, database)
        return await _measure(
            server.target, database.backend, documents, vectors, queries, query_vectors
        )
    finally:
        server.stop()


async def _measure(
    target: str,
    backend: str,
    documents: list[BenchDocument],
    vectors: F32,
    queries: Sequence[str],
    query_vectors: F32,
) -> list[Cell]:
    numbers = np.repeat(np.arange(len(documents)), [len(d.chunks) for d in documents])
    number_of_path = {d.path: n for n, d in enumerate(documents)}
    postings = _postings(documents)
    query_terms = [[postings.get(t, _NONE) for t in analyze(q)] for q in queries]

    def _matching(terms: list[npt.NDArray[np.int64]], rows: npt.NDArray[np.bool_]) -> int:
        """Admitted chunks holding any of the query's terms: what full-text can find."""
        found = np.unique(np.concatenate([_NONE, *terms]))
        return int(rows[found].sum())

    cells: list[Cell] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.SearchServiceStub(channel)
        for mode in MODES:
            unfiltered_p50 = 0.0
            for name, condition in FILTERS.items():
                rows = np.fromiter((admitted(name, int(n)) for n in numbers), bool, len(numbers))
                latencies, full, match, recalls = [], 0, True, []
                for text, vector, terms in zip(queries, query_vectors, query_terms, strict=True):
                    request = _request(mode, text, vector, condition)
                    call = getattr(stub, mode)
                    await call(request)  # warm: caches, plans
                    started = time.perf_counter()
                    response = await call(request)
                    latencies.append((time.perf_counter() - started) * 1000)
                    hits = list(response.hits)
                    # k hits, or every admitted chunk there is to find when fewer exist.
                    findable = len(numbers) if mode != "Fulltext" else _matching(terms, rows)
                    full += len(hits) == min(K, int(findable))
                    match &= all(admitted(name, number_of_path[h.document_path]) for h in hits)
                    if mode == "Semantic":
                        exact = {r + 1 for r in exact_nearest(vectors, rows, vector, K)}
                        recalls.append(len(exact & {h.chunk_id for h in hits}) / K)
                p50 = statistics.median(latencies)
                unfiltered_p50 = p50 if name == "none" else unfiltered_p50
                cells.append(
                    Cell(
                        backend,
                        mode,
                        name,
                        float(rows.mean()),
                        p50,
                        float(np.percentile(latencies, 95)),
                        p50 / unfiltered_p50,
                        full / len(queries),
                        match,
                        statistics.mean(recalls) if recalls else None,
                    )
                )
                print(_row(cells[-1]), flush=True)
    return cells


_NONE = np.zeros(0, dtype=np.int64)


def _postings(documents: list[BenchDocument]) -> dict[str, npt.NDArray[np.int64]]:
    """Chunk rows by index term, from the text analysis both backends index with."""
    rows: dict[str, list[int]] = {}
    row = 0
    for document in documents:
        for chunk in document.chunks:
            for term in set(chunk_tokens(document.title, chunk.heading, chunk.text)):
                rows.setdefault(term, []).append(row)
            row += 1
    return {term: np.asarray(found, dtype=np.int64) for term, found in rows.items()}


def _request(mode: str, text: str, vector: F32, condition: dict[str, Any] | None) -> Any:
    from google.protobuf import json_format

    request = getattr(pb, f"{mode}Request")(q=text, k=K)
    if mode != "Fulltext":
        request.query_vector.extend(vector.tolist())
    if condition is not None:
        request.filter.CopyFrom(json_format.ParseDict(condition, pb.Filter()))
    return request


HEADER = (
    "| backend | mode | filter | chunks admitted | p50 ms | p95 ms | p50 / unfiltered "
    "| k hits | all match | recall@10 |\n|---|---|---|---:|---:|---:|---:|---:|---|---:|"
)


def _row(cell: Cell) -> str:
    recall = "" if cell.recall_at_10 is None else f"{cell.recall_at_10:.3f}"
    return (
        f"| {cell.backend} | {cell.mode} | {cell.filter} | {cell.chunk_share:.1%} "
        f"| {cell.p50_ms:.2f} | {cell.p95_ms:.2f} | {cell.ratio_to_unfiltered:.2f} "
        f"| {cell.full_pages:.0%} | {'yes' if cell.all_match else 'NO'} | {recall} |"
    )


@contextlib.contextmanager
def _database(backend: str, work: Path, host: PostgresHost | None) -> Iterator[Database]:
    if backend == "sqlite":
        with sqlite_database(work) as database:
            yield database
    else:
        assert host is not None
        with host.database() as database:
            yield database


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.filtered", description=__doc__)
    parser.add_argument("--size", type=int, default=100_000, help="chunks (default %(default)s)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--queries", type=int, default=200, help="queries per cell")
    parser.add_argument(
        "--embed-pool",
        type=int,
        default=5000,
        help="chunks embedded for real (default %(default)s)",
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="report folder")
    args = parser.parse_args(argv)
    stop_on_sigterm()  # its servers and PostgreSQL cluster go with it
    out = args.out or Path("bench/results") / f"filtered-{datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    source = read_source(args.source / "corpus.jsonl")
    documents = prefix(
        list(generate_documents(source, args.size, seed=args.seed, chunks_per_document=8)),
        args.size,
    )
    model = open_cached_model(Path.home() / ".cache" / "docfoundry" / "bench-embeddings.sqlite")
    corpus = corpus_vectors(
        model, embedding_texts(documents), pool_size=args.embed_pool, seed=args.seed
    )
    queries = read_queries(args.source / "queries.jsonl")[: args.queries]
    query_vectors = model.embed(list(queries))
    backends = args.backends.split(",")
    host = PostgresHost(None) if "postgresql" in backends else None
    cells: list[Cell] = []
    print(HEADER, flush=True)
    try:
        for backend in backends:
            with _database(backend, out, host) as database:
                cells += asyncio.run(
                    measure_backend(
                        database, documents, corpus.vectors, queries, query_vectors, out
                    )
                )
    finally:
        if host is not None:
            host.close()
    report = [
        f"# Filtered search, {chunk_count(documents):,} chunks",
        "",
        f"{len(queries)} SciFact queries per cell, one caller, k = {K}; vectors: "
        f"{corpus.real:,} real embeddings, the rest derived (see bench/README.md).",
        "",
        HEADER,
        *(_row(c) for c in cells),
    ]
    (out / "report.md").write_text("\n".join(report) + "\n")
    (out / "results.json").write_text(json.dumps([asdict(c) for c in cells], indent=2))
    print(f"wrote {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
