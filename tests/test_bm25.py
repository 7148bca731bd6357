"""BM25 over packed postings (the domain half of PostgreSQL's full-text search), checked
against the formula written out term by term."""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import pytest

from docfoundry_grpc.bm25 import BM25_B, BM25_K1, Postings, TermPostings, top_chunks

from .bm25_reference import ranked


def reference(terms: list[TermPostings], chunk_count: int, token_count: int) -> dict[int, float]:
    avgdl = token_count / chunk_count
    scores: dict[int, float] = {}
    for term in terms:
        idf = max(math.log((chunk_count - term.df + 0.5) / (term.df + 0.5)), 1e-6)
        for part in term.parts:
            for chunk_id, tf, dl in zip(part.chunk_ids, part.tfs, part.dls, strict=True):
                norm = tf + BM25_K1 * (1 - BM25_B + BM25_B * dl / avgdl)
                scores[int(chunk_id)] = scores.get(int(chunk_id), 0.0) + idf * tf * 2.2 / norm
    return scores


def random_terms(rng: np.random.Generator, chunk_count: int) -> list[TermPostings]:
    """Terms from rare to common, each split at a random point into two packed parts."""
    terms = []
    for n, df in enumerate((3, 40, 300, 1500)):
        ids = np.sort(rng.choice(np.arange(1000, 1000 + chunk_count), size=df, replace=False))
        tfs = rng.integers(1, 5, size=df)
        dls = rng.integers(5, 120, size=df)
        cut = int(rng.integers(0, df + 1))
        parts = [
            Postings.unpack(*Postings(ids[a:b], tfs[a:b], dls[a:b]).pack())
            for a, b in ((0, cut), (cut, df))
        ]
        terms.append(TermPostings(f"t{n}", df, parts))
    return terms


