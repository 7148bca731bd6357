"""Everything measured against one server on one fresh database: ingest, the server-side
embedding sample, the storage floor, then every (concurrency, RPC) level.

Levels run concurrency by concurrency, each RPC in turn, so at one caller both Semantic
and Hybrid meet queries the server has never embedded; later levels walk on through the
query list and repeat it only once every query has been seen, from then on answered by the
server's query-vector cache.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from docfoundry_grpc.embedding import Embedder

from .corpus import BenchDocument, chunk_count
from .floor import (
    hybrid_window,
    measure_bare_rpc,
    measure_engine,
    measure_floor,
    measure_rpcs_given_vectors,
)
from .ingest import delete_documents, index_requests, sample_documents, send_documents, time_model
from .loadgen import RPCS, ClientPool, LevelOutcome
from .options import BenchOptions
from .recall import measure_recall, measure_sqlite_recall
from .results import (
    BackendRun,
    EmbeddingIngestResult,
    IngestResult,
    Latency,
    LevelResult,
)
from .server import Database, ServerProcess, cpu_seconds, settle, without_vector_index

F32 = npt.NDArray[np.float32]
log = logging.getLogger("bench")
INDEX_BUILD_TIMEOUT = 4 * 3600.0


@dataclass
class _Usage:
    """CPU seconds of the server and, when this run owns it, of PostgreSQL."""

    server: ServerProcess
    postmaster: int | None

    def read(self) -> tuple[float, float | None]:
        database = None
        if self.postmaster is not None:
            database = cpu_seconds(self.postmaster, with_children=True)
        return self.server.cpu_seconds(), database

    def since(self, before: tuple[float, float | None]) -> tuple[float, float | None]:
        now = self.read()
        database = None
        if now[1] is not None and before[1] is not None:
            database = now[1] - before[1]
        return now[0] - before[0], database


@dataclass
class BenchContext:
    """What every backend run shares: options, queries, clients, the model."""

    options: BenchOptions
    queries: list[str]
    floor_vectors: F32
    clients: ClientPool
    model: Embedder


def _ingest(
    ctx: BenchContext,
    server: ServerProcess,
    usage: _Usage,
    documents: Sequence[BenchDocument],
    vectors: F32,
) -> IngestResult:
    requests = index_requests(documents, vectors)
    before = usage.read()
    seconds = asyncio.run(send_documents(server.target, requests))
    server_cpu, database_cpu = usage.since(before)
    chunks = chunk_count(list(documents))
    return IngestResult(len(documents), chunks, seconds, chunks / seconds, server_cpu, database_cpu)


def _embedding_ingest(
    ctx: BenchContext, server: ServerProcess, documents: Sequence[BenchDocument]
) -> EmbeddingIngestResult:
    sample = sample_documents(documents, ctx.options.embed_sample)
    chunks = chunk_count(sample)
    server_seconds = asyncio.run(send_documents(server.target, index_requests(sample, None)))
    asyncio.run(delete_documents(server.target, [d.path for d in sample]))
    model_seconds = time_model(ctx.model, sample)
    server_rate, model_rate = chunks / server_seconds, chunks / model_seconds
    return EmbeddingIngestResult(
        chunks, server_seconds, server_rate, model_seconds, model_rate, server_rate / model_rate
    )


def _level_result(
    rpc: str,
    concurrency: int,
    outcome: LevelOutcome,
    fresh: float | None,
    cpu: tuple[float, float | None],
    cache_hits: float | None,
) -> LevelResult:
    ok = len(outcome.latencies_ms)
    # CPU is read around the timed phase, which also holds the requests that failed.
    per = 1000 / max(ok + outcome.errors.total() - _warmup_errors(outcome), 1)
    return LevelResult(
        rpc=rpc,
        concurrency=concurrency,
        ok=ok,
        error_count=outcome.errors.total(),
        errors=dict(outcome.errors),
        seconds=outcome.wall_seconds,
        throughput_rps=ok / outcome.wall_seconds,
        latency=Latency.of(outcome.latencies_ms),
        fresh_query_share=fresh,
        segment_cache_hit_share=cache_hits,
        server_cpu_ms_per_request=cpu[0] * per,
        database_cpu_ms_per_request=None if cpu[1] is None else cpu[1] * per,
        client_cpu_ms_per_request=outcome.client_cpu_seconds * per,
    )


def _warmup_errors(outcome: LevelOutcome) -> int:
    return sum(n for code, n in outcome.errors.items() if code.startswith("warmup "))


def _measure_level(
    ctx: BenchContext,
    server: ServerProcess,
    usage: _Usage,
    rpc: str,
    concurrency: int,
    offset: int,
) -> tuple[LevelOutcome, tuple[float, float | None], float | None]:
    """One level, with the CPU used between the end of its warm-up and its last answer, and
    the share of segment lookups (warm-up included) its server's cache answered."""
    options = ctx.options
    lookups_before = server.segment_cache_lookups()
    before: list[tuple[float, float | None]] = []
    outcome = ctx.clients.run_level(
        server.target,
        rpc,
        concurrency=concurrency,
        requests=options.requests,
        seconds=options.seconds,
        warmup=options.warmup,
        k=options.k,
        query_offset=offset,
        on_start=lambda: before.append(usage.read()),
    )
    server.check_alive()
    cpu = usage.since(before[0])
    return outcome, cpu, _hit_share(lookups_before, server.segment_cache_lookups())


