"""BM25 over packed posting lists, scored in numpy.

An OR query of a few common terms touches a large share of the corpus: at 100k chunks a
typical question reads ~10^5 postings. Summing those row by row in SQL (a scan plus a hash
aggregate) costs tens of milliseconds; the same sum over packed arrays is a bincount. So
storage keeps each term's postings packed (chunk ids, term frequencies, chunk lengths as
big-endian integers, the layout of PostgreSQL's int8send/int4send) and hands them here.

Most of those postings belong to the commonest terms, which weigh least. Ranking follows
MaxScore (Turtle & Flood, 1995): a cheap lower bound on the limit-th best score decides
which light lists cannot lift a chunk into the results alone; only the heavier lists are
summed in full, and the light ones are looked up (binary search) for the chunks that can
still make it, so a query over common terms reads a small share of their postings.

The formula is SQLite FTS5's bm25(), which both backends report:
idf = max(ln((N - df + 0.5) / (df + 0.5)), 1e-6), k1 = 1.2, b = 0.75.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BM25_K1 = 1.2
BM25_B = 0.75

IDS = np.dtype(">i8")
COUNTS = np.dtype(">i4")

# Postings filling less than 1/SPARSE_RATIO of their id range are summed after a sort
# rather than over the whole range.
SPARSE_RATIO = 16

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Postings:
    """One term's postings: parallel arrays, one entry per chunk holding the term."""

    chunk_ids: npt.NDArray[np.integer]
    tfs: npt.NDArray[np.integer]
    dls: npt.NDArray[np.integer]

    @classmethod
    def unpack(cls, chunk_ids: bytes, tfs: bytes, dls: bytes) -> Postings:
        return cls(
            np.frombuffer(chunk_ids, dtype=IDS),
            np.frombuffer(tfs, dtype=COUNTS),
            np.frombuffer(dls, dtype=COUNTS),
        )

    def pack(self) -> tuple[bytes, bytes, bytes]:
        return (
            np.asarray(self.chunk_ids, dtype=IDS).tobytes(),
            np.asarray(self.tfs, dtype=COUNTS).tobytes(),
            np.asarray(self.dls, dtype=COUNTS).tobytes(),
        )


@dataclass(frozen=True)
class TermPostings:
    """A query term with its document frequency and its postings, possibly in parts (a
    compacted segment plus the rows written since)."""

    term: str
    df: int
    parts: Sequence[Postings]


def idf(chunk_count: int, df: int) -> float:
    ratio = (chunk_count - df + 0.5) / (df + 0.5)
    return max(math.log(ratio), 1e-6) if ratio > 0 else 1e-6


def top_chunks(
    terms: Iterable[TermPostings],
    *,
    chunk_count: int,
    token_count: int,
    limit: int,
    exclude: Sequence[int] | I64 = (),
) -> list[tuple[int, float]]:
    """The `limit` best (chunk id, score) pairs, best first, ties broken by lower id.

    Each part's chunk ids must ascend. `exclude` lists chunks whose postings are still
    packed but which no longer exist.
    """
    avgdl = max(token_count / chunk_count, 1e-9) if chunk_count else 1e-9
    scoring = _Scoring(BM25_K1 * (1 - BM25_B), BM25_K1 * BM25_B / avgdl)
    # Heaviest first, in one order whatever the caller's: each chunk's score is then summed
    # in the same order however many light lists are skipped, so results do not depend on
    # `limit` or the backend even in the last bit.
    lists = sorted(
        (
            _List(term.term, idf(chunk_count, term.df) * (BM25_K1 + 1), part)
            for term in terms
            for part in term.parts
            if len(part.chunk_ids)
        ),
        key=lambda scored: (-scored.weight, scored.term),
    )
    if not lists or limit <= 0:
        return []
    dead = np.asarray(exclude, dtype=np.int64)
    # Slack for rounding: a bound a few ulps high must not drop a chunk tied at the limit.
    threshold = _seed_threshold(lists, limit, dead, scoring) * (1 - 1e-9)
    read = len(lists) - _skippable(lists, threshold)
    ids, totals = _sum_over_range(lists[:read], dead, scoring)
    # A chunk can still gain less than the weights of the lists not yet added: drop those
    # that cannot reach the threshold even so, before each lookup.
    for position in range(read, len(lists) + 1):
        unread = sum(scored.weight for scored in lists[position:]) * (1 + 1e-9)
        reachable = totals >= threshold - unread
        ids, totals = ids[reachable], totals[reachable]
        if position < len(lists):
            scoring.add_found(lists[position], ids, totals)
    return _ranked(ids, totals, limit)


