"""Property test of fusion (ranking.fuse) against its rules written out plainly, one
candidate at a time: any legs (repeats, negative, zero and equal scores), both methods,
any weights, with and without a limit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from docfoundry_grpc.models import Fusion, LegResult, ScoredId
from docfoundry_grpc.ranking import FusedCandidate, FusionParams, fuse

from .properties import property_settings

PROFILE = property_settings(300)

# Few ids and few distinct scores, so repeats, overlaps between the legs and ties are common.
SCORES = st.sampled_from([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0, 7.5])
LEG = st.lists(st.tuples(st.integers(1, 12), SCORES), max_size=14)
WEIGHTS = st.sampled_from([0.0, -0.0, 0.3, 1.0, 2.5])


def by_the_rules(
    fulltext: list[ScoredId], semantic: list[ScoredId], params: FusionParams, limit: int | None
) -> list[FusedCandidate]:
    """The ranking's docstring, one candidate at a time: a chunk's first place in a leg
    counts; score fusion divides by the leg's best (negatives clipped, nothing from a leg
    without a positive best), RRF adds weight / (rrf_k + rank); the full-text part first,
    then the semantic part; ties to the better rank in either leg, then the lower id."""

    def first_places(leg: list[ScoredId]) -> dict[int, LegResult]:
        places: dict[int, LegResult] = {}
        for rank, (chunk_id, score) in enumerate(leg, start=1):
            if chunk_id not in places:
                places[chunk_id] = LegResult(rank, score)
        return places

    def part(place: LegResult, best: float) -> float:
        if params.method is Fusion.RRF:
            return 1.0 / (params.rrf_k + place.rank)
        return max(place.score, 0.0) / best if best > 0 else 0.0

    legs = (first_places(fulltext), first_places(semantic))
    bests = [max((s for _, s in leg), default=0.0) for leg in (fulltext, semantic)]
    weights = (params.fulltext_weight, params.semantic_weight)
    fused = []
    for chunk_id in set(legs[0]) | set(legs[1]):
        score, ranks = 0.0, []
        for places, best, weight in zip(legs, bests, weights, strict=True):
            if chunk_id in places:
                score += weight * part(places[chunk_id], best)
                ranks.append(places[chunk_id].rank)
        fused.append((-score, min(ranks), chunk_id))
    fused.sort()
    return [
        FusedCandidate(chunk_id, -negated, legs[0].get(chunk_id), legs[1].get(chunk_id))
        for negated, _, chunk_id in fused[:limit]
    ]


@PROFILE
@given(
    fulltext=LEG,
    semantic=LEG,
    method=st.sampled_from(list(Fusion)),
    rrf_k=st.sampled_from([0, 1, 60]),
    weights=st.tuples(WEIGHTS, WEIGHTS),
    limit=st.one_of(st.none(), st.integers(1, 8)),
)
def test_fusion_follows_its_rules(
    fulltext: list[ScoredId],
    semantic: list[ScoredId],
    method: Fusion,
    rrf_k: int,
    weights: tuple[float, float],
    limit: int | None,
) -> None:
    params = FusionParams(method, rrf_k, *weights)
    fused = fuse(fulltext, semantic, params, limit=limit)
    expected = by_the_rules(fulltext, semantic, params, limit)
    assert fused == expected
    assert [repr(f.score) for f in fused] == [repr(f.score) for f in expected]  # -0.0 too
