"""The learned ranker: what clicks teach about queries nobody has clicked on yet.

A query's own clicks (feedback.py) only help that query. This part generalises: a linear
model re-ranks the head of Hybrid's fused list from features every candidate has —

- its fused score, its BM25 and cosine scores and its rank in each leg,
- how much of the query its title and its heading hold,
- what users clicked for *similar* queries: the debiased click estimates of its document
  for the history queries nearest to this one by query embedding, weighted by similarity.

It is trained (`docfoundry train-ranker`, the TrainRanker RPC) from the counted clicks of a
collection: every query with history is run through plain Hybrid, its candidates get these
features (the neighbour feature leaving the query itself out, as it will be for a new query)
and, as labels, the query's own click estimates. The fit is pairwise regularised least
squares (RankRLS, see `fit`), a closed form by numpy's lstsq with nothing to tune but the
ridge. A model becomes
live only if, on a fifth of the history queries it was not fitted on, it orders their
clicked documents better than plain fusion does; every trained model is stored with its
figures, as a version of its collection.

Written here rather than taken from a learning-to-rank library (LightGBM's lambdarank,
XGBoost): eight features and a few thousand rows need no trees, and inference is one dot
product per candidate inside the request, with no model server and no extra dependency.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .models import LegResult, StoredChunk, Vector
from .text import query_terms

FEATURES = (
    "fused",
    "fulltext",
    "semantic",
    "fulltext_rank",
    "semantic_rank",
    "title",
    "heading",
    "neighbours",
)
HEAD = 30  # candidates the ranker re-orders: the head of the fused list
NEIGHBOURS = 5  # history queries consulted for a query
MIN_SIMILARITY = 0.5  # a history query less similar than this is no neighbour
RIDGE = 1.0
VALIDATION_SHARE = 0.2

F32 = npt.NDArray[np.float32]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """One of the head's candidates, as the ranker sees it."""

    chunk: StoredChunk
    fused: float
    fulltext: LegResult | None
    semantic: LegResult | None


