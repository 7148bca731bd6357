"""The learned ranker's pure parts: neighbour clicks, features, the fit, validation, the
re-ranking of the head, and the stored form."""

from __future__ import annotations

import numpy as np
import pytest

from docfoundry_grpc.learned_ranker import (
    FEATURES,
    NEIGHBOURS,
    Candidate,
    Example,
    LearnedRanker,
    NeighbourClicks,
    features,
    fit,
    ndcg_at_10,
    rerank,
    split,
    validate,
)
from docfoundry_grpc.models import LegResult, StoredChunk


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def chunk(chunk_id: int, document_id: int, title: str = "", heading: str = "") -> StoredChunk:
    return StoredChunk(chunk_id, document_id, f"d{document_id}", title, "", heading, "", "", 0.0)


def test_neighbours_weigh_similar_queries_and_leave_one_out() -> None:
    vectors = np.stack([unit(1, 0, 0), unit(1, 1, 0), unit(0, 0, 1)])
    index = NeighbourClicks(["a", "b", "c"], vectors, [{1: 1.0}, {2: 0.5}, {3: 1.0}])
    found = index.estimate(unit(1, 0.2, 0))
    s_a, s_b = float(unit(1, 0.2, 0) @ unit(1, 0, 0)), float(unit(1, 0.2, 0) @ unit(1, 1, 0))
    assert found == pytest.approx({1: s_a / (s_a + s_b), 2: 0.5 * s_b / (s_a + s_b)})
    assert 3 not in found  # "c" is not similar enough
    assert set(index.estimate(unit(1, 0.2, 0), leave_out="a")) == {2}
    assert index.estimate(unit(0, -1, 0)) == {}  # nothing near
    assert NeighbourClicks([], np.zeros((0, 3), np.float32), []).estimate(unit(1, 0, 0)) == {}


def test_neighbours_are_the_nearest_few() -> None:
    n = NEIGHBOURS + 3
    vectors = np.stack([unit(1, i / 100, 0) for i in range(n)])
    index = NeighbourClicks([str(i) for i in range(n)], vectors, [{i: 1.0} for i in range(n)])
    assert set(index.estimate(unit(1, 0, 0))) == set(range(NEIGHBOURS))


def test_features_hold_legs_matches_and_neighbour_clicks() -> None:
    candidates = [
        Candidate(chunk(1, 10, "Install guide", "Ports"), 2.0, LegResult(1, 8.0), None),
        Candidate(chunk(2, 11, "Errors", "Install steps"), 1.0, None, LegResult(3, 0.5)),
    ]
    rows = features(["instal", "port"], candidates, {11: 0.7})
    assert rows.shape == (2, len(FEATURES))
    assert rows[0].tolist() == pytest.approx([1.0, 1.0, 0.0, 0.5, 0.0, 0.5, 0.5, 0.0])
    assert rows[1].tolist() == pytest.approx([0.5, 0.0, 0.5, 0.0, 0.25, 0.0, 0.5, 0.7])


def test_fit_recovers_a_linear_rule_and_validation_compares_with_fusion() -> None:
    rng = np.random.default_rng(1)
    examples = []
    for q in range(40):
        rows = rng.random((20, len(FEATURES))).astype(np.float32)
        labels = (rows[:, 7] > 0.8).astype(np.float64)  # users chose what neighbours chose
        examples.append(Example(f"q{q}", rows, labels))
    weights = fit(examples)
    assert int(np.argmax(weights[:-1])) == FEATURES.index("neighbours")
    model, plain = validate(weights, examples)
    assert model > plain + 0.2
    fitted, held = split(examples)
    assert held and fitted and len(fitted) + len(held) == 40
    assert split(examples) == (fitted, held)  # the same split every time


def test_ndcg_at_10_grades_by_labels() -> None:
    labels = np.array([0.0, 1.0, 0.5])
    assert ndcg_at_10([1, 2, 0], labels) == pytest.approx(1.0)
    assert ndcg_at_10([0, 2, 1], labels) < ndcg_at_10([2, 1, 0], labels) < 1.0
    assert ndcg_at_10([0, 1, 2], np.zeros(3)) == 0.0


def test_rerank_orders_by_the_model_within_the_heads_score_range() -> None:
    weights = np.zeros(len(FEATURES) + 1, dtype=np.float32)
    weights[FEATURES.index("title")] = 1.0
    ranker = LearnedRanker(1, weights, NeighbourClicks([], np.zeros((0, 2), np.float32), []), {})
    rows = np.zeros((3, len(FEATURES)), dtype=np.float32)
    rows[:, FEATURES.index("title")] = [0.0, 1.0, 0.5]
    order = rerank(ranker, rows, [0.9, 0.6, 0.3])
    assert [i for i, _ in order] == [1, 2, 0]
    assert [s for _, s in order] == pytest.approx([0.9, 0.6, 0.3])
    flat = np.zeros((2, len(FEATURES)), dtype=np.float32)
    assert rerank(ranker, flat, [0.9, 0.3]) == [(0, 0.9), (1, 0.3)]


def test_a_ranker_round_trips_through_its_stored_form() -> None:
    neighbours = NeighbourClicks(["a b"], np.stack([unit(1, 2, 2)]), [{5: 0.25}])
    weights = np.arange(len(FEATURES) + 1, dtype=np.float32)
    ranker = LearnedRanker(0, weights, neighbours, {"validation_ndcg": 0.5})
    again = LearnedRanker.from_json(7, ranker.to_json())
    assert again.version == 7 and again.metrics == {"validation_ndcg": 0.5}
    assert again.weights.tolist() == weights.tolist()
    assert again.neighbours.estimate(unit(1, 2, 2)) == pytest.approx({5: 0.25})
    with pytest.raises(ValueError, match="other features"):
        LearnedRanker.from_json(1, ranker.to_json().replace('"fused"', '"other"'))
