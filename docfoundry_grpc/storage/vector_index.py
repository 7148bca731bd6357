"""The SQLite backend's vector search: exact below a size threshold, approximate above it.

An exact scan reads every vector per query, so its cost grows with the collection (13.7 ms
at 100k chunks on two cores, bound by memory bandwidth). Past `AnnConfig.threshold` live
chunks, a collection also gets an HNSW graph (storage/ann_graph.py), and a search asks the
graph for candidates, adds the rows the graph does not hold yet (the tail), and re-ranks
them all exactly in float32 from the matrix, so scores are those of the exact scan.

The graph is kept in step in the background, as postings are folded: writes only append to
the matrix (and so to the tail, which searches scan exactly), and once the tail is large
enough a thread builds the graph's next copy with the tail in it and the deleted chunks out,
and swaps it in. A server therefore starts searching at once, exactly, while its graph is
built over what it loaded.

Filters: a filter admitting at most `threshold` chunks is searched exactly over those
(cheaper than the graph, and never starved); a broader one asks the graph for enough
candidates to expect `limit` admitted ones, and falls back to exact if fewer come.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..config import AnnConfig
from ..models import Vector
from .ann_graph import AnnGraph
from .vector_matrix import VectorMatrix

log = logging.getLogger(__name__)

# The tail that makes a new copy of the graph worth its cost: this share of the graph's
# size, and never fewer rows than MIN_TAIL (a copy of a 100k graph takes tens of ms).
TAIL_SHARE = 0.05
MIN_TAIL = 2048
# Candidates asked of the graph, at most, for a broad filter.
MAX_CANDIDATES = 2000


class VectorIndex:
    def __init__(self, dimension: int, config: AnnConfig | None = None) -> None:
        self.config = config or AnnConfig()
        self.matrix = VectorMatrix(dimension)
        self.graph: AnnGraph | None = None
        self._building = threading.Lock()  # one graph build at a time
        self._stopping = False
        self._saved: AnnGraph | None = None  # the graph as last saved or restored

    def __len__(self) -> int:
        return len(self.matrix)

    def add(self, ids: Sequence[int], vectors: Vector) -> None:
        self.matrix.add(ids, vectors)

    def remove(self, ids: Sequence[int]) -> None:
        self.matrix.remove(ids)

    def live_ids(self) -> npt.NDArray[np.int64]:
        return self.matrix.live_ids()

    @property
    def approximate(self) -> bool:
        """Whether unfiltered searches go through the graph."""
        return self.graph is not None and len(self.matrix) >= self.config.threshold

    @property
    def graph_due(self) -> bool:
        """Whether a background build would pay: the collection crossed the threshold, or
        enough rows wait in the tail, or enough deleted ones in the graph."""
        threshold = self.config.threshold
        if threshold == 0 or self._stopping or self._building.locked():
            return False
        if self.graph is None:
            return len(self.matrix) >= threshold
        return self._tail_pays(self.graph)

    @property
    def backlog(self) -> int:
        """Chunks the graph lacks (searched exactly) and deleted ones it still holds; 0
        while the collection is below the threshold."""
        if self.config.threshold == 0 or len(self.matrix) < self.config.threshold:
            return 0
        return self._waiting

    @property
    def graph_urgent(self) -> bool:
        """A build is due and should not wait for writes to pause: the rows waiting for it
        (searched exactly) reach the graph's own size, or twice the threshold before the
        first."""
        if not self.graph_due:
            return False
        return self._waiting >= max(2 * self.config.threshold, len(self.graph or ()))

    @property
    def _waiting(self) -> int:
        """Rows a build would take in, and deleted rows it would drop."""
        return self.matrix.unindexed_count + self.matrix.dropped_count

    def _tail_pays(self, graph: AnnGraph) -> bool:
        """Whether the rows waiting make a new copy of `graph` worth its cost."""
        return self._waiting >= max(MIN_TAIL, TAIL_SHARE * len(graph))

    def build_graph(self) -> None:
        """Builds the graph's next copy and swaps it in (in a thread; searches go on).
        Repeats while writes made during a build leave another one due."""
        with self._building:
            while True:
                ids, vectors, dropped = self.matrix.unindexed()
                if ids.size == 0 and dropped.size == 0:
                    return
                base = self.graph or AnnGraph(self.matrix.dimension, self.config)
                graph = base.extended(ids, vectors, removed=dropped, keep_going=self._going)
                if graph is None:
                    return
                self.graph = graph  # first the graph, then the flags: no row is in neither
                self.matrix.mark_indexed(ids, dropped)
                if not self._tail_pays(graph):
                    return

    def save(self, path: Path) -> None:
        """Keeps the graph for the next start (none: any earlier file goes)."""
        graph = self.graph
        if graph is None:
            path.unlink(missing_ok=True)
        elif graph is not self._saved:
            graph.save(path)
        self._saved = graph

    def restore(self, path: Path) -> int:
        """Takes up a graph `save` left, for the rows loaded since: rows it holds with the
        same vector count as indexed, the rest of its entries are dropped at the next
        build, and rows it lacks are the tail. Whatever happened since it was saved (a
        crash, writes by `docfoundry` tools, a restore), searches stay right; an unusable
        file is logged and replaced by a build. Returns the rows taken up."""
        if not path.exists():
            return 0
        try:
            graph = AnnGraph.load(path, self.matrix.dimension, self.config)
            ids, vectors = graph.entries()
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("ignoring the saved vector graph %s (%s); building a new one", path, exc)
            return 0
        held = self.matrix.adopt(ids, vectors)
        self.graph = self._saved = graph
        return held

    def stop(self) -> None:
        """Stops a build under way (at its next vector), for a server that is closing."""
        self._stopping = True

    def _going(self) -> bool:
        return not self._stopping

    def search(
        self, query: Vector, *, limit: int, only: npt.NDArray[np.int64] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of about the `limit` nearest live chunks, nearest
        first; with `only`, among those chunk ids alone."""
        graph = self.graph
        live = len(self.matrix)
        if graph is None or not self.approximate or limit <= 0:
            return self.matrix.search(query, limit=limit, only=only)
        if only is not None and only.size <= self.config.threshold:
            return self.matrix.search(query, limit=limit, only=only)
        share = 1.0 if only is None else min(1.0, only.size / max(1, live))
        # Twice the limit: the graph ranks by half-precision distances, so near ties at the
        # edge are settled by the float32 scores; and deleted chunks the graph still holds
        # may take places among the nearest.
        wanted = math.ceil(2 * limit / share) + min(self.matrix.dropped_count, limit)
        candidates = graph.search(query, min(wanted, MAX_CANDIDATES, len(graph)))
        nearest = self.matrix.rerank(query, candidates, limit=limit, only=only)
        if len(nearest) < limit and (only is not None or len(nearest) < live):
            return self.matrix.search(query, limit=limit, only=only)
        return nearest

    @property
    def compaction_due(self) -> bool:
        return self.matrix.compaction_due

    def compact(self) -> None:
        self.matrix.compact()
