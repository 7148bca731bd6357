"""In-memory packed postings: the SQLite backend's full-text ranking.

FTS5 keeps the index terms on disk, but its bm25() scores one matching row at a time, which
costs ~44 ms for a typical OR query at 100k chunks. The same postings packed per term and
scored by `..bm25` take a few milliseconds. So, as `VectorMatrix` does for vectors, the
adapter loads them at open (from the FTS5 table, which stays the persisted copy and serves
path-filtered queries) and applies each committed write.

Chunks written since the last rebuild sit in a small per-term tail and deleted ones in a
set; a rebuild folds both into the packed arrays of the terms they touch once they reach a
share of the index, so a write costs O(its postings) and a query stays one pass over arrays.

A rebuild can take a second at 100k chunks, so the server folds in a thread: `freeze` starts
a new tail for later writes and captures what to fold, `Fold.compute` builds the new arrays
without touching anything the event loop changes, and `apply` swaps them in at once. Searches
meanwhile read the old arrays and every tail, and never wait.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..bm25 import Postings, TermPostings, top_chunks

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

# Fold the tail in once it reaches this share of the packed postings, and the deletions
# once they reach this share of the chunks.
REBUILD_SHARE = 0.05
REBUILD_MIN_POSTINGS = 20_000


# term -> (chunk ids, tfs, chunk lengths), by id. The lengths are stored beside the ids,
# as PostgreSQL's segments store them: gathering them from the per-chunk array at each query
# was a sixth of the event loop's time under 16 Hybrid callers at 100k chunks.
Packed = dict[str, tuple[I64, I32, I32]]


@dataclass
class _Tail:
    """Postings written since a rebuild began: term -> (chunk ids, tfs)."""

    postings: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)
    size: int = 0
    chunks: int = 0

    def arrays(self, term: str) -> tuple[I64, I32]:
        """`term`'s (chunk ids, tfs) in this tail, as arrays."""
        ids, tfs = self.postings[term]
        return np.asarray(ids, dtype=np.int64), np.asarray(tfs, dtype=np.int32)


@dataclass(frozen=True)
class Fold:
    """What one rebuild folds: the tails and deletions as they were at `freeze`."""

    packed: Packed  # the packed arrays at freeze; only `apply` replaces entries
    tails: tuple[_Tail, ...]
    deleted: frozenset[int]
    stale: frozenset[str]
    # Index terms per chunk id at freeze: the tails' chunks have theirs set already, and a
    # chunk's entry never changes (a replaced chunk gets a new id).
    lengths: I32

    def compute(self) -> dict[str, tuple[I64, I32, I32] | None]:
        """The new arrays of every term the fold touches (None: no live postings left).
        Reads only what no write changes after `freeze`, so it may run in a thread."""
        deleted = np.fromiter(self.deleted, dtype=np.int64, count=len(self.deleted))
        terms = set(self.stale).union(*(t.postings.keys() for t in self.tails))
        result: dict[str, tuple[I64, I32, I32] | None] = {}
        for term in terms:
            old = self.packed.get(term)
            parts = [old] if old is not None else []
            for tail in self.tails:
                if term in tail.postings:
                    tail_ids, tail_tfs = tail.arrays(term)
                    parts.append((tail_ids, tail_tfs, self.lengths[tail_ids]))
            if not parts:
                result[term] = None
                continue
            ids, tfs, dls = (np.concatenate(column) for column in zip(*parts, strict=True))
            if deleted.size:
                live = ~np.isin(ids, deleted)
                ids, tfs, dls = ids[live], tfs[live], dls[live]
            result[term] = (ids, tfs, dls) if ids.size else None
        return result


