"""Rank fusion: pure functions shared by every backend and every RPC.

Reciprocal rank fusion (Cormack et al., 2009) needs no score calibration between legs, which
is why it is the default: BM25 and cosine scores live on unrelated scales.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .models import LegResult, StoredChunk

DEFAULT_RRF_K = 60


@dataclass(frozen=True)
class FusedCandidate:
    chunk: StoredChunk
    score: float
    fulltext: LegResult | None
    semantic: LegResult | None


def _leg_results(leg: Sequence[StoredChunk]) -> dict[int, LegResult]:
    results: dict[int, LegResult] = {}
    for rank, chunk in enumerate(leg, start=1):
        results.setdefault(chunk.chunk_id, LegResult(rank=rank, score=chunk.score))
    return results


def reciprocal_rank_fusion(
    fulltext: Sequence[StoredChunk],
    semantic: Sequence[StoredChunk],
    *,
    rrf_k: int = DEFAULT_RRF_K,
    fulltext_weight: float = 1.0,
    semantic_weight: float = 1.0,
    click_ranks: Mapping[int, int] | None = None,
    click_weight: float = 0.0,
) -> list[FusedCandidate]:
    """Fuses two ranked lists: score = Σ weight / (rrf_k + rank) over the lists holding a chunk.

    `click_ranks` (document id → 1-based rank by clicks for this query) joins as a third
    list, so feedback lifts a document's chunks but never adds one that neither leg found.
    Clicks are kept per document because a document's chunks are renumbered when it is
    replaced, while what users found useful usually is not. Ties go to the
    better best-leg rank, then the lower chunk id, so the order is deterministic.
    """
    by_fulltext = _leg_results(fulltext)
    by_semantic = _leg_results(semantic)
    chunks = {c.chunk_id: c for c in (*semantic, *fulltext)}
    clicks = click_ranks or {}
    fused: list[FusedCandidate] = []
    for chunk_id, chunk in chunks.items():
        ft, sem = by_fulltext.get(chunk_id), by_semantic.get(chunk_id)
        score = 0.0
        if ft:
            score += fulltext_weight / (rrf_k + ft.rank)
        if sem:
            score += semantic_weight / (rrf_k + sem.rank)
        if chunk.document_id in clicks:
            score += click_weight / (rrf_k + clicks[chunk.document_id])
        fused.append(FusedCandidate(chunk, score, ft, sem))

    def order(c: FusedCandidate) -> tuple[float, int, int]:
        best = min(leg.rank for leg in (c.fulltext, c.semantic) if leg)
        return (-c.score, best, c.chunk.chunk_id)

    fused.sort(key=order)
    return fused


def click_ranks(click_counts: Mapping[int, int]) -> dict[int, int]:
    """Ranks document ids by click count (most clicked first; ties by id)."""
    ordered = sorted(click_counts.items(), key=lambda item: (-item[1], item[0]))
    return {document_id: rank for rank, (document_id, _) in enumerate(ordered, start=1)}
