"""What a run measured, as plain dataclasses: written as results.json and read by the report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FULLTEXT_LEG = "hybrid: fulltext leg"
VECTOR_LEG = "hybrid: vector leg"
CLICKS = "hybrid: click check"
ROWS = "hybrid: rows of the results"
ENGINE = "engine: "  # + the mode: the search engine in-process, its own embedding included
ENGINE_MODEL = "engine: the model inside"


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, samples_ms: list[float]) -> Latency:
        if not samples_ms:
            return cls(0, float("nan"), float("nan"), float("nan"), float("nan"))
        values = np.asarray(samples_ms, dtype=np.float64)
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return cls(len(values), float(p50), float(p95), float(p99), float(values.mean()))


@dataclass(frozen=True)
class IngestResult:
    """Bulk load through IndexDocuments with caller-supplied vectors."""

    documents: int
    chunks: int
    seconds: float
    chunks_per_second: float
    server_cpu_seconds: float
    database_cpu_seconds: float | None
    # Set when the load ran without a vector index: the server's start that built it.
    index_build_seconds: float | None = None
    # SQLite: seconds from the end of the load until the server's graph builds finished.
    graph_build_seconds: float | None = None


@dataclass(frozen=True)
class EmbeddingIngestResult:
    """The same RPC with the server embedding, against the model called in-process."""

    chunks: int
    server_seconds: float
    server_chunks_per_second: float
    model_seconds: float
    model_chunks_per_second: float
    ratio: float  # server / model: what the service keeps of the model's throughput


@dataclass(frozen=True)
class LevelResult:
    rpc: str
    concurrency: int
    ok: int
    error_count: int
    errors: dict[str, int]
    seconds: float
    throughput_rps: float
    latency: Latency
    # Share of this level's queries (warm-up included) the server had not embedded before;
    # None for Fulltext, which never embeds.
    fresh_query_share: float | None
    # Share of this level's packed posting segments (warm-up included) that the server
    # found decoded in its cache; None where it keeps no such cache (SQLite) or for Semantic.
    segment_cache_hit_share: float | None
    server_cpu_ms_per_request: float
    database_cpu_ms_per_request: float | None
    client_cpu_ms_per_request: float


@dataclass(frozen=True)
class FloorResult:
    """The storage adapter called in-process, one query at a time."""

    # "fulltext", "vector" or "hybrid" (both legs and the click check), Hybrid's parts,
    # and the engine's modes
    operation: str
    latency: Latency


@dataclass(frozen=True)
class RecallResult:
    """An approximate vector index at one search breadth against exact search."""

    index: str  # "hnsw full", "hnsw half" (PostgreSQL), "usearch f16", "exact scan" (SQLite)
    ef_search: int  # the walk's breadth (0: no walk)
    limit: int
    recall: float  # share of the exact `limit` nearest chunks returned
    latency: Latency  # one id-only ranking at this breadth and limit


@dataclass(frozen=True)
class Overhead:
    """RPC p50 at concurrency 1 against its critical path below the service: storage and,
    for fresh queries, the model. What remains is gRPC, protobuf, validation, snippets,
    fusion and the event loop: rest = rpc − path. Hybrid's legs overlap only while the CPU
    has room for both; `serial_rest_ms` is the rest if they had run one after the other.
    The engine in-process splits the rest: engine − path is the service without gRPC
    (snippets, fusion, thread hops, and the model and storage slowed by each other's use of
    the CPU caches), rpc − engine is gRPC and protobuf."""

    rpc: str
    rpc_p50_ms: float
    storage_p50_ms: float
    embed_ms: float
    path_ms: float
    rest_ms: float
    serial_rest_ms: float
    engine_p50_ms: float | None = None

    @property
    def service_ms(self) -> float | None:
        return None if self.engine_p50_ms is None else self.engine_p50_ms - self.path_ms

    @property
    def grpc_ms(self) -> float | None:
        return None if self.engine_p50_ms is None else self.rpc_p50_ms - self.engine_p50_ms


@dataclass
class BackendRun:
    backend: str
    size: int
    ingest: IngestResult
    embedding_ingest: EmbeddingIngestResult
    floor: list[FloorResult]
    recall: list[RecallResult] = field(default_factory=list)
    levels: list[LevelResult] = field(default_factory=list)
    overhead: list[Overhead] = field(default_factory=list)
    server_cpu_seconds: float = 0.0
    server_peak_rss_mb: float = 0.0
    # grpc.health.v1 Check at one caller: the round trip without service work.
    bare_rpc: Latency | None = None
    # The peer's operations as RPCs at one caller, with the peer's query vectors sent
    # (Fulltext, Semantic and Hybrid by the peer's names): the like-for-like comparison.
    rpc_given_vectors: dict[str, Latency] = field(default_factory=dict)
    # (used, capacity) of the server's full-text segment cache after the last level, in
    # MB; None where it keeps none (SQLite).
    segment_cache_mb: tuple[float, float] | None = None


@dataclass(frozen=True)
class PeerResult:
    engine: str
    size: int
    build_seconds: float
    vector_index: str
    operations: dict[str, Latency]


@dataclass(frozen=True)
class CorpusInfo:
    size: int
    documents: int
    real_vectors: int
    derived_vectors: int
    mean_chunk_chars: float


@dataclass
class RunResults:
    started: str
    options: dict[str, Any]
    machine: dict[str, Any]
    corpora: list[CorpusInfo] = field(default_factory=list)
    query_embedding: Latency | None = None
    queries: int = 0
    runs: list[BackendRun] = field(default_factory=list)
    peers: list[PeerResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, default=str) + "\n")


def overheads(run: BackendRun, query_embed_p50_ms: float) -> list[Overhead]:
    """The concurrency-1 decomposition. Embedding counts only for the share of fresh
    queries, since the server's LRU answers repeated ones without the model. Hybrid embeds
    the query while its full-text leg runs and the store checks for clicks, so its path
    is max(full-text leg, embedding + vector leg, click check) + rows, each at its p50
    (the bench's queries have no clicks, so no click counts are read)."""
    p50 = {f.operation: f.latency.p50_ms for f in run.floor}
    out = []
    for level in run.levels:
        if level.concurrency != 1:
            continue
        embed = query_embed_p50_ms * (level.fresh_query_share or 0.0)
        if level.rpc == "Fulltext":
            storage = path = serial = p50["fulltext"]
        elif level.rpc == "Semantic":
            storage, path = p50["vector"], p50["vector"] + embed
            serial = path
        else:
            storage = p50["hybrid"]
            legs = (p50[FULLTEXT_LEG], embed + p50[VECTOR_LEG], p50[CLICKS])
            rows = p50.get(ROWS, 0.0)
            path, serial = max(legs) + rows, sum(legs) + rows
        rpc = level.latency.p50_ms
        engine = p50.get(ENGINE + level.rpc.lower())
        out.append(Overhead(level.rpc, rpc, storage, embed, path, rpc - path, rpc - serial, engine))
    return out
