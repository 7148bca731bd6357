"""results.json → report.md: one table per question the benchmark answers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from .loadgen import RPCS
from .results import ENGINE_MODEL, BackendRun, Latency, RunResults


def _n(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _postgres_line(postgres: object) -> list[str]:
    """The PostgreSQL the run used; nothing for a run without PostgreSQL."""
    if not isinstance(postgres, dict):
        return []
    whose = "the bench's own cluster" if postgres.get("own_cluster") else "the server at --dsn"
    return [
        f"PostgreSQL: {postgres.get('version')} ({whose}), shared_buffers "
        f"{postgres.get('shared_buffers')}.",
        "",
    ]


def _setup(results: RunResults) -> list[str]:
    machine, options = results.machine, results.options
    lines = [
        f"# DocFoundry benchmark, {results.started}",
        "",
        f"Machine: {machine.get('cpus')} CPUs, {machine.get('platform')}, Python "
        f"{machine.get('python')}; load average {machine.get('load_before')} before the run, "
        f"{machine.get('load_after', '–')} after; threads {machine.get('threads')} "
        f"(the server inherits them). Server: DocFoundry "
        f"{machine.get('docfoundry')} (`docfoundry serve`, default settings; the model in "
        f"{machine.get('embedding_precision', 'float32')}).",
        "",
        *_postgres_line(machine.get("postgresql")),
        f"Options: sizes {options['sizes']}, backends {options['backends']}, concurrency "
        f"{options['concurrency']}, {options['requests']} requests per level (time cap "
        f"{options['seconds']} s, {options['warmup']} warm-up requests per caller), k = "
        f"{options['k']}, {options['client_processes']} client processes, seed "
        f"{options['seed']}, {results.queries} distinct queries.",
        "",
    ]
    lines += _table(
        ["chunks", "documents", "real embeddings", "derived vectors", "mean chunk chars"],
        (
            [
                f"{c.size:,}",
                f"{c.documents:,}",
                f"{c.real_vectors:,}",
                f"{c.derived_vectors:,}",
                _n(c.mean_chunk_chars, 0),
            ]
            for c in results.corpora
        ),
    )
    lines += [f"- {note}" for note in results.notes] + [""]
    return lines


def _ingest(runs: list[BackendRun]) -> list[str]:
    lines = [
        "## Ingest",
        "",
        "IndexDocuments with caller-supplied vectors (pre-chunked "
        "documents), one stream, messages built before the clock starts. Where the last "
        "column has a figure, the load ran without a vector index and the server built it "
        "over the stored rows at its next start (`POSTGRES_VECTOR_INDEX=none`, then `hnsw`). "
        "Graph s: on SQLite past `SQLITE_ANN_THRESHOLD`, how long after the load the "
        "server's background graph builds went on (searches were exact meanwhile); its "
        "CPU is in the server CPU column only for the part that overlapped the load.",
        "",
    ]
    lines += _table(
        [
            "backend",
            "chunks",
            "seconds",
            "chunks/s",
            "server CPU s",
            "database CPU s",
            "index build s",
            "graph s",
        ],
        (
            [
                r.backend,
                f"{r.ingest.chunks:,}",
                _n(r.ingest.seconds, 2),
                _n(r.ingest.chunks_per_second, 0),
                _n(r.ingest.server_cpu_seconds, 2),
                _n(r.ingest.database_cpu_seconds, 2),
                _n(r.ingest.index_build_seconds, 1),
                _n(r.ingest.graph_build_seconds, 1),
            ]
            for r in runs
        ),
    )
    lines += [
        "Server-side embedding (chunks without vectors) against the model called "
        "in-process on the same texts in one batch job:",
        "",
    ]
    lines += _table(
        ["backend", "corpus", "chunks", "server chunks/s", "model chunks/s", "ratio"],
        (
            [
                r.backend,
                f"{r.size:,}",
                str(e.chunks),
                _n(e.server_chunks_per_second),
                _n(e.model_chunks_per_second),
                _n(e.ratio, 2),
            ]
            for r in runs
            for e in [r.embedding_ingest]
        ),
    )
    return lines


def _levels(run: BackendRun) -> list[str]:
    head = [
        "rpc",
        "callers",
        "ok",
        "errors",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "fresh queries",
        "segment cache hits",
        "server CPU ms/req",
        "db CPU ms/req",
        "client CPU ms/req",
    ]
    rows = []
    for level in sorted(run.levels, key=lambda lv: (RPCS.index(lv.rpc), lv.concurrency)):
        share, hits = level.fresh_query_share, level.segment_cache_hit_share
        rows.append(
            [
                level.rpc,
                str(level.concurrency),
                str(level.ok),
                str(level.error_count),
                _n(level.throughput_rps),
                _n(level.latency.p50_ms, 2),
                _n(level.latency.p95_ms, 2),
                _n(level.latency.p99_ms, 2),
                "–" if share is None else f"{share:.0%}",
                "–" if hits is None else f"{hits:.0%}",
                _n(level.server_cpu_ms_per_request, 2),
                _n(level.database_cpu_ms_per_request, 2),
                _n(level.client_cpu_ms_per_request, 2),
            ]
        )
    title = f"### {run.backend}, {run.size:,} chunks"
    usage = (
        f"Server process: {_n(run.server_cpu_seconds)} CPU s in all, peak RSS "
        f"{_n(run.server_peak_rss_mb, 0)} MB."
    )
    if run.segment_cache_mb is not None:
        used, capacity = run.segment_cache_mb
        usage += f" Segment cache after the last level: {_n(used, 1)} of {_n(capacity, 0)} MB."
    return [title, "", *_table(head, rows), usage, ""]


def _floor(results: RunResults) -> list[str]:
    embed = results.query_embedding
    lines = [
        "## Floor and overhead (concurrency 1)",
        "",
        "Storage: a second adapter on the same database, in-process, one query at a time, "
        "with analysed terms and query vectors prepared beforehand (hybrid: both legs rank "
        "chunk ids concurrently at the engine's candidate window while the store checks "
        "whether the query has clicks, then the rows of the k fused results). Query "
        f"embedding: the model in-process, one query per call, p50 {_n(_p50(embed), 2)} ms "
        f"(p95 {_n(embed.p95_ms if embed else None, 2)} ms), counted for the share of fresh "
        "queries only. Path: what the RPC cannot be faster than, storage + embedding; for "
        "Hybrid max(full-text leg, embedding + vector leg, click check) + rows, since the "
        "engine embeds while the full-text leg runs. gRPC + service = RPC p50 − path; the next "
        "column is the same with Hybrid's legs one after the other, for a CPU too busy "
        "to overlap them. Engine: the search engine in-process on the same adapter and "
        "model, one fresh query at a time, as the servicer calls it; it splits gRPC + "
        "service into service (engine − path: snippets, fusion, thread hops, and the model "
        "and storage slowing each other through the CPU caches) and gRPC (RPC − engine: "
        "transport, protobuf, the client). The engine runs just after the RPC levels, not "
        "with them, so the split is as steady as the machine: a gRPC figure near zero or "
        "below says the two agree within that noise.",
        "",
    ]
    rows = []
    for run in results.runs:
        floors = {f.operation: f.latency for f in run.floor}
        for o in run.overhead:
            op = {"Fulltext": "fulltext", "Semantic": "vector", "Hybrid": "hybrid"}[o.rpc]
            rows.append(
                [
                    run.backend,
                    f"{run.size:,}",
                    o.rpc,
                    _n(o.rpc_p50_ms, 2),
                    _n(o.storage_p50_ms, 2),
                    _n(floors[op].p95_ms, 2),
                    _n(o.embed_ms, 2),
                    _n(o.path_ms, 2),
                    _n(o.rest_ms, 2),
                    _n(o.serial_rest_ms, 2),
                    _n(o.engine_p50_ms, 2),
                    _n(o.service_ms, 2),
                    _n(o.grpc_ms, 2),
                ]
            )
    head = [
        "backend",
        "chunks",
        "rpc",
        "RPC p50",
        "storage p50",
        "storage p95",
        "embedding",
        "path",
        "gRPC + service",
        "… legs serial",
        "engine",
        "service",
        "gRPC",
    ]
    lines += _table(head, rows)
    inside = [
        f"{run.backend} {run.size:,}: {_n(f.latency.p50_ms, 2)} ms"
        for run in results.runs
        for f in run.floor
        if f.operation == ENGINE_MODEL and f.latency.count
    ]
    bare = [
        f"{run.backend} {run.size:,}: {_n(run.bare_rpc.p50_ms, 2)} ms"
        for run in results.runs
        if run.bare_rpc is not None and run.bare_rpc.count
    ]
    if bare:
        lines += [
            "A bare round trip, grpc.health.v1 Check at one caller (gRPC's Python stack on "
            "both sides and the server's interceptors, no service work), p50: "
            + "; ".join(bare)
            + ". No change to the service can take gRPC + service below it.",
            "",
        ]
    if inside:
        lines += [
            "The model's own p50 inside the engine's Semantic and Hybrid calls, against "
            f"{_n(_p50(embed), 2)} ms called alone: " + "; ".join(inside) + ".",
            "",
        ]
    parts = [
        [
            run.backend,
            f"{run.size:,}",
            f.operation,
            _n(f.latency.p50_ms, 2),
            _n(f.latency.p95_ms, 2),
        ]
        for run in results.runs
        for f in run.floor
        if f.operation.startswith("hybrid:")
    ]
    if parts:
        lines += ["Hybrid's storage parts, alone:", ""]
        lines += _table(["backend", "chunks", "part", "p50 ms", "p95 ms"], parts)
    return lines


def _recall(results: RunResults) -> list[str]:
    rows = [
        [
            run.backend,
            f"{run.size:,}",
            r.index,
            str(r.ef_search) if r.ef_search else "–",
            str(r.limit),
            _n(r.recall, 3),
            _n(r.latency.p50_ms, 2),
            _n(r.latency.p95_ms, 2),
        ]
        for run in results.runs
        for r in run.recall
    ]
    if not rows:
        return []
    lines = [
        "## Vector index recall",
        "",
        "Each approximate index against exact cosine search over the same stored vectors, "
        "for the floor's queries: recall is the share of the exact `limit` nearest chunks "
        "returned; latency is one id-only ranking. PostgreSQL: the adapter's statement over "
        "the HNSW index of each precision (full: float32 vectors; half: halfvec casts, "
        "candidates re-scored in float32), both built over the same rows, with "
        "hnsw.ef_search at max(breadth, limit), as the adapter widens it. SQLite: the "
        "adapter itself, with its graph (usearch, half precision, re-scored in float32) "
        "and with the exact scan.",
        "",
    ]
    head = ["backend", "chunks", "index", "breadth", "limit", "recall", "p50 ms", "p95 ms"]
    return lines + _table(head, rows)


def _p50(latency: Latency | None) -> float | None:
    return latency.p50_ms if latency else None


def _peers(results: RunResults) -> list[str]:
    if not results.peers:
        why = "LanceDB not installed" if results.options.get("peer", True) else "--no-peer"
        return ["## Peer", "", f"{why}: comparison skipped.", ""]
    lines = [
        "## Peer: LanceDB, in-process",
        "",
        "Same texts (title, heading and text, as the "
        "service indexes them) and vectors; one query at a time; ms. Storage: the "
        "backend's adapter in-process (the floor). RPC: Fulltext, Semantic and Hybrid "
        "through gRPC at one caller on the same queries, the query vector sent with "
        "Semantic and Hybrid as LanceDB is given it, so the server embeds nothing.",
        "",
    ]
    head = [
        "chunks",
        "build s",
        "vector search",
        "operation",
        "LanceDB p50",
        "LanceDB p95",
        *[f"{r.backend} storage p50" for r in results.runs if r.size == results.runs[0].size],
        *[f"{r.backend} RPC p50" for r in results.runs if r.size == results.runs[0].size],
    ]
    rows = []
    for peer in results.peers:
        runs = [r for r in results.runs if r.size == peer.size]
        for op, latency in peer.operations.items():
            floors = [{f.operation: f.latency for f in r.floor}[op].p50_ms for r in runs]
            rpcs = [_p50(r.rpc_given_vectors.get(op)) for r in runs]
            rows.append(
                [
                    f"{peer.size:,}",
                    _n(peer.build_seconds, 2),
                    peer.vector_index,
                    op,
                    _n(latency.p50_ms, 2),
                    _n(latency.p95_ms, 2),
                    *[_n(f, 2) for f in floors],
                    *[_n(r, 2) for r in rpcs],
                ]
            )
    return lines + _table(head, rows)


def write_report(results: RunResults, path: Path, plots: Sequence[str]) -> None:
    lines = _setup(results)
    if results.runs:
        lines += _ingest(results.runs)
        lines += [
            "## Search through gRPC",
            "",
            "Closed loop from separate client processes; latency as the client sees it.",
            "",
        ]
        for run in results.runs:
            lines += _levels(run)
        lines += _floor(results)
        lines += _recall(results)
    lines += _peers(results)
    if plots:
        lines += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    path.write_text("\n".join(lines))