class NeighbourClicks:
    """The history queries of a collection (embedding and per-document click estimate),
    searchable by a query's embedding."""

    def __init__(
        self, keys: Sequence[str], vectors: F32, estimates: Sequence[Mapping[int, float]]
    ) -> None:
        self.keys = list(keys)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True) if len(keys) else 1.0
        self.vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        self.estimates = [dict(e) for e in estimates]

    def estimate(self, vector: Vector, *, leave_out: str = "") -> dict[int, float]:
        """Per document, the similarity-weighted click estimate over the nearest history
        queries (excluding `leave_out`): what similar queries' users chose."""
        if not self.keys:
            return {}
        query = np.asarray(vector, dtype=np.float32)
        similarity = self.vectors @ (query / max(float(np.linalg.norm(query)), 1e-12))
        nearest = min(NEIGHBOURS + 1, len(self.keys))
        head = np.argpartition(-similarity, nearest - 1)[:nearest]
        order = head[np.argsort(-similarity[head], kind="stable")]
        chosen = [
            int(i)
            for i in order
            if self.keys[int(i)] != leave_out and similarity[int(i)] >= MIN_SIMILARITY
        ][:NEIGHBOURS]
        total = float(sum(similarity[i] for i in chosen))
        merged: dict[int, float] = {}
        for i in chosen:
            for document, value in self.estimates[i].items():
                merged[document] = merged.get(document, 0.0) + float(similarity[i]) * value
        return {d: v / total for d, v in merged.items()} if total > 0 else {}

    def to_json(self) -> dict[str, object]:
        return {
            "keys": self.keys,
            "dimension": int(self.vectors.shape[1]) if self.keys else 0,
            "vectors": base64.b64encode(self.vectors.tobytes()).decode(),
            "estimates": [{str(d): v for d, v in e.items()} for e in self.estimates],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> NeighbourClicks:
        keys = list(data["keys"])  # type: ignore[call-overload]
        dimension = int(data["dimension"])  # type: ignore[call-overload]
        raw = base64.b64decode(str(data["vectors"]))
        vectors = np.frombuffer(raw, dtype=np.float32).reshape(len(keys), dimension)
        estimates = [
            {int(d): float(v) for d, v in e.items()}
            for e in data["estimates"]  # type: ignore[attr-defined]
        ]
        return cls(keys, vectors, estimates)


def features(
    terms: Sequence[str], candidates: Sequence[Candidate], clicked: Mapping[int, float]
) -> F32:
    """One row of FEATURES per candidate. `clicked` is the neighbour estimate per document."""
    wanted = set(terms)
    top = max((c.fused for c in candidates), default=0.0) or 1.0
    best_bm25 = max((c.fulltext.score for c in candidates if c.fulltext), default=0.0) or 1.0
    rows = np.zeros((len(candidates), len(FEATURES)), dtype=np.float32)
    for i, c in enumerate(candidates):
        rows[i, 0] = c.fused / top
        if c.fulltext is not None:
            rows[i, 1] = c.fulltext.score / best_bm25
            rows[i, 3] = 1.0 / (1 + c.fulltext.rank)
        if c.semantic is not None:
            rows[i, 2] = c.semantic.score
            rows[i, 4] = 1.0 / (1 + c.semantic.rank)
        if wanted:
            rows[i, 5] = len(wanted & set(query_terms(c.chunk.title))) / len(wanted)
            rows[i, 6] = len(wanted & set(query_terms(c.chunk.heading))) / len(wanted)
        rows[i, 7] = clicked.get(c.chunk.document_id, 0.0)
    return rows


@dataclass(frozen=True)
class LearnedRanker:
    version: int
    weights: F32  # one per feature, then the bias
    neighbours: NeighbourClicks
    metrics: Mapping[str, float]

    def scores(self, rows: F32) -> F32:
        return np.asarray(rows @ self.weights[:-1] + self.weights[-1], dtype=np.float32)

    def to_json(self) -> str:
        return json.dumps(
            {
                "features": list(FEATURES),
                "weights": [float(w) for w in self.weights],
                "metrics": dict(self.metrics),
                "neighbours": self.neighbours.to_json(),
            }
        )

    @classmethod
    def from_json(cls, version: int, text: str) -> LearnedRanker:
        data = json.loads(text)
        if list(data["features"]) != list(FEATURES):
            raise ValueError("the stored ranker was trained on other features")
        return cls(
            version,
            np.asarray(data["weights"], dtype=np.float32),
            NeighbourClicks.from_json(data["neighbours"]),
            {k: float(v) for k, v in data["metrics"].items()},
        )


def rerank(ranker: LearnedRanker, rows: F32, fused: Sequence[float]) -> list[tuple[int, float]]:
    """(index into the head, new score), best first. New scores are the model's, mapped onto
    the head's range of fused scores, so that they stay above everything past the head
    and click boosts keep their scale."""
    learned = ranker.scores(rows)
    low, high = float(min(fused)), float(max(fused))
    spread = float(learned.max() - learned.min())
    if spread <= 0:
        return list(enumerate(fused))
    mapped = low + (learned - learned.min()) / spread * (high - low)
    order = sorted(range(len(fused)), key=lambda i: (-float(learned[i]), i))
    return [(i, float(mapped[i])) for i in order]


def score_head(
    ranker: LearnedRanker,
    terms: Sequence[str],
    candidates: Sequence[Candidate],
    vector: Vector | None,
) -> list[tuple[int, float]]:
    """The ranker's order of the head (see `rerank`): CPU work, run off the event loop."""
    similar = ranker.neighbours.estimate(vector) if vector is not None else {}
    rows = features(terms, candidates, similar)
    return rerank(ranker, rows, [c.fused for c in candidates])


@dataclass(frozen=True)
class Example:
    """A history query's head: its candidates' feature rows and click labels."""

    query_key: str
    rows: F32
    labels: npt.NDArray[np.float64]


def fit(examples: Sequence[Example]) -> F32:
    """Pairwise regularised least squares (RankRLS; Pahikkala et al., "An efficient
    algorithm for learning to rank from preference graphs", Machine Learning 2009): within
    each query, the feature difference of a clicked and an unclicked candidate is regressed
    on the difference of their labels. Pairs, not points, because what matters is the
    order within a query; a pointwise fit spends itself on the many unclicked candidates
    and on how scores differ between queries. Solved by numpy's lstsq with a ridge; the
    bias cancels in differences and is 0."""
    pairs: list[npt.NDArray[np.float64]] = []
    gaps: list[npt.NDArray[np.float64]] = []
    for e in examples:
        rows = e.rows.astype(np.float64)
        below = np.flatnonzero(e.labels <= 0)
        for clicked in np.flatnonzero(e.labels > 0):
            pairs.append(rows[clicked] - rows[below])
            gaps.append(np.full(len(below), e.labels[clicked]))
    width = len(FEATURES)
    x = np.vstack(pairs) if pairs else np.zeros((0, width))
    y = np.concatenate(gaps) if gaps else np.zeros(0)
    penalty = math.sqrt(RIDGE) * np.eye(width)
    solution, *_ = np.linalg.lstsq(np.vstack([x, penalty]), np.concatenate([y, np.zeros(width)]))
    return np.asarray([*solution, 0.0], dtype=np.float32)


def ndcg_at_10(order: Sequence[int], labels: npt.NDArray[np.float64]) -> float:
    """nDCG@10 of the candidates in `order` against graded labels (clipped at 0)."""
    gains = np.clip(labels, 0, None)
    ideal = sorted(gains, reverse=True)[:10]
    discount = [1 / math.log2(r + 2) for r in range(10)]
    best = sum(g * d for g, d in zip(ideal, discount, strict=False))
    got = sum(gains[i] * d for i, d in zip(order[:10], discount, strict=False))
    return float(got / best) if best > 0 else 0.0


def validate(weights: F32, examples: Sequence[Example]) -> tuple[float, float]:
    """Mean nDCG@10 of the model's order and of the plain fused order, on `examples`."""
    if not examples:
        return 0.0, 0.0
    model = plain = 0.0
    for e in examples:
        learned = e.rows @ weights[:-1] + weights[-1]
        model += ndcg_at_10(list(np.argsort(-learned, kind="stable")), e.labels)
        plain += ndcg_at_10(list(np.argsort(-e.rows[:, 0], kind="stable")), e.labels)
    return model / len(examples), plain / len(examples)


def split(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """Fit and validation sets, by a hash of the query (the same split every time)."""
    fitted: list[Example] = []
    held: list[Example] = []
    for e in examples:
        validation = zlib.crc32(e.query_key.encode()) % 100 < VALIDATION_SHARE * 100
        (held if validation else fitted).append(e)
    return fitted, held


RANKER_CHECK_SECONDS = 5.0  # how soon a ranker trained through any server goes live here


class RankerStore(Protocol):
    async def live_rankers(self) -> dict[str, int]: ...

    async def ranker_model(self, collection: str, version: int) -> str | None: ...


class LiveRankers:
    """The live learned ranker of each collection, checked with the store every few
    seconds (a ranker trained through one server goes live on all of them) and loaded once
    per version. A version that cannot be loaded (stored by another release, or damaged)
    is logged once and ranked without: searches never fail for it."""

    def __init__(self, store: RankerStore) -> None:
        self._store = store
        self._versions: dict[str, int] = {}
        self._checked = -RANKER_CHECK_SECONDS
        self._models: dict[str, LearnedRanker] = {}
        self._unusable: set[tuple[str, int]] = set()

    async def get(self, collection: str) -> LearnedRanker | None:
        if time.monotonic() - self._checked >= RANKER_CHECK_SECONDS:
            self._versions = await self._store.live_rankers()
            self._checked = time.monotonic()
        version = self._versions.get(collection)
        if version is None or (collection, version) in self._unusable:
            return None
        model = self._models.get(collection)
        if model is None or model.version != version:
            model = await self._load(collection, version)
        return model

    async def _load(self, collection: str, version: int) -> LearnedRanker | None:
        text = await self._store.ranker_model(collection, version)
        try:
            if text is None:
                raise ValueError("it is not stored")
            model = await asyncio.to_thread(LearnedRanker.from_json, version, text)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ranker v%d of %r is not used: %s", version, collection, exc)
            self._unusable.add((collection, version))
            return None
        self._models[collection] = model
        return model

    def forget(self) -> None:
        """Checks the store again at the next search (after a ranker was trained here)."""
        self._checked = -RANKER_CHECK_SECONDS
