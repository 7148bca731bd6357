"""The floor under each RPC: the storage adapter's own query time and the model's own query
embedding time, both measured in-process on the data the server is serving; and the search
engine itself, in-process on the same adapter and model, without gRPC.

A second adapter is opened on the server's database (for SQLite, the same file), queried
one request at a time with vectors and analysed terms prepared beforehand, so what is
timed is exactly what the engine awaits from storage. The gap between this and an RPC's
latency is the price of gRPC and the service layer; the engine's own time splits it in two.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import grpc
import numpy as np
import numpy.typing as npt
from grpc_health.v1 import health_pb2, health_pb2_grpc

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_grpc.allocator import keep_freed_memory
from docfoundry_grpc.config import DatabaseConfig, SearchConfig
from docfoundry_grpc.embedding import Embedder
from docfoundry_grpc.engine import SearchEngine
from docfoundry_grpc.models import DEFAULT_COLLECTION, ScoredId
from docfoundry_grpc.ranking import FusionParams, fuse
from docfoundry_grpc.storage import StorageAdapter, build_store
from docfoundry_grpc.text import query_key, query_terms
from docfoundry_grpc.validation import SearchQuery, search_query

from .results import (
    CLICKS,
    ENGINE,
    ENGINE_MODEL,
    FULLTEXT_LEG,
    ROWS,
    VECTOR_LEG,
    FloorResult,
    Latency,
)

F32 = npt.NDArray[np.float32]
log = logging.getLogger("bench")
WARMUP = 20  # PostgreSQL's first plans and buffer reads are not the steady state


def hybrid_window(k: int) -> int:
    """Candidates per leg, as the engine computes it with the server's defaults."""
    return max(SearchConfig().candidate_window, 2 * k)


async def _candidates(
    store: StorageAdapter, terms: list[str], vector: F32, window: int
) -> tuple[list[ScoredId], list[ScoredId]]:
    return await asyncio.gather(
        store.rank_fulltext(terms, limit=window),
        store.rank_vector(vector, limit=window),
    )


async def _clicked(store: StorageAdapter, terms: list[str]) -> bool:
    """Whether the query has clicks; the engine does not ask for stop-word-only queries."""
    return bool(terms) and await store.has_clicks(query_key(terms))


async def _hybrid(
    store: StorageAdapter, terms: list[str], vector: F32, window: int, k: int
) -> None:
    """The storage calls of one Hybrid request: both rankings and the click check at
    once, the click evidence only for a clicked query, then the rows of the `k` fused
    results."""
    (fulltext, semantic), clicked = await asyncio.gather(
        _candidates(store, terms, vector, window), _clicked(store, terms)
    )
    if clicked:
        candidates = _chunk_ids(fulltext, semantic)
        await store.click_evidence(query_key(terms), candidates, collection=DEFAULT_COLLECTION)
    await store.chunks(_fused(fulltext, semantic, k))


def _fused(fulltext: list[ScoredId], semantic: list[ScoredId], k: int) -> list[ScoredId]:
    return [(f.chunk_id, f.score) for f in fuse(fulltext, semantic, FusionParams(), limit=k)]


def _chunk_ids(*rankings: list[ScoredId]) -> list[int]:
    return sorted({i for ranking in rankings for i, _ in ranking})


async def _time(
    calls: Sequence[Callable[[], Awaitable[object]]], *, warmup: int = WARMUP
) -> Latency:
    for call in calls[:warmup]:
        await call()
    samples = []
    for call in calls:
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return Latency.of(samples)


class _TimedModel:
    """The model, recording how long each of its calls takes inside the engine."""

    def __init__(self, model: Embedder) -> None:
        self.model = model
        self.model_name = model.model_name
        self.dimension = model.dimension
        self.precision = model.precision
        self.samples_ms: list[float] = []

    def embed(self, texts: Sequence[str]) -> F32:
        started = time.perf_counter()
        vectors = self.model.embed(texts)
        self.samples_ms.append((time.perf_counter() - started) * 1000)
        return vectors


async def measure_engine(
    config: DatabaseConfig, queries: Sequence[str], model: Embedder, *, k: int
) -> list[FloorResult]:
    """Each search mode through the engine, as the servicer calls it, on queries it has not
    embedded before (a new engine per mode, after a warm-up on other text); and the model's
    own time inside those calls, longer than alone when the storage calls between them
    have evicted its weights from the CPU caches. The bench runs it after the RPC levels,
    so that nothing it leaves behind can touch what they measure."""
    # Only reads, beside the bench's server: SQLite's one-process claim does not apply.
    store = await open_settled(config, model.dimension)
    try:
        return await _engine_modes(store, model, queries, k)
    finally:
        await store.close()