def _hit_share(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> float | None:
    if before is None or after is None:
        return None
    hits, misses = after[0] - before[0], after[1] - before[1]
    return hits / (hits + misses) if hits + misses else None


def _levels(ctx: BenchContext, server: ServerProcess, usage: _Usage) -> list[LevelResult]:
    embedded: set[str] = set()  # queries the server's LRU holds (it has room for all)
    cursors = {"Fulltext": 0, "embedding": 0}
    out = []
    for concurrency in ctx.options.concurrency:
        for rpc in RPCS:
            cursor = "Fulltext" if rpc == "Fulltext" else "embedding"
            outcome, cpu, cache_hits = _measure_level(
                ctx, server, usage, rpc, concurrency, cursors[cursor]
            )
            cursors[cursor] = max(outcome.query_numbers, default=cursors[cursor] - 1) + 1
            fresh = None
            if rpc != "Fulltext":
                texts = [ctx.queries[n % len(ctx.queries)] for n in outcome.query_numbers]
                new = set(texts) - embedded
                fresh = len(new) / max(len(texts), 1)
                embedded |= new
            result = _level_result(rpc, concurrency, outcome, fresh, cpu, cache_hits)
            log.info(
                "%s x%d: %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %s",
                rpc,
                concurrency,
                result.throughput_rps,
                result.latency.p50_ms,
                result.latency.p99_ms,
                result.errors or 0,
            )
            out.append(result)
    return out


def run_backend(
    ctx: BenchContext,
    database: Database,
    documents: Sequence[BenchDocument],
    vectors: F32,
    *,
    log_name: str,
    postmaster: int | None,
) -> BackendRun:
    size = chunk_count(list(documents))
    index_after_load = (
        database.backend == "postgresql" and size >= ctx.options.index_after_load_from
    )
    loading = without_vector_index(database) if index_after_load else database
    server = ServerProcess(loading, log_path=ctx.options.output / log_name)
    try:
        server.wait_serving()
        log.info("%s, %d chunks: server up at %s, ingesting", database.backend, size, server.target)
        ingest = _ingest(ctx, server, _Usage(server, postmaster), documents, vectors)
        log.info("ingest: %.0f chunks/s", ingest.chunks_per_second)
        if database.backend == "sqlite":
            graphs = server.wait_vector_graphs()
            ingest = replace(ingest, graph_build_seconds=graphs)
            if graphs is not None:
                log.info("the server's vector graph was ready %.0f s after the load", graphs)
        if index_after_load:
            server.stop()
            started = time.perf_counter()
            server = ServerProcess(database, log_path=ctx.options.output / log_name)
            server.wait_serving(timeout=INDEX_BUILD_TIMEOUT)
            build = time.perf_counter() - started
            ingest = replace(ingest, index_build_seconds=build)
            log.info("vector index built by the server's start in %.0f s", build)
        usage = _Usage(server, postmaster)
        embedding = _embedding_ingest(ctx, server, documents)
        log.info(
            "server-side embedding: %.1f chunks/s (%.2f of the model in-process)",
            embedding.server_chunks_per_second,
            embedding.ratio,
        )
        if database.backend == "postgresql":
            started = time.perf_counter()
            packing = settle(database)
            log.info(
                "postings packed by the server %.1f s after the writes; VACUUM (ANALYZE) "
                "and CHECKPOINT %.1f s",
                packing,
                time.perf_counter() - started - packing,
            )
        os.sync()  # the load's dirty pages reach the disk before anything is timed
        floor_queries = ctx.queries[: len(ctx.floor_vectors)]
        floor = asyncio.run(
            measure_floor(
                database.config,
                floor_queries,
                ctx.floor_vectors,
                k=ctx.options.k,
                dimension=ctx.model.dimension,
            )
        )
        run = BackendRun(database.backend, size, ingest, embedding, floor)
        measure = measure_recall if database.backend == "postgresql" else measure_sqlite_recall
        run.recall = asyncio.run(
            measure(
                database.config,
                ctx.floor_vectors,
                limits=(ctx.options.k, hybrid_window(ctx.options.k)),
                dimension=ctx.model.dimension,
            )
        )
        run.levels = _levels(ctx, server, usage)
        run.bare_rpc = asyncio.run(measure_bare_rpc(server.target))
        run.server_cpu_seconds = server.cpu_seconds()
        run.server_peak_rss_mb = server.peak_rss_mb()
        cache = server.segment_cache_bytes()
        run.segment_cache_mb = None if cache is None else (cache[0] / 2**20, cache[1] / 2**20)
        # After the totals above, so that they stay those of the levels and the round trip.
        run.rpc_given_vectors = asyncio.run(
            measure_rpcs_given_vectors(
                server.target, floor_queries, ctx.floor_vectors, k=ctx.options.k
            )
        )
        run.floor += asyncio.run(
            measure_engine(database.config, floor_queries, ctx.model, k=ctx.options.k)
        )
        return run
    finally:
        server.stop()
