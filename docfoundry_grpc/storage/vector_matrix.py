"""An in-memory matrix of unit vectors for exact cosine search (the SQLite backend's index).

Rows are appended into spare capacity and deleted by tombstone, so a document replace costs
O(its chunks), not a copy of the whole matrix. A lock makes searches in worker threads safe
against writes from the event loop. Once half the rows are tombstones, `compact` (run in a
thread) copies the live rows into new arrays without the lock, and holds it only to take in
the rows written meanwhile and swap: searches and writes never wait for the copy.

Each row also says whether an approximate graph (storage/vector_index.py) holds it: rows
not yet in the graph are the exact tail of an approximate search, and rows deleted after
the graph took them are collected for its next copy to drop.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from itertools import repeat
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from ..models import Vector

_A = TypeVar("_A", bound=npt.NDArray[Any])


class VectorMatrix:
    def __init__(self, dimension: int, *, capacity: int = 1024) -> None:
        self.dimension = dimension
        self._vectors = np.zeros((capacity, dimension), dtype=np.float32)
        self._ids = np.zeros(capacity, dtype=np.int64)
        self._live = np.zeros(capacity, dtype=bool)
        self._indexed = np.zeros(capacity, dtype=bool)  # the graph holds the row
        self._dropped: set[int] = set()  # ids deleted after the graph took them
        self._row_of: dict[int, int] = {}
        self._size = 0
        self._lock = threading.Lock()
        # The live rows the graph lacks, as every approximate search reads them: finding
        # them scans the whole matrix (about 60 µs at 100k rows), so they are kept until
        # the next change to the rows. None: to be found again.
        self._tail_rows: npt.NDArray[np.intp] | None = None

    def __len__(self) -> int:
        return len(self._row_of)

    def add(self, ids: Sequence[int], vectors: Vector) -> None:
        with self._lock:
            self._reserve(len(ids))
            rows = slice(self._size, self._size + len(ids))
            self._vectors[rows] = vectors
            self._ids[rows] = ids
            self._live[rows] = True
            self._indexed[rows] = False
            for offset, chunk_id in enumerate(ids):
                self._row_of[chunk_id] = self._size + offset
            self._size += len(ids)
            self._tail_rows = None

    def remove(self, ids: Sequence[int]) -> None:
        with self._lock:
            self._tail_rows = None
            for chunk_id in ids:
                row = self._row_of.pop(chunk_id, None)
                if row is not None:
                    self._live[row] = False
                    if self._indexed[row]:
                        self._dropped.add(chunk_id)

    @property
    def compaction_due(self) -> bool:
        """Half the rows or more are tombstones (and the matrix is not tiny)."""
        return self._size > 1024 and len(self._row_of) < self._size // 2

    def live_ids(self) -> npt.NDArray[np.int64]:
        """Ids of the rows not removed."""
        with self._lock:
            return self._ids[: self._size][self._live[: self._size]].copy()

    def search(
        self, query: Vector, *, limit: int, only: npt.NDArray[np.int64] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the `limit` nearest live rows, nearest first;
        with `only`, among those chunk ids alone (exact, so a filter never starves it, and
        only the admitted rows are scored: a selective filter makes a search cheaper)."""
        with self._lock:
            n = self._size
            ids = self._ids[:n]
            if only is None:
                rows = np.flatnonzero(self._live[:n])
                scores = (self._vectors[:n] @ query)[rows]
            else:
                rows = np.flatnonzero(self._live[:n] & id_mask(only, ids))
                scores = self._vectors[rows] @ query
            if rows.size == 0:
                return []
            # Ids are read under the lock: a compaction may move rows once it is released.
            top = _top_k(scores, limit)
            return [(int(ids[rows[t]]), float(scores[t])) for t in top]

    # The approximate graph's side ----------------------------------------------------------

    def _unindexed_rows(self) -> npt.NDArray[np.intp]:
        """The live rows the graph lacks (under the lock)."""
        if self._tail_rows is None:
            n = self._size
            self._tail_rows = np.flatnonzero(self._live[:n] & ~self._indexed[:n])
        return self._tail_rows

    @property
    def unindexed_count(self) -> int:
        with self._lock:
            return int(self._unindexed_rows().size)

    @property
    def dropped_count(self) -> int:
        return len(self._dropped)

    def unindexed(self) -> tuple[npt.NDArray[np.int64], Vector, npt.NDArray[np.int64]]:
        """For the graph's next copy: ids and vectors of the live rows it lacks, and the ids
        it holds that were deleted since."""
        with self._lock:
            rows = self._unindexed_rows()
            dropped = np.fromiter(self._dropped, dtype=np.int64, count=len(self._dropped))
            return self._ids[rows].copy(), self._vectors[rows].copy(), dropped

    def mark_indexed(self, ids: npt.NDArray[np.int64], dropped: npt.NDArray[np.int64]) -> None:
        """A new graph holds `ids` and no longer `dropped`. An id of `ids` deleted while the
        graph was built is now in the graph, so it joins the ids to drop next time."""
        with self._lock:
            self._tail_rows = None
            self._dropped.difference_update(dropped.tolist())
            for chunk_id in ids.tolist():
                row = self._row_of.get(chunk_id)
                if row is None:
                    self._dropped.add(chunk_id)
                else:
                    self._indexed[row] = True

    def adopt(self, ids: npt.NDArray[np.int64], vectors: Vector) -> int:
        """Marks as indexed the rows a saved graph holds with the same vector (cosine at
        least 0.999: the graph stores half precision); every other id it holds (a chunk
        deleted, or its id reused, since it was saved) is to be dropped. Returns how many
        rows it holds."""
        with self._lock:
            self._tail_rows = None
            found = [self._row_of.get(i) for i in ids.tolist()]
            known = np.fromiter((r is not None for r in found), dtype=bool, count=len(found))
            rows = np.fromiter((r for r in found if r is not None), dtype=np.int64)
            same = np.einsum("ij,ij->i", self._vectors[rows], vectors[known]) >= 0.999
            self._indexed[rows[same]] = True
            held = np.flatnonzero(known)[same]
            stale = np.ones(len(ids), dtype=bool)
            stale[held] = False
            self._dropped.update(ids[stale].tolist())
            return int(held.size)

    def rerank(
        self,
        query: Vector,
        candidates: npt.NDArray[np.int64],
        *,
        limit: int,
        only: npt.NDArray[np.int64] | None = None,
    ) -> list[tuple[int, float]]:
        """The `limit` nearest among `candidates` (the graph's answer) and the rows the graph
        does not hold yet, scored exactly in float32: live rows only, and with `only`, the
        admitted ones only."""
        with self._lock:
            found = np.fromiter(  # each candidate's row, -1 if gone: dict lookups in C
                map(self._row_of.get, candidates.tolist(), repeat(-1)),
                dtype=np.int64,
                count=len(candidates),
            )
            rows = np.unique(np.concatenate([found[found >= 0], self._unindexed_rows()]))
            ids = self._ids[rows]
            if only is not None:
                keep = id_mask(only, ids)
                rows, ids = rows[keep], ids[keep]
            if rows.size == 0:
                return []
            scores = self._vectors[rows] @ query
            top = _top_k(scores, limit)
            return [(int(ids[t]), float(scores[t])) for t in top]

    def _reserve(self, extra: int) -> None:
        needed = self._size + extra
        if needed <= len(self._ids):
            return
        capacity = max(needed, 2 * len(self._ids))
        self._vectors = _grow(self._vectors, capacity)
        self._ids = _grow(self._ids, capacity)
        self._live = _grow(self._live, capacity)
        self._indexed = _grow(self._indexed, capacity)

    def compact(self) -> None:
        """Drops the tombstones; safe beside writes and searches (one compaction at a time).
        Rows below the size seen at the start never move or change until the swap (writes
        append above it, deletions only clear live flags), so they are copied unlocked."""
        with self._lock:
            seen, vectors, ids = self._size, self._vectors, self._ids
            keep = np.flatnonzero(self._live[:seen])
        capacity = max(1024, 2 * keep.size)
        new_vectors = np.zeros((capacity, self.dimension), dtype=np.float32)
        new_ids = np.zeros(capacity, dtype=np.int64)
        new_vectors[: keep.size] = vectors[keep]
        new_ids[: keep.size] = ids[keep]
        with self._lock:
            live = self._live[keep]  # rows deleted during the copy stay tombstones
            added = slice(seen, self._size)  # rows written during the copy come along
            count = keep.size + (self._size - seen)
            if count > capacity:
                new_vectors = _grow(new_vectors, 2 * count)
                new_ids = _grow(new_ids, 2 * count)
            new_vectors[keep.size : count] = self._vectors[added]
            new_ids[keep.size : count] = self._ids[added]
            new_live = np.zeros(len(new_ids), dtype=bool)
            new_live[: keep.size] = live
            new_live[keep.size : count] = self._live[added]
            new_indexed = np.zeros(len(new_ids), dtype=bool)
            new_indexed[: keep.size] = self._indexed[keep]
            new_indexed[keep.size : count] = self._indexed[added]
            self._vectors, self._ids, self._live, self._size = new_vectors, new_ids, new_live, count
            self._indexed = new_indexed
            self._tail_rows = None
            rows = np.flatnonzero(new_live[:count])
            self._row_of = dict(zip(new_ids[rows].tolist(), rows.tolist(), strict=True))


def id_mask(allowed: npt.NDArray[np.int64], ids: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """For each of `ids`, whether it is among `allowed`: a lookup table over the id range,
    linear in both, where np.isin would sort."""
    if ids.size == 0 or allowed.size == 0:
        return np.zeros(ids.size, dtype=bool)
    top = int(max(ids.max(), allowed.max())) + 1
    table = np.zeros(top, dtype=bool)
    table[allowed] = True
    return table[ids]


def _grow(array: _A, capacity: int) -> _A:
    grown = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    grown[: len(array)] = array
    return cast(_A, grown)


def _top_k(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    """Indices of the k largest scores, largest first (ties: lower index first)."""
    if k < scores.size:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(scores.size)
    return part[np.lexsort((part, -scores[part]))]