async def _engine_modes(
    store: StorageAdapter, model: Embedder, queries: Sequence[str], k: int
) -> list[FloorResult]:
    timed = _TimedModel(model)
    config = SearchConfig()

    def query(text: str) -> SearchQuery:
        return search_query(q=text, k=k, config=config, dimension=model.dimension)

    model_samples: list[float] = []
    results = []
    for mode in ("fulltext", "semantic", "hybrid"):
        warm = SearchEngine(store, timed, config)
        for text in queries[:WARMUP]:
            await getattr(warm, mode)(query(f"{text} {mode}"))
        warm.close()
        engine = SearchEngine(store, timed, config)
        search = getattr(engine, mode)
        timed.samples_ms.clear()
        calls = [partial(search, query(text)) for text in queries]
        results.append(FloorResult(ENGINE + mode, await _time(calls, warmup=0)))
        model_samples += timed.samples_ms
        engine.close()
    results.append(FloorResult(ENGINE_MODEL, Latency.of(model_samples)))
    return results


async def measure_floor(
    config: DatabaseConfig,
    queries: Sequence[str],
    vectors: F32,
    *,
    k: int,
    dimension: int,
) -> list[FloorResult]:
    """Per operation: "fulltext" and "vector" as Fulltext and Semantic call them; "hybrid"
    as Hybrid does (both rankings and the click check at once, the rows of the results),
    and its parts alone."""
    keep_freed_memory()  # as the server does: the floor runs under the same allocator
    store = await open_settled(config, dimension)
    try:
        terms = [query_terms(q) for q in queries]
        window = hybrid_window(k)
        pairs = list(zip(terms, list(vectors), strict=True))
        legs = [await _candidates(store, t, v, window) for t, v in pairs]
        results = [_fused(*both, k) for both in legs]
        calls: dict[str, list[Callable[[], Awaitable[object]]]] = {
            "fulltext": [partial(store.search_fulltext, t, limit=k) for t in terms],
            "vector": [partial(store.search_vector, v, limit=k) for _, v in pairs],
            "hybrid": [partial(_hybrid, store, t, v, window, k) for t, v in pairs],
            FULLTEXT_LEG: [partial(store.rank_fulltext, t, limit=window) for t in terms],
            VECTOR_LEG: [partial(store.rank_vector, v, limit=window) for _, v in pairs],
            CLICKS: [partial(_clicked, store, t) for t in terms],
            ROWS: [partial(store.chunks, r) for r in results],
        }
        return [FloorResult(name, await _time(op)) for name, op in calls.items()]
    finally:
        await store.close()


def measure_query_embedding(model: Embedder, queries: Sequence[str]) -> Latency:
    """One query per call, as the server embeds a query it has not seen before."""
    model.embed(list(queries[:2]))
    samples = []
    for query in queries:
        started = time.perf_counter()
        model.embed([query])
        samples.append((time.perf_counter() - started) * 1000)
    return Latency.of(samples)


async def open_settled(config: DatabaseConfig, dimension: int) -> StorageAdapter:
    """An adapter beside the bench's server, reads only, opened and settled: a SQLite
    adapter builds the approximate graphs of its large collections at open, in the
    background, searching exactly meanwhile; timing starts once they are built."""
    store = build_store(config, dimension=dimension, exclusive=False)
    await store.open()
    started = time.monotonic()
    while (graph := (await store.stats()).vector_graph) is not None and graph.building:
        await asyncio.sleep(0.2)
    if time.monotonic() - started > 1:
        log.info("the adapter built its vector graph in %.0f s", time.monotonic() - started)
    return store


async def measure_rpcs_given_vectors(
    target: str, queries: Sequence[str], vectors: F32, *, k: int
) -> dict[str, Latency]:
    """The peer's three operations as RPCs, one call at a time over one channel, on the
    peer's queries and query vectors: Fulltext, Semantic and Hybrid with `query_vector`
    set, so the server embeds nothing, as LanceDB's vector and hybrid searches take a
    vector. Keyed by the peer's operation names."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.SearchServiceStub(channel)
        pairs = [(q, v.tolist()) for q, v in zip(queries, vectors, strict=True)]
        calls: dict[str, list[Callable[[], Awaitable[object]]]] = {
            "fulltext": [partial(stub.Fulltext, pb.FulltextRequest(q=q, k=k)) for q, _ in pairs],
            "vector": [
                partial(stub.Semantic, pb.SemanticRequest(query_vector=v, k=k)) for _, v in pairs
            ],
            "hybrid": [
                partial(stub.Hybrid, pb.HybridRequest(q=q, query_vector=v, k=k)) for q, v in pairs
            ],
        }
        return {name: await _time(op) for name, op in calls.items()}


async def measure_bare_rpc(target: str, calls: int = 500) -> Latency:
    """grpc.health.v1 Check, one call at a time over one channel: the round trip of gRPC's
    Python stack on both sides and the server's interceptors, with no service work. It is
    the part of "gRPC + service" that no change to the service can remove."""
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest()
        return await _time([partial(health.Check, request)] * calls)