@pytest.mark.parametrize("seed", range(5))
def test_top_chunks_match_the_formula(seed: int) -> None:
    rng = np.random.default_rng(seed)
    terms = random_terms(rng, 3000)
    expected = reference(terms, 3000, 3000 * 60)
    found = top_chunks(terms, chunk_count=3000, token_count=3000 * 60, limit=25)
    assert [i for i, _ in found] == ranked(expected, 25)
    assert [s for _, s in found] == pytest.approx([expected[i] for i, _ in found], rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_any_limit_gives_the_head_of_the_full_ranking(seed: int) -> None:
    """Limits below, at and above the posting list lengths, so the cheap bound on the
    limit-th score comes from different lists or is not used at all; the excluded chunks
    are the best ones, which sit in the rarest term's list the bound samples."""
    rng = np.random.default_rng(100 + seed)
    terms = random_terms(rng, 3000)
    expected = reference(terms, 3000, 3000 * 60)
    dead = ranked(expected, 5)[::2]

    def best(limit: int) -> list[tuple[int, float]]:
        return top_chunks(terms, chunk_count=3000, token_count=180000, limit=limit, exclude=dead)

    everything = best(10**6)
    alive = {k: v for k, v in expected.items() if k not in dead}
    assert dict(everything) == pytest.approx(alive, rel=1e-12)
    for limit in (1, 2, 10, 40, 300, 1700, 5000):
        assert best(limit) == everything[:limit]


@pytest.mark.parametrize("seed", range(40))
def test_the_bound_holds_when_no_term_dominates(seed: int) -> None:
    """Terms of similar frequency over a small id range: the list the bound samples holds
    only some of the best chunks, so a bound above the limit-th score would drop one."""
    rng = np.random.default_rng(seed)
    terms = []
    for n in range(4):
        df = int(rng.integers(12, 40))
        ids = np.sort(rng.choice(np.arange(60), size=df, replace=False))
        postings = Postings(ids, rng.integers(1, 9, size=df), rng.integers(5, 200, size=df))
        terms.append(TermPostings(f"t{n}", df, [postings]))

    def best(limit: int) -> list[tuple[int, float]]:
        return top_chunks(terms, chunk_count=60, token_count=60 * 80, limit=limit)

    everything = best(100)
    for limit in range(1, 45):
        assert best(limit) == everything[:limit]


def test_ties_at_the_limit_reach_beyond_the_list_the_bound_comes_from() -> None:
    """Thirty chunks with the same score: the shortest list holds the highest ids, and the
    lowest ids, from the other list, must still win the ties."""
    flat = np.full(10, 2), np.full(10, 30)
    rare = Postings(np.arange(20, 30), *flat)
    common = Postings(np.arange(0, 20), np.full(20, 2), np.full(20, 30))
    terms = [TermPostings("a", 10, [rare]), TermPostings("b", 10, [common])]
    found = top_chunks(terms, chunk_count=100, token_count=3000, limit=10)
    assert [i for i, _ in found] == list(range(10))
    assert len({s for _, s in found}) == 1


def test_ties_go_to_the_lower_chunk_id_even_at_the_limit() -> None:
    same = Postings(np.array([9, 4, 7]), np.array([2, 2, 2]), np.array([30, 30, 30]))
    terms = [TermPostings("a", 3, [same])]
    assert [i for i, _ in top_chunks(terms, chunk_count=50, token_count=1500, limit=2)] == [4, 7]


def test_excluded_chunks_and_empty_parts_are_skipped() -> None:
    rng = np.random.default_rng(11)
    terms = random_terms(rng, 2000)
    expected = reference(terms, 2000, 2000 * 60)
    best = ranked(expected, 3)
    empty = Postings.unpack(b"", b"", b"")
    terms.append(TermPostings("gone", 0, [empty]))
    found = top_chunks(terms, chunk_count=2000, token_count=120000, limit=3, exclude=best[:2])
    assert [i for i, _ in found] == ranked(
        {k: v for k, v in expected.items() if k not in best[:2]}, 3
    )
    assert top_chunks([], chunk_count=2000, token_count=120000, limit=3) == []
    assert top_chunks(terms, chunk_count=2000, token_count=120000, limit=0) == []


def test_fewer_matches_than_the_limit_returns_them_all() -> None:
    one = Postings(np.array([5, 6]), np.array([1, 3]), np.array([10, 10]))
    found = top_chunks([TermPostings("a", 2, [one])], chunk_count=10, token_count=100, limit=10)
    assert [i for i, _ in found] == [6, 5]


def test_packed_layout_is_postgresql_int8send_and_int4send() -> None:
    """Big-endian int64 ids and int32 counts, as `string_agg(int8send(...))` builds them."""
    packed = Postings(np.array([1, 2**40]), np.array([3, 1]), np.array([70000, 2])).pack()
    assert packed == (
        struct.pack(">qq", 1, 2**40),
        struct.pack(">ii", 3, 1),
        struct.pack(">ii", 70000, 2),
    )
    back = Postings.unpack(*packed)
    assert back.chunk_ids.tolist() == [1, 2**40] and back.dls.tolist() == [70000, 2]


async def test_large_queries_are_scored_in_a_thread_with_the_same_ranking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from docfoundry_grpc import bm25

    rng = np.random.default_rng(7)
    terms = [
        bm25.TermPostings(
            f"t{n}",
            1000,
            [
                bm25.Postings(
                    np.sort(rng.choice(20_000, 1000, replace=False)).astype(np.int64),
                    rng.integers(1, 5, 1000).astype(np.int32),
                    rng.integers(20, 200, 1000).astype(np.int32),
                )
            ],
        )
        for n in range(3)
    ]
    expected = bm25.top_chunks(terms, chunk_count=20_000, token_count=2_000_000, limit=10)
    where: list[int] = []
    original = bm25.top_chunks

    def recording(*args: Any, **kwargs: Any) -> list[tuple[int, float]]:
        where.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(bm25, "top_chunks", recording)

    async def ranked_off_loop() -> list[tuple[int, float]]:
        return await bm25.top_chunks_off_loop(
            terms, chunk_count=20_000, token_count=2_000_000, limit=10
        )

    assert await ranked_off_loop() == expected  # 3,000 postings: below the threshold
    monkeypatch.setattr(bm25, "THREAD_MIN_POSTINGS", 2_000)
    assert await ranked_off_loop() == expected
    assert where[0] == threading.get_ident() != where[1]  # inline, then in a thread
