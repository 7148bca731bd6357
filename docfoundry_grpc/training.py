"""Training a collection's learned ranker from its counted clicks (see learned_ranker.py).

Runs inside the server (the TrainRanker RPC, `docfoundry train-ranker`), so that it sees
exactly what Hybrid sees and works on SQLite, whose file one server owns. Progress is
yielded as it goes: a collection with thousands of clicked queries takes a while.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from .engine import SearchEngine
from .errors import InvalidArgumentError, NotEnoughClicksError
from .feedback import click_estimate
from .learned_ranker import (
    F32,
    FEATURES,
    Candidate,
    Example,
    LearnedRanker,
    NeighbourClicks,
    features,
    fit,
    split,
    validate,
)
from .models import ClickedQuery, Vector, VectorSource
from .text import query_terms

MIN_QUERIES = 10  # fewer clicked queries than this teach nothing a fit could trust
CONCURRENCY = 4  # queries whose candidates are scored at once


@dataclass(frozen=True)
class TrainingProgress:
    done: int
    total: int


@dataclass(frozen=True)
class TrainedRanker:
    version: int
    live: bool
    fitted_queries: int
    validation_queries: int
    validation_ndcg: float
    plain_validation_ndcg: float
    weights: dict[str, float]


async def train_ranker(
    engine: SearchEngine, collection: str
) -> AsyncIterator[TrainingProgress | TrainedRanker]:
    """Yields progress, then the stored ranker."""
    described = await engine.collection(collection)  # NOT_FOUND for an unknown one
    if described.vectors is VectorSource.CALLER:
        raise InvalidArgumentError(
            f"collection {collection!r} takes caller vectors: the learned ranker needs the "
            "server's model to embed the queries it learns from",
            field="collection",
        )
    history = [q for q in await engine.store.click_history(collection) if query_terms(q.query)]
    if len(history) < MIN_QUERIES:
        raise NotEnoughClicksError(
            f"collection {collection!r} has counted clicks for {len(history)} queries; "
            f"a ranker needs at least {MIN_QUERIES}"
        )
    config = engine.config.clicks
    estimates = [_estimates(q, engine) for q in history]
    vectors = await engine.embed_texts([q.query for q in history])
    neighbours = NeighbourClicks([q.query_key for q in history], vectors, estimates)
    examples: list[Example | None] = [None] * len(history)
    gate = asyncio.Semaphore(CONCURRENCY)
    done = 0
    yield TrainingProgress(0, len(history))

    async def one(i: int) -> None:
        async with gate:
            query = history[i]
            candidates = await engine.plain_head(query.query, collection)
        rows = await asyncio.to_thread(
            _rows, neighbours, vectors[i], query.query_key, query.query, candidates
        )
        labels = np.array(
            [max(0.0, estimates[i].get(c.chunk.document_id, 0.0)) for c in candidates]
        )
        examples[i] = Example(query.query_key, rows, labels)

    tasks = [asyncio.create_task(one(i)) for i in range(len(history))]
    try:
        for finished in asyncio.as_completed(tasks):
            await finished
            done += 1
            if done % 50 == 0 or done == len(history):
                yield TrainingProgress(done, len(history))
    finally:
        for task in tasks:
            task.cancel()
    useful = [e for e in examples if e is not None and e.labels.max(initial=0.0) > 0]
    fitted, held = split(useful)
    if len(fitted) < MIN_QUERIES or not held:
        raise NotEnoughClicksError(
            f"only {len(useful)} clicked queries have a clicked result among their plain "
            f"Hybrid candidates; a ranker needs at least {MIN_QUERIES} to fit and some to check"
        )
    weights = await asyncio.to_thread(fit, fitted)
    model_ndcg, plain_ndcg = validate(weights, held)
    live = model_ndcg > plain_ndcg and config.enabled
    metrics = {"validation_ndcg": model_ndcg, "plain_validation_ndcg": plain_ndcg}
    model = LearnedRanker(0, weights, neighbours, metrics)
    stored = await asyncio.to_thread(model.to_json)
    version = await engine.store.save_ranker(collection, stored, live=live)
    engine.rankers.forget()
    yield TrainedRanker(
        version,
        live,
        len(fitted),
        len(held),
        model_ndcg,
        plain_ndcg,
        {name: float(w) for name, w in zip((*FEATURES, "bias"), weights, strict=True)},
    )


def _rows(
    neighbours: NeighbourClicks,
    vector: Vector,
    key: str,
    text: str,
    candidates: Sequence[Candidate],
) -> F32:
    """A history query's feature rows, its own clicks left out of the neighbour feature."""
    similar = neighbours.estimate(vector, leave_out=key)
    return features(query_terms(text), candidates, similar)


def _estimates(query: ClickedQuery, engine: SearchEngine) -> dict[int, float]:
    """Per clicked document, the query's debiased click estimate, in units of the weight."""
    config = engine.config.clicks
    scale = config.weight or 1.0
    return {
        document: click_estimate(votes, query.sources, config) / scale
        for document, votes in query.votes.items()
    }
