"""BM25 with SQLite FTS5's formula, written out term by term: the reference every full-text
ranking in the suite is checked against."""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# FTS5's own constants (sqlite.org/fts5.html, "The bm25() function"), written here rather
# than imported from the product, so a changed product constant fails the tests.
BM25_K1 = 1.2
BM25_B = 0.75


def bm25_scores(chunks: Mapping[K, Sequence[str]], terms: Iterable[str]) -> dict[K, float]:
    """Scores of the chunks (index terms by key) that hold any of `terms`, by key."""
    n = len(chunks)
    avgdl = sum(map(len, chunks.values())) / n
    scores: dict[K, float] = {}
    for term in dict.fromkeys(terms):
        df = sum(term in tokens for tokens in chunks.values())
        idf = max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6)
        for key, tokens in chunks.items():
            if tf := list(tokens).count(term):
                norm = tf + BM25_K1 * (1 - BM25_B + BM25_B * len(tokens) / avgdl)
                scores[key] = scores.get(key, 0.0) + idf * tf * (BM25_K1 + 1) / norm
    return scores


def ranked(scores: Mapping[K, float], limit: int) -> list[K]:
    """Keys best first, ties to the lower key, as the service ranks chunk ids."""
    return sorted(scores, key=lambda k: (-scores[k], k))[:limit]
