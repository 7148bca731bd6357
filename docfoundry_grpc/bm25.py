"""BM25 over packed posting lists, scored in numpy.

An OR query of a few common terms touches a large share of the corpus: at 100k chunks a
typical question reads ~10^5 postings. Summing those row by row in SQL (a scan plus a hash
aggregate) costs tens of milliseconds; the same sum over packed arrays is a bincount. So
storage keeps each term's postings packed (chunk ids, term frequencies, chunk lengths as
big-endian integers, the layout of PostgreSQL's int8send/int4send) and hands them here.

The formula is SQLite FTS5's bm25(), which both backends report:
idf = max(ln((N - df + 0.5) / (df + 0.5)), 1e-6), k1 = 1.2, b = 0.75.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BM25_K1 = 1.2
BM25_B = 0.75

IDS = np.dtype(">i8")
COUNTS = np.dtype(">i4")

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


# Postings a query scores before its scoring goes to a thread: below it the thread hop
# (about 0.1 ms, and a GIL hand-off) costs more than the scoring holds the event loop.
THREAD_MIN_POSTINGS = 50_000


async def top_chunks_off_loop(
    terms: Sequence[TermPostings],
    *,
    chunk_count: int,
    token_count: int,
    limit: int,
    exclude: Sequence[int] | I64 = (),
    only: I64 | None = None,
) -> list[tuple[int, float]]:
    """`top_chunks`, in a thread when the query scores many postings: at 100k chunks and
    more, BM25 was a fifth to a third of the event loop's time. The inputs are arrays no
    write changes, so the thread needs no lock."""
    size = sum(len(p.chunk_ids) for t in terms for p in t.parts)
    options = {"chunk_count": chunk_count, "token_count": token_count, "limit": limit}
    if size < THREAD_MIN_POSTINGS:
        return top_chunks(terms, exclude=exclude, only=only, **options)
    return await asyncio.to_thread(
        functools.partial(top_chunks, terms, exclude=exclude, only=only, **options)
    )


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
    only: I64 | None = None,
) -> list[tuple[int, float]]:
    """The `limit` best (chunk id, score) pairs, best first, ties broken by lower id.

    `exclude` lists chunks whose postings are still packed but which no longer exist;
    `only`, if given, the chunks a filter admits (the others score nothing).
    """
    avgdl = max(token_count / chunk_count, 1e-9) if chunk_count else 1e-9
    c0, c1 = BM25_K1 * (1 - BM25_B), BM25_K1 * BM25_B / avgdl
    ids: list[npt.NDArray[np.integer]] = []
    contributions: list[F64] = []
    for term in terms:
        weight = idf(chunk_count, term.df) * (BM25_K1 + 1)
        for part in term.parts:
            if len(part.chunk_ids) == 0:
                continue
            # weight * tf / (tf + c0 + c1 * dl), in place: each temporary is 10^5 numbers.
            tf = part.tfs.astype(np.float64)
            norm = tf + c0
            norm += np.multiply(part.dls, c1, dtype=np.float64)
            contribution = np.multiply(tf, weight, out=tf)
            contribution /= norm
            ids.append(part.chunk_ids)
            contributions.append(contribution)
    if not ids or limit <= 0:
        return []
    return _best(ids, contributions, limit, exclude, only)


def _best(
    id_parts: list[npt.NDArray[np.integer]],
    contribution_parts: list[F64],
    limit: int,
    exclude: Sequence[int] | I64,
    only: I64 | None,
) -> list[tuple[int, float]]:
    """Sums contributions per chunk over a dense id range (a bincount, not a sort), zeroes
    the chunks excluded or not admitted, keeps
    the chunks that reach a cheap lower bound of the limit-th best score, and ranks those.
    Every matching chunk scores above 0, so 0 marks the ids in the range that match nothing."""
    ids = np.concatenate(id_parts, dtype=np.int64)
    low = int(ids.min())
    ids -= low
    weights = np.concatenate(contribution_parts)
    totals = np.bincount(ids, weights=weights).astype(np.float64, copy=False)
    if len(exclude):
        dead = np.asarray(exclude, dtype=np.int64) - low
        totals[dead[(dead >= 0) & (dead < len(totals))]] = 0.0
    if only is not None:
        admitted = np.zeros(len(totals), dtype=bool)
        kept = np.asarray(only, dtype=np.int64) - low
        admitted[kept[(kept >= 0) & (kept < len(totals))]] = True
        totals[~admitted] = 0.0
    bound = _lower_bound(totals, id_parts, low, limit)
    candidates = np.flatnonzero(totals >= bound if bound > 0 else totals)
    scores = totals[candidates]
    if len(candidates) > limit:
        threshold = scores[np.argpartition(-scores, limit - 1)[:limit]].min()
        reaching = scores >= threshold  # ties at the limit-th score stay for the id order
        candidates, scores = candidates[reaching], scores[reaching]
    order = np.lexsort((candidates, -scores))[:limit]
    return [(int(candidates[i]) + low, float(scores[i])) for i in order]


def _lower_bound(
    totals: F64, id_parts: list[npt.NDArray[np.integer]], low: int, limit: int
) -> float:
    """A score at most the limit-th best, or 0 if none is cheap to find.

    The limit-th best among any set of matching chunks cannot beat the limit-th best of
    all of them, so the chunks of the shortest posting list with at least `limit` entries
    (usually the rarest, highest-weighted term's) give a bound that lets a common-term query
    rank a few hundred chunks instead of partitioning the whole id range.
    """
    long_enough = [part for part in id_parts if len(part) >= limit]
    if not long_enough:
        return 0.0
    # Excluded chunks count as 0 here, which can only lower the bound.
    sample = totals[min(long_enough, key=len).astype(np.int64) - low]
    return float(np.partition(sample, len(sample) - limit)[len(sample) - limit])
