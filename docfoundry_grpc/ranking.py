"""Fusion of the full-text and semantic legs: pure functions shared by every backend.

Two methods, both free of tuned constants:

- **score** (default): each leg's scores are divided by that leg's best score (both scores
  have 0 as their natural floor: BM25 ≥ 0, cosine clipped at 0), then summed with the leg
  weights. Unlike ranks, scores keep how far ahead a result is, which is why score fusion
  beats rank fusion in- and out-of-domain in Bruch et al., "An Analysis of Fusion Functions
  for Hybrid Retrieval" (TOIS 2023); Weaviate made it its default for the same reason.
- **rrf**: reciprocal rank fusion (Cormack et al., 2009), Σ weight / (rrf_k + rank): ranks
  only, so it needs no view of the scores at all.

Click feedback (feedback.py) is added to the fused scores afterwards, so it lifts what
users chose but never adds a result that neither leg found.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .models import Fusion, LegResult, ScoredId

DEFAULT_RRF_K = 60


@dataclass(frozen=True)
class FusedCandidate:
    chunk_id: int
    score: float
    fulltext: LegResult | None
    semantic: LegResult | None


@dataclass(frozen=True)
class FusionParams:
    method: Fusion = Fusion.SCORE
    rrf_k: int = DEFAULT_RRF_K
    fulltext_weight: float = 1.0
    semantic_weight: float = 1.0


LegRank = tuple[int, float]  # a chunk's first rank in a leg (from 1), and its score there


def _leg_ranks(leg: Sequence[ScoredId]) -> dict[int, LegRank]:
    ranks: dict[int, LegRank] = {}
    for rank, (chunk_id, score) in enumerate(leg, start=1):
        ranks.setdefault(chunk_id, (rank, score))
    return ranks


def _rrf_part(rrf_k: int) -> Callable[[int, float, float], float]:
    return lambda rank, _score, _best: 1.0 / (rrf_k + rank)


def _score_part(_rank: int, score: float, best: float) -> float:
    return max(score, 0.0) / best if best > 0 else 0.0


def _leg(ranks: Mapping[int, LegRank], chunk_id: int) -> LegResult | None:
    found = ranks.get(chunk_id)
    return LegResult(*found) if found else None


def fuse(
    fulltext: Sequence[ScoredId],
    semantic: Sequence[ScoredId],
    params: FusionParams,
    *,
    limit: int | None = None,
) -> list[FusedCandidate]:
    """Fused candidates, best first, from each leg's (chunk id, score) ranking. Ties go to
    the better best-leg rank, then the lower chunk id.

    With `limit`, only the best `limit` are built: the same head as the full list, in half
    the time (0.27 → 0.12 ms for two legs of 100 and a limit of 10), since scores are
    ranked as plain tuples and result objects made for the head only."""
    by_fulltext, by_semantic = _leg_ranks(fulltext), _leg_ranks(semantic)
    part = _rrf_part(params.rrf_k) if params.method is Fusion.RRF else _score_part
    best_ft = max((score for _, score in fulltext), default=0.0)
    best_sem = max((score for _, score in semantic), default=0.0)
    keys: list[tuple[float, int, int]] = []  # (-score, best rank in either leg, chunk id)
    for chunk_id in {**by_semantic, **by_fulltext}:
        score = 0.0
        best_rank = len(fulltext) + len(semantic)  # past any rank
        if ft := by_fulltext.get(chunk_id):
            score += params.fulltext_weight * part(*ft, best_ft)
            best_rank = ft[0]
        if sem := by_semantic.get(chunk_id):
            score += params.semantic_weight * part(*sem, best_sem)
            best_rank = min(best_rank, sem[0])
        keys.append((-score, best_rank, chunk_id))
    ordered = sorted(keys) if limit is None else heapq.nsmallest(limit, keys)
    return [
        FusedCandidate(chunk_id, -negated, _leg(by_fulltext, chunk_id), _leg(by_semantic, chunk_id))
        for negated, _, chunk_id in ordered
    ]