class PostingIndex:
    def __init__(self) -> None:
        self._packed: Packed = {}
        self._packed_size = 0
        # The last tail takes writes; earlier ones are being folded by a rebuild.
        self._tails: list[_Tail] = [_Tail()]
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
            run_ids = run_keys & 0xFFFFFFFF
            index._packed[term] = (run_ids, run_tfs.astype(np.int32), index._dl[run_ids])
            index._df[term] = len(run_keys)
        index._packed_size = len(keys)
        return index

    def add(self, chunk_id: int, tokens: Sequence[str]) -> None:
        self._grow(chunk_id)
        self._dl[chunk_id] = len(tokens)
        tail = self._tails[-1]
        postings = tail.postings
        counts = Counter(tokens)
        for term, tf in counts.items():  # the hot loop of an ingest: kept to plain lookups
            held = postings.get(term)
            if held is None:
                postings[term] = ([chunk_id], [tf])
            else:
                held[0].append(chunk_id)
                held[1].append(tf)
        self._df.update(counts.keys())  # one per distinct term, counted in C
        tail.size += len(counts)
        tail.chunks += 1
        self.chunk_count += 1
        self.token_count += len(tokens)

    def remove(self, chunk_id: int, tokens: Sequence[str]) -> None:
        """Forgets a chunk; `tokens` are the index terms it was added with."""
        folding = self._tails[:-1]
        for term in set(tokens):
            self._df[term] -= 1
            if self._df[term] <= 0:
                del self._df[term]
            # A term of packed postings, or of a tail a running rebuild is packing, will
            # hold this chunk in its arrays until the next rebuild drops it.
            if term in self._packed or any(term in t.postings for t in folding):
                self._stale.add(term)
        self._deleted.add(chunk_id)
        self._deleted_array = None
        self.chunk_count -= 1
        self.token_count -= len(tokens)

    @property
    def backlog_chunks(self) -> int:
        """Chunks added or removed since the last rebuild."""
        return sum(t.chunks for t in self._tails) + len(self._deleted)

    @property
    def packed_postings(self) -> int:
        """(term, chunk) pairs in the packed arrays, deleted chunks' until a rebuild."""
        return self._packed_size

    @property
    def folding(self) -> bool:
        """Whether a rebuild is between `freeze` and `apply`."""
        return len(self._tails) > 1

    def search(
        self, terms: Sequence[str], limit: int, *, only: I64 | None = None
    ) -> list[tuple[int, float]]:
        """The best (chunk id, BM25 score) pairs, as `bm25.top_chunks` ranks them; with
        `only`, among those chunk ids alone."""
        found, exclude = self.query(terms)
        return top_chunks(
            found,
            chunk_count=self.chunk_count,
            token_count=self.token_count,
            limit=limit,
            exclude=exclude,
            only=only,
        )

    def query(self, terms: Sequence[str]) -> tuple[list[TermPostings], I64]:
        """What scoring `terms` needs, as arrays no later write changes (packed arrays are
        replaced, never modified; the tails and lengths are copied), so that the scoring
        itself may run in a thread: the terms' postings, and the deleted chunk ids."""
        found = [
            TermPostings(term, self._df[term], self._parts(term))
            for term in dict.fromkeys(terms)
            if self._df.get(term, 0) > 0
        ]
        if self._deleted_array is None:
            self._deleted_array = np.fromiter(self._deleted, dtype=np.int64)
        return found, self._deleted_array

    def _parts(self, term: str) -> list[Postings]:
        parts = []
        if term in self._packed:
            parts.append(Postings(*self._packed[term]))
        for tail in self._tails:
            if term in tail.postings:
                tail_ids, tail_tfs = tail.arrays(term)
                parts.append(Postings(tail_ids, tail_tfs, self._dl[tail_ids]))
        return parts

    def due(self) -> bool:
        """Whether the backlog is large enough to fold (and no rebuild is running)."""
        if self.folding:
            return False
        tail_size = self._tails[-1].size
        tail_due = tail_size >= max(REBUILD_MIN_POSTINGS, REBUILD_SHARE * self._packed_size)
        return tail_due or len(self._deleted) >= REBUILD_SHARE * max(self.chunk_count, 1000)

    @property
    def urgent(self) -> bool:
        """A fold is due and should not wait for writes to pause: the tail has grown to the
        size of the packed postings (or the deletions to half the chunks), so queries read
        as much from lists as from arrays. Folding at each doubling keeps a bulk load's
        fold work to a few times its postings, where folding at every 5% copied each
        posting about twenty times."""
        if not self.due():
            return False
        tail_size = self._tails[-1].size
        return tail_size >= max(REBUILD_MIN_POSTINGS, self._packed_size) or len(
            self._deleted
        ) >= 0.5 * max(self.chunk_count, 1000)

    def rebuild_if_due(self) -> bool:
        if not self.due():
            return False
        self.rebuild()
        return True

    def rebuild(self) -> None:
        """Folds the tails into the packed arrays and drops deleted chunks, at once."""
        if self.folding:
            raise RuntimeError("a rebuild is already folding this index")
        fold = self.freeze()
        self.apply(fold, fold.compute())

    def freeze(self) -> Fold:
        """Starts a rebuild: later writes go to a new tail, later deletions and stale terms
        to the next rebuild."""
        fold = Fold(
            self._packed,
            tuple(self._tails),
            frozenset(self._deleted),
            frozenset(self._stale),
            self._dl,
        )
        self._tails.append(_Tail())
        self._stale = set()
        return fold

    def apply(self, fold: Fold, result: dict[str, tuple[I64, I32, I32] | None]) -> None:
        """Swaps a computed fold in; between freeze and apply nothing else may apply."""
        for term, arrays in result.items():
            old = self._packed.pop(term, None)
            self._packed_size -= 0 if old is None else len(old[0])
            if arrays is not None:
                self._packed[term] = arrays
                self._packed_size += len(arrays[0])
        self._tails = [t for t in self._tails if not any(t is f for f in fold.tails)]
        self._deleted -= fold.deleted
        self._deleted_array = None

    def _grow(self, chunk_id: int) -> None:
        if chunk_id >= len(self._dl):
            grown = np.zeros(max(chunk_id + 1, 2 * len(self._dl)), dtype=np.int32)
            grown[: len(self._dl)] = self._dl
            self._dl = grown
