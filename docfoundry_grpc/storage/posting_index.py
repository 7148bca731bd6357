"""In-memory packed postings: the SQLite backend's full-text ranking.

FTS5 keeps the index terms on disk, but its bm25() scores one matching row at a time, which
costs ~44 ms for a typical OR query at 100k chunks. The same postings packed per term and
scored by `..bm25` take a few milliseconds. So, as `VectorMatrix` does for vectors, the
adapter loads them at open (from the FTS5 table, which stays the persisted copy and serves
path-filtered queries) and applies each committed write.

Chunks written since the last rebuild sit in a small per-term tail and deleted ones in a
set; a rebuild folds both into the packed arrays of the terms they touch once they reach a
share of the index, so a write costs O(its postings) and a query stays one pass over arrays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from ..bm25 import Postings, TermPostings, top_chunks

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

# Fold the tail in once it reaches this share of the packed postings, and the deletions
# once they reach this share of the chunks.
REBUILD_SHARE = 0.05
REBUILD_MIN_POSTINGS = 20_000


class PostingIndex:
    def __init__(self) -> None:
        self._packed: dict[str, tuple[I64, I32]] = {}  # term -> (chunk ids, tfs), by id
        self._packed_size = 0
        self._tail: dict[str, tuple[list[int], list[int]]] = {}
        self._tail_size = 0
        self._tail_chunks = 0
        self._deleted: set[int] = set()
        self._deleted_array: I64 | None = None
        self._stale: set[str] = set()  # packed terms holding a deleted chunk
        self._df: Counter[str] = Counter()
        self._dl = np.zeros(1024, dtype=np.int32)  # index terms per chunk, by chunk id
        self.chunk_count = 0
        self.token_count = 0

    @classmethod
    def build(cls, chunks: Iterable[tuple[int, Sequence[str]]]) -> PostingIndex:
        """Packs (chunk id, index terms) pairs in one sort instead of one write each."""
        index = cls()
        vocabulary: dict[str, int] = {}
        codes: list[int] = []
        chunk_ids: list[int] = []
        lengths: list[int] = []
        for chunk_id, tokens in chunks:
            codes.extend(vocabulary.setdefault(t, len(vocabulary)) for t in tokens)
            chunk_ids.append(chunk_id)
            lengths.append(len(tokens))
        if not chunk_ids:
            return index
        ids = np.asarray(chunk_ids, dtype=np.int64)
        index._grow(int(ids.max()))
        index._dl[ids] = lengths
        index.chunk_count, index.token_count = len(ids), sum(lengths)
        keys = (np.asarray(codes, dtype=np.int64) << 32) | np.repeat(ids, lengths)
        keys, tfs = np.unique(keys, return_counts=True)
        terms = list(vocabulary)
        runs = np.flatnonzero(np.diff(keys >> 32)) + 1
        for run_keys, run_tfs in zip(np.split(keys, runs), np.split(tfs, runs), strict=True):
            term = terms[int(run_keys[0] >> 32)]
            index._packed[term] = (run_keys & 0xFFFFFFFF, run_tfs.astype(np.int32))
            index._df[term] = len(run_keys)
        index._packed_size = len(keys)
        return index

    def add(self, chunk_id: int, tokens: Sequence[str]) -> None:
        self._grow(chunk_id)
        self._dl[chunk_id] = len(tokens)
        for term, tf in Counter(tokens).items():
            ids, tfs = self._tail.setdefault(term, ([], []))
            ids.append(chunk_id)
            tfs.append(tf)
            self._df[term] += 1
            self._tail_size += 1
        self._tail_chunks += 1
        self.chunk_count += 1
        self.token_count += len(tokens)

    def remove(self, chunk_id: int, tokens: Sequence[str]) -> None:
        """Forgets a chunk; `tokens` are the index terms it was added with."""
        for term in set(tokens):
            self._df[term] -= 1
            if self._df[term] <= 0:
                del self._df[term]
            if term in self._packed:
                self._stale.add(term)
        self._deleted.add(chunk_id)
        self._deleted_array = None
        self.chunk_count -= 1
        self.token_count -= len(tokens)

    @property
    def backlog_chunks(self) -> int:
        """Chunks added or removed since the last rebuild."""
        return self._tail_chunks + len(self._deleted)

    def search(
        self, terms: Sequence[str], limit: int, *, only: I64 | None = None
    ) -> list[tuple[int, float]]:
        """The best (chunk id, BM25 score) pairs, as `bm25.top_chunks` ranks them; with
        `only`, among those chunk ids alone."""
        found = [
            TermPostings(term, self._df[term], self._parts(term))
            for term in dict.fromkeys(terms)
            if self._df.get(term, 0) > 0
        ]
        if self._deleted_array is None:
            self._deleted_array = np.fromiter(self._deleted, dtype=np.int64)
        return top_chunks(
            found,
            chunk_count=self.chunk_count,
            token_count=self.token_count,
            limit=limit,
            exclude=self._deleted_array,
            only=only,
        )

    def _parts(self, term: str) -> list[Postings]:
        parts = []
        if term in self._packed:
            ids, tfs = self._packed[term]
            parts.append(Postings(ids, tfs, self._dl[ids]))
        if term in self._tail:
            tail_ids = np.asarray(self._tail[term][0], dtype=np.int64)
            parts.append(Postings(tail_ids, np.asarray(self._tail[term][1]), self._dl[tail_ids]))
        return parts

    def rebuild_if_due(self) -> bool:
        tail_due = self._tail_size >= max(REBUILD_MIN_POSTINGS, REBUILD_SHARE * self._packed_size)
        if not tail_due and len(self._deleted) < REBUILD_SHARE * max(self.chunk_count, 1000):
            return False
        self.rebuild()
        return True

    def rebuild(self) -> None:
        """Folds the tail into the packed arrays and drops deleted chunks from them."""
        deleted = np.fromiter(self._deleted, dtype=np.int64)
        for term in self._stale | self._tail.keys():
            ids, tfs = self._packed.pop(term, (np.zeros(0, np.int64), np.zeros(0, np.int32)))
            self._packed_size -= len(ids)
            tail_ids, tail_tfs = self._tail.get(term, ([], []))
            ids = np.concatenate([ids, np.asarray(tail_ids, dtype=np.int64)])
            tfs = np.concatenate([tfs, np.asarray(tail_tfs, dtype=np.int32)])
            live = ~np.isin(ids, deleted)
            if live.any():
                self._packed[term] = (ids[live], tfs[live])
                self._packed_size += int(live.sum())
        self._tail.clear()
        self._tail_size = 0
        self._tail_chunks = 0
        self._deleted.clear()
        self._deleted_array = None
        self._stale.clear()

    def _grow(self, chunk_id: int) -> None:
        if chunk_id >= len(self._dl):
            grown = np.zeros(max(chunk_id + 1, 2 * len(self._dl)), dtype=np.int32)
            grown[: len(self._dl)] = self._dl
            self._dl = grown
