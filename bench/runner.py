"""One benchmark run: corpus and vectors once, then per size every backend on a fresh
database and the peer; results.json, report.md and plots are rewritten after each step, so
an interrupted long run still leaves what it measured."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
import tempfile
from dataclasses import asdict, replace
from datetime import datetime
from importlib import metadata
from pathlib import Path

from docfoundry_grpc.interrupts import stop_on_sigterm

from .backend_run import BenchContext, run_backend
from .corpus import (
    BenchDocument,
    embedding_texts,
    generate_documents,
    prefix,
    read_queries,
    read_source,
)
from .floor import measure_query_embedding
from .loadgen import ClientPool
from .options import BenchOptions
from .peer import measure_lancedb
from .plots import plots_available, write_plots
from .report import write_report
from .results import CorpusInfo, RunResults, overheads
from .server import Database, PostgresHost, sqlite_database
from .vectors import CorpusVectors, corpus_vectors, embed_all, open_cached_model, server_model

log = logging.getLogger("bench")
_QUERY_EMBED_SAMPLES = 100


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "docfoundry": metadata.version("docfoundry"),
        "load_before": _load(),
        # Inherited by the server: threading decides the model's speed on a busy CPU.
        "threads": {
            name: os.environ.get(name, "unset")
            for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "EMBEDDING_THREADS")
        },
    }


def _notes(options: BenchOptions, results: RunResults) -> list[str]:
    notes = [
        "Corpus: sentences of the SciFact abstracts recombined into chunks of 300–1,200 "
        f"characters, {options.chunks_per_document} chunks per document, titles and "
        "headings from SciFact titles; deterministic for a seed.",
        f"Vectors: real all-MiniLM-L6-v2 embeddings for up to {options.embed_pool:,} chunks "
        "(cached on disk); any further chunk gets normalise(w·a + (1−w)·b + 0.1·noise) of "
        "two real ones (w in [0.5, 0.9]): realistic geometry for the index, but no "
        "relation to that chunk's text.",
        "Queries: the distinct SciFact queries, walked in order. The server caches query "
        "embeddings (LRU of 2,048), so a query repeats the model cost only on its first "
        "pass; 'fresh queries' is the share of a level's queries never embedded before. "
        "A PostgreSQL server also keeps the packed postings of the terms it has read "
        "decoded (POSTGRES_POSTINGS_CACHE_MB); 'segment cache hits' is the share of a "
        "level's segment lookups that it answered, read from the server's metrics. The "
        "floor's in-process adapter has a cache of its own, warmed by the floor's repeats.",
        "Server defaults: SQLite has 2 reader connections and exact vector search in "
        "numpy; PostgreSQL uses a pool of up to 20 connections and an HNSW index "
        "(m 16, ef_construction 64, ef_search 100). Hybrid uses the server's default "
        "fusion (SEARCH_FUSION). After the load, searches on PostgreSQL wait until the "
        "server has packed the new postings by itself (its compactor runs once writes "
        "pause) and VACUUM (ANALYZE) and a CHECKPOINT have run: the state a server "
        "reaches in time. On both backends the load's writes are flushed to disk (sync) "
        "before anything is timed.",
        "Clients share the machine with the server (and PostgreSQL): on few cores, high "
        "concurrency levels measure contention as much as the service.",
    ]
    if options.smoke:
        notes.append("Smoke configuration: figures show the pipeline works, not speed.")
    if not plots_available():
        notes.append("matplotlib is not installed: no plots.")
    return notes


def _database(
    backend: str, postgres: PostgresHost | None, work: Path
) -> contextlib.AbstractContextManager[Database]:
    if backend == "postgresql" and postgres is not None:
        return postgres.database()
    return sqlite_database(work / "sqlite")


def _write(results: RunResults, run_dir: Path) -> None:
    results.machine["load_after"] = _load()
    results.write_json(run_dir / "results.json")
    write_report(results, run_dir / "report.md", write_plots(results, run_dir))


def run(options: BenchOptions) -> Path:
    """Runs the benchmark; returns the folder holding report.md and results.json."""
    run_dir = options.output / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=False)
    options = replace(options, output=run_dir)
    results = RunResults(
        started=datetime.now().isoformat(timespec="seconds"),
        options={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
        machine=_machine(),
    )
    source = read_source(options.corpus_path)
    queries = read_queries(options.queries_path)
    results.queries = len(queries)
    documents = list(
        generate_documents(
            source,
            max(options.sizes),
            seed=options.seed,
            chunks_per_document=options.chunks_per_document,
        )
    )
    model = open_cached_model(options.cache_path)
    log.info("embedding up to %d corpus texts (cache %s)", options.embed_pool, options.cache_path)
    corpus = corpus_vectors(
        model, embedding_texts(documents), pool_size=options.embed_pool, seed=options.seed
    )
    floor_vectors = embed_all(model, queries[: options.floor_queries], label="queries")
    served = server_model()
    results.machine["embedding_precision"] = served.precision
    results.query_embedding = measure_query_embedding(
        served, queries[: min(_QUERY_EMBED_SAMPLES, options.floor_queries)]
    )
    results.notes = _notes(options, results)
    clients = ClientPool(min(options.client_processes, max(options.concurrency)), queries)
    ctx = BenchContext(options, queries, floor_vectors, clients, served)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="docfoundry-bench-") as tmp,
            contextlib.ExitStack() as stack,
        ):
            postgres = None
            if "postgresql" in options.backends:
                postgres = PostgresHost(options.dsn)
                stack.callback(postgres.close)
                results.machine["postgresql"] = postgres.describe()
            for size in sorted(options.sizes):
                _run_size(ctx, results, size, documents, corpus, postgres, Path(tmp))
    finally:
        clients.close()
        model.close()
    _write(results, run_dir)
    return run_dir


def _run_size(
    ctx: BenchContext,
    results: RunResults,
    size: int,
    documents: list[BenchDocument],
    corpus: CorpusVectors,
    postgres: PostgresHost | None,
    work: Path,
) -> None:
    options = ctx.options
    docs = prefix(documents, size)
    vectors = corpus.vectors[:size]
    real = min(corpus.real, size)
    lengths = [len(c.text) for d in docs for c in d.chunks]
    results.corpora.append(
        CorpusInfo(size, len(docs), real, size - real, sum(lengths) / len(lengths))
    )
    for backend in options.backends:
        postmaster = postgres.postmaster_pid() if backend == "postgresql" and postgres else None
        with _database(backend, postgres, work) as database:
            backend_run = run_backend(
                ctx,
                database,
                docs,
                vectors,
                log_name=f"server-{backend}-{size}.log",
                postmaster=postmaster,
            )
        embed_p50 = results.query_embedding.p50_ms if results.query_embedding else 0.0
        backend_run.overhead = overheads(backend_run, embed_p50)
        results.runs.append(backend_run)
        _write(results, options.output)
    if options.peer:
        log.info("LanceDB on %d chunks", size)
        peer = measure_lancedb(
            docs,
            vectors,
            ctx.queries[: len(ctx.floor_vectors)],
            ctx.floor_vectors,
            k=options.k,
            folder=work / f"lancedb-{size}",
        )
        if peer is not None:
            results.peers.append(peer)
        _write(results, options.output)


def main_run(options: BenchOptions) -> int:
    stop_on_sigterm()  # its servers, client processes and PostgreSQL cluster go with it
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    try:
        run_dir = run(options)
    except KeyboardInterrupt:
        print("stopped; servers and clusters of this run were shut down", file=sys.stderr)
        return 130
    print(run_dir / "report.md")
    return 0
