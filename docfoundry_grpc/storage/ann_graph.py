"""An approximate nearest-neighbour graph (HNSW, from usearch) over a snapshot of vectors.

Why usearch: measured at 100k chunks of the bench corpus against hnswlib and faiss-cpu
(docs/benchmarks), it stores half-precision vectors (half the memory of float32, walked
faster), removes keys, saves and loads, and builds on several threads; faiss's HNSW cannot
remove, and hnswlib keeps float32 only.

A graph is never changed while it is searched: usearch documents concurrent search, but
not search beside add or remove from other threads (unum-cloud/usearch#441, #735). A
writer works on a copy (`extended`) and the owner swaps it in, as a search engine swaps in
a new segment: searches run lock-free over whichever graph they started with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
from usearch.index import Index

from ..config import AnnConfig
from ..models import Vector


class AnnGraph:
    """`config.ef_search` is fixed per graph (changing it under running searches is not
    documented as safe), so it is set for Hybrid's candidate window as well as for k: at
    300, on the bench's 100k real embeddings, recall was 0.96 at k = 10 and 0.90 at the
    window of 100 (at 200: 0.93 and 0.86)."""

    def __init__(self, dimension: int, config: AnnConfig, index: Index | None = None) -> None:
        self.dimension = dimension
        self.config = config
        self._index = index if index is not None else self._new_index()

    def _new_index(self) -> Index:
        return Index(
            ndim=self.dimension,
            metric="cos",
            dtype="f16",
            connectivity=self.config.connectivity,
            expansion_add=self.config.ef_construction,
            expansion_search=self.config.ef_search,
        )

    def __len__(self) -> int:
        return int(self._index.size)

    @property
    def memory_bytes(self) -> int:
        return int(self._index.memory_usage)

    def extended(
        self,
        ids: npt.NDArray[np.int64],
        vectors: Vector,
        *,
        removed: npt.NDArray[np.int64],
        keep_going: Callable[[], bool] = lambda: True,
    ) -> AnnGraph | None:
        """A new graph: this one's entries without `removed`, plus `ids` with `vectors`;
        None if `keep_going` turned false on the way (a server closing). This graph is only
        read, so searches may go on over it meanwhile."""
        copy = self._index.copy() if len(self) else self._new_index()
        if removed.size:
            copy.remove(removed)
        if not ids.size:
            return AnnGraph(self.dimension, self.config, copy)

        def progress(done: int, total: int) -> bool:
            return keep_going()

        # usearch checks a callback's annotations as types, not as the strings that
        # `from __future__ import annotations` leaves.
        progress.__annotations__ = {"done": int, "total": int, "return": bool}

        try:
            copy.add(
                ids,
                np.ascontiguousarray(vectors, dtype=np.float32),
                threads=self.config.threads,
                progress=progress,
            )
        except RuntimeError:  # usearch's "Operation has been terminated"
            if keep_going():
                raise
            return None
        return AnnGraph(self.dimension, self.config, copy)

    def search(self, query: Vector, count: int) -> npt.NDArray[np.int64]:
        """Ids of about the `count` nearest entries, nearest first."""
        if not len(self) or count <= 0:
            return np.empty(0, dtype=np.int64)
        found = self._index.search(np.asarray(query, dtype=np.float32), count, threads=1)
        return np.asarray(found.keys, dtype=np.int64)

    def save(self, path: Path) -> None:
        """Writes the graph to `path` at once (a temporary file renamed over it)."""
        partial = path.with_name(path.name + ".partial")
        self._index.save(str(partial))
        partial.replace(path)

    @classmethod
    def load(cls, path: Path, dimension: int, config: AnnConfig) -> AnnGraph:
        """A graph saved by `save`; ValueError if it was built for another dimension or
        with other build parameters (it would not be the graph this config builds)."""
        graph = cls(dimension, config)
        index = graph._index
        index.load(str(path))
        if index.ndim != dimension or index.connectivity != config.connectivity:
            raise ValueError(
                f"{path} holds a graph of {index.ndim} dimensions and connectivity "
                f"{index.connectivity}; this server builds {dimension} and "
                f"{config.connectivity}"
            )
        return graph  # its search breadth is this config's: a load keeps the constructor's

    def entries(self) -> tuple[npt.NDArray[np.int64], Vector]:
        """The ids the graph holds and their vectors (as stored: half precision)."""
        keys = np.asarray(self._index.keys, dtype=np.int64)
        if not keys.size:
            return keys, np.zeros((0, self.dimension), dtype=np.float32)
        found = self._index.get(keys, dtype="f32")
        rows = found if isinstance(found, tuple) else (found,)
        return keys, np.vstack([row for row in rows if row is not None]).astype(np.float32)
