"""Fusion's rules on small exact examples: how each leg's scores are scaled, how ties are
broken, how clicks lift candidates, and what the legs' odd inputs (repeats, negative or
all-zero scores, an empty leg) do. Expected values are worked by hand from the formulas
in `ranking`'s docstring."""

from __future__ import annotations

import pytest

from docfoundry_grpc.config import ClickConfig
from docfoundry_grpc.models import Fusion, LegResult
from docfoundry_grpc.ranking import FusedCandidate, FusionParams, fuse

SCORE = FusionParams(Fusion.SCORE)


def order(fused: list[FusedCandidate]) -> list[int]:
    return [f.chunk_id for f in fused]


def test_the_defaults() -> None:
    assert FusionParams() == FusionParams(Fusion.SCORE, 60, 1.0, 1.0)
    assert ClickConfig() == ClickConfig(1.0, 1.0, 0.2, 10.0, -0.5, 2.0, 0.25, 3, 5, 1000, 86400.0)


def test_score_fusion_scales_each_leg_by_its_best_and_clips_negatives() -> None:
    fused = fuse(
        [(1, 4.0), (2, 2.0)],
        [(2, 0.5), (3, 0.25), (4, -0.1)],
        FusionParams(Fusion.SCORE, semantic_weight=2.0),
    )
    assert {f.chunk_id: f.score for f in fused} == pytest.approx(
        {1: 1.0, 2: 0.5 + 2.0, 3: 1.0, 4: 0.0}
    )
    assert order(fused) == [2, 1, 3, 4]  # 1 and 3 tie: 1 has the better rank (1 against 2)
    by_id = {f.chunk_id: f for f in fused}
    assert by_id[2].fulltext == LegResult(2, 2.0) and by_id[2].semantic == LegResult(1, 0.5)
    assert by_id[1].semantic is None and by_id[4].fulltext is None


def test_a_leg_without_a_positive_score_adds_nothing() -> None:
    fused = fuse([(1, 2.0)], [(2, -0.5), (1, 0.0)], SCORE)
    assert [(f.chunk_id, f.score) for f in fused] == [(1, 1.0), (2, 0.0)]
    assert fuse([], [], SCORE) == []


def test_rrf_sums_weight_over_rank_plus_k() -> None:
    params = FusionParams(Fusion.RRF, rrf_k=10, fulltext_weight=3.0, semantic_weight=1.0)
    fused = fuse([(7, 0.1), (8, 50.0)], [(8, -1.0), (9, 0.0)], params)
    assert {f.chunk_id: f.score for f in fused} == pytest.approx(
        {7: 3 / 11, 8: 3 / 12 + 1 / 11, 9: 1 / 12}
    )
    assert order(fused) == [8, 7, 9]


def test_ties_go_to_the_better_rank_in_either_leg_then_the_lower_id() -> None:
    fused = fuse([(10, 2.0), (11, 1.0)], [(20, 2.0), (21, 1.0)], SCORE)
    assert order(fused) == [10, 20, 11, 21]
    fused = fuse([(5, 1.0), (6, 1.0)], [(3, 1.0)], SCORE)
    assert order(fused) == [3, 5, 6]  # 3 and 5 are both first in a leg: lower id first
    fused = fuse([], [(5, 1.0), (3, 1.0)], SCORE)
    assert order(fused) == [5, 3]  # one leg only: its own order decides the tie


def test_a_repeated_chunk_keeps_its_first_rank_and_score() -> None:
    fused = fuse([(1, 3.0), (2, 2.0), (1, 9.0)], [], SCORE)
    assert [(f.chunk_id, f.fulltext) for f in fused] == [
        (1, LegResult(1, 3.0)),
        (2, LegResult(2, 2.0)),
    ]


def test_a_limit_takes_the_head() -> None:
    legs = [(i, float(10 - i)) for i in range(10)], [(i, 1.0 / (i + 1)) for i in range(5, 15)]
    full = fuse(*legs, SCORE)
    assert [fuse(*legs, SCORE, limit=n) for n in (0, 1, 4, 30)] == [[], full[:1], full[:4], full]
