"""`top_chunks` is FTS5's bm25() with FTS5's constants (k1 = 1.2, b = 0.75), checked
against `bm25_reference`, which writes those constants out itself: a changed product
constant fails here. Also the edges: IDF's floor, filters that admit or exclude chunks,
and corpora too small for the usual arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from docfoundry_grpc.bm25 import Postings, TermPostings, idf, top_chunks

from .bm25_reference import bm25_scores, ranked

# Lengths from 1 to 12 tokens and repeated terms, so both k1 and b move every score.
CORPUS: dict[int, list[str]] = {
    101: "alpha alpha alpha beta".split(),
    102: "alpha gamma".split(),
    103: "beta beta gamma gamma gamma gamma gamma gamma delta delta delta delta".split(),
    104: "gamma".split(),
    105: "alpha beta gamma delta epsilon zeta eta theta".split(),
    106: "delta epsilon".split(),
    107: "zeta zeta zeta zeta zeta zeta zeta".split(),
    108: "theta".split(),
}
TOKENS = sum(map(len, CORPUS.values()))


def postings(term: str, *, split: int = 0) -> TermPostings:
    """`term`'s postings over CORPUS, packed in two parts cut after `split` entries."""
    rows = [(i, tokens.count(term), len(tokens)) for i, tokens in CORPUS.items() if term in tokens]
    ids, tfs, dls = (np.array(column) for column in zip(*rows, strict=True))
    parts = [Postings(ids[a:b], tfs[a:b], dls[a:b]) for a, b in ((0, split), (split, len(rows)))]
    return TermPostings(term, len(rows), [Postings.unpack(*p.pack()) for p in parts])


def search(terms: list[str], limit: int = 10, **filters: object) -> list[tuple[int, float]]:
    return top_chunks(
        [postings(t, split=1) for t in terms],
        chunk_count=len(CORPUS),
        token_count=TOKENS,
        limit=limit,
        **filters,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "query", [["alpha"], ["gamma"], ["alpha", "delta"], ["beta", "gamma", "zeta", "theta"]]
)
def test_scores_are_fts5_bm25(query: list[str]) -> None:
    expected = bm25_scores(CORPUS, query)
    found = search(query)
    assert [i for i, _ in found] == ranked(expected, 10)
    assert dict(found) == pytest.approx(expected, rel=1e-12)


def test_one_score_worked_by_hand() -> None:
    """'alpha' in chunk 101: N = 8, df = 3, tf = 3, dl = 4, avgdl = 37 / 8."""
    weight = math.log((8 - 3 + 0.5) / (3 + 0.5))
    score = weight * 3 * 2.2 / (3 + 1.2 * (0.25 + 0.75 * 4 / (37 / 8)))
    assert dict(search(["alpha"]))[101] == pytest.approx(score, rel=1e-12)


def test_idf_is_floored_at_one_millionth() -> None:
    assert idf(10, 1) == pytest.approx(math.log(9.5 / 1.5))
    assert idf(10, 4) == pytest.approx(math.log(6.5 / 4.5))
    assert idf(10, 5) == 1e-6  # ln(1) = 0
    assert idf(10, 8) == 1e-6  # a term in most chunks would score below zero
    assert idf(3, 5) == 1e-6  # counts from different snapshots: the ratio goes negative
    assert idf(0, 0) == 1e-6


def test_common_terms_still_rank_by_tf_and_length() -> None:
    """'gamma' is in 4 of 8 chunks: the floor keeps every score positive and the order is
    BM25's, not the ids'."""
    found = search(["gamma"])
    assert [i for i, _ in found] == [103, 104, 102, 105]
    assert all(score > 0 for _, score in found)


def test_only_admits_and_exclude_removes() -> None:
    everything = [i for i, _ in search(["alpha", "gamma", "delta"])]
    assert len(everything) == 6
    only = np.array([105, 102, 999, 1])
    assert [i for i, _ in search(["alpha", "gamma", "delta"], only=only)] == [
        i for i in everything if i in (102, 105)
    ]
    assert search(["alpha"], only=np.array([], dtype=np.int64)) == []
    assert [i for i, _ in search(["alpha"], only=np.array([101]))] == [101]  # the lowest id
    assert search(["alpha"], only=np.array([1, 100])) == []  # below the lowest id: none
    assert [i for i, _ in search(["alpha", "gamma", "delta"], only=np.array([102, 105]))] == [
        i for i in everything if i in (102, 105)
    ]
    assert [
        i for i, _ in search(["alpha", "gamma", "delta"], exclude=[everything[0], 5, 10_000])
    ] == (everything[1:])
    assert [i for i, _ in search(["alpha"], exclude=np.array([101, 105]))] == [102]


@pytest.mark.parametrize("seed", range(40))
def test_any_limit_gives_the_head_of_the_unbounded_ranking(seed: int) -> None:
    """A term in every chunk and one in some: the cheap lower bound taken from the first
    term's list must never drop a chunk that belongs in the head."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    limit = int(rng.integers(2, n))
    ids = np.arange(n) + 10
    some = np.sort(rng.choice(ids, int(rng.integers(1, n)), replace=False))
    terms = [
        TermPostings("a", n, [Postings(ids, rng.integers(1, 6, n), rng.integers(1, 20, n))]),
        TermPostings(
            "b",
            len(some),
            [Postings(some, rng.integers(1, 6, len(some)), rng.integers(1, 20, len(some)))],
        ),
    ]
    everything = top_chunks(terms, chunk_count=1000, token_count=10_000, limit=10**6)
    head = top_chunks(terms, chunk_count=1000, token_count=10_000, limit=limit)
    assert head == everything[:limit]


def test_limits() -> None:
    found = search(["alpha", "gamma", "delta"])
    for limit in (1, 2, 5, 6, 7):
        assert search(["alpha", "gamma", "delta"], limit) == found[:limit]
    assert search(["alpha"], 0) == [] and search(["alpha"], -1) == []


def test_terms_whose_postings_are_all_empty_find_nothing() -> None:
    empty = Postings.unpack(b"", b"", b"")
    gone = [TermPostings("gone", 0, [empty]), TermPostings("also", 0, [empty, empty])]
    assert top_chunks(gone, chunk_count=8, token_count=37, limit=5) == []


def test_an_empty_corpus_scores_without_dividing_by_zero() -> None:
    lone = TermPostings("x", 1, [Postings(np.array([7]), np.array([2]), np.array([3]))])
    [(chunk, score)] = top_chunks([lone], chunk_count=0, token_count=0, limit=5)
    assert chunk == 7 and math.isfinite(score) and score > 0