@dataclass(frozen=True)
class _List:
    """One part of a term's postings with the term's weight idf·(k1 + 1), which bounds every
    contribution in it from above: tf / (tf + k1·(1 − b + b·dl/avgdl)) < 1."""

    term: str
    weight: float
    postings: Postings


@dataclass(frozen=True)
class _Scoring:
    c0: float  # k1·(1 − b)
    c1: float  # k1·b / avgdl

    def contributions(self, scored: _List, at: npt.NDArray[np.intp] | slice = slice(None)) -> F64:
        """weight·tf / (tf + c0 + c1·dl) for the postings `at`, in place where it can:
        at 1M chunks each temporary is 10^5–10^6 numbers."""
        tf = scored.postings.tfs[at].astype(np.float64)
        norm = tf + self.c0
        norm += np.multiply(scored.postings.dls[at], self.c1, dtype=np.float64)
        contribution = np.multiply(tf, scored.weight, out=tf)
        contribution /= norm
        return contribution

    def add_found(self, scored: _List, ids: I64, totals: F64) -> None:
        """Adds the list's contribution to each of `ids` (ascending) that it holds."""
        haystack = scored.postings.chunk_ids
        if not haystack.dtype.isnative:
            haystack = haystack.astype(haystack.dtype.newbyteorder("="))
        # Needles in the haystack's own type, so numpy does not convert the haystack.
        inside = np.flatnonzero(ids <= haystack[-1])
        needles = ids[inside].astype(haystack.dtype)
        at = np.searchsorted(haystack, needles)
        found = haystack[at] == needles
        totals[inside[found]] += self.contributions(scored, at[found])


def _seed_threshold(lists: list[_List], limit: int, dead: I64, scoring: _Scoring) -> float:
    """A score at most the limit-th best, or 0 if none is cheap to find: the limit-th best
    full score among the chunks of the shortest lists that hold `limit` postings together
    (usually the rarest, heaviest terms'). The limit-th best of some chunks cannot beat the
    limit-th best of all."""
    seed: list[_List] = []
    for scored in sorted(lists, key=lambda s: len(s.postings.chunk_ids)):
        seed.append(scored)
        if sum(len(s.postings.chunk_ids) for s in seed) >= limit:
            break
    ids = np.unique(np.concatenate([s.postings.chunk_ids for s in seed], dtype=np.int64))
    if len(dead):
        ids = ids[~np.isin(ids, dead)]
    if len(ids) < limit:
        return 0.0
    totals = np.zeros(len(ids))
    for scored in lists:
        scoring.add_found(scored, ids, totals)
    return float(np.partition(totals, len(ids) - limit)[len(ids) - limit])


def _skippable(lists: list[_List], threshold: float) -> int:
    """How many of the lightest lists (last in `lists`) need not be read in full (MaxScore):
    a chunk found only in them scores below the sum of their weights, so while that sum
    stays under a score `limit` chunks reach, they are only looked up for the chunks of the
    other lists."""
    if threshold <= 0:
        return 0
    bounds = np.cumsum([scored.weight for scored in reversed(lists)])
    return min(int(np.searchsorted(bounds, threshold)), len(lists) - 1)


def _sum_over_range(lists: list[_List], dead: I64, scoring: _Scoring) -> tuple[I64, F64]:
    """Chunk ids (ascending, excluded ones left out) with their contributions over `lists`
    summed in list order: a bincount over the dense id range where postings fill a fair
    share of it, over the distinct ids (a sort) where they are sparse."""
    ids = np.concatenate([s.postings.chunk_ids for s in lists], dtype=np.int64)
    weights = np.concatenate([scoring.contributions(s) for s in lists])
    low, high = int(ids.min()), int(ids.max())
    if len(ids) * SPARSE_RATIO < high - low:
        matched, slots = np.unique(ids, return_inverse=True)
        totals = np.bincount(slots, weights=weights).astype(np.float64, copy=False)
        live = ~np.isin(matched, dead) if len(dead) else slice(None)
        return matched[live], totals[live]
    ids -= low
    totals = np.bincount(ids, weights=weights).astype(np.float64, copy=False)
    if len(dead):
        gone = dead - low
        totals[gone[(gone >= 0) & (gone < len(totals))]] = 0.0
    # Every posting contributes above 0, so 0 marks ids that match nothing or are excluded.
    hit = np.flatnonzero(totals)
    return hit + low, totals[hit]


def _ranked(ids: I64, totals: F64, limit: int) -> list[tuple[int, float]]:
    if len(ids) > limit:
        threshold = totals[np.argpartition(-totals, limit - 1)[:limit]].min()
        reaching = totals >= threshold  # ties at the limit-th score stay for the id order
        ids, totals = ids[reaching], totals[reaching]
    order = np.lexsort((ids, -totals))[:limit]
    return [(int(ids[i]), float(totals[i])) for i in order]
