"""One SQLite collection's in-memory indexes: its vectors, its BM25 postings, and which
document each chunk belongs to (for filters)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ...config import AnnConfig
from ...models import Collection, Vector
from ..posting_index import PostingIndex
from ..vector_index import VectorIndex
from ..vector_matrix import id_mask

# Bytes of admitted chunk ids kept for recent filters, all collections together (8 bytes
# a chunk id: a filter admitting 100k chunks takes 0.8 MB).
ADMITTED_CACHE_BYTES = 64 * 2**20
# Seconds without writes to a collection before its vector graph takes in the new rows and
# its posting backlog is folded (unless either has grown too large to wait).
QUIET_SECONDS = 1.0


class CollectionIndex:
    """One collection's in-memory rankings: its own vectors and its own BM25 statistics,
    with each chunk's document, for filters.

    A filter is evaluated per document in SQL (a document's chunks share its metadata and
    path, and there are several chunks per document), then mapped to chunk ids here. The
    adapter keeps the result until the collection's next write (its `generation`), as a
    search engine keeps a filter's bitset: repeated filters (a tenant, a product, a
    version) then cost nothing to apply.
    """

    def __init__(
        self,
        collection: Collection,
        ann: AnnConfig | None,
        *,
        start_fold: Callable[[CollectionIndex], None],
        start_graph: Callable[[CollectionIndex], None],
    ) -> None:
        self.collection = collection
        self.vectors = VectorIndex(collection.dimension, ann)
        self.postings = PostingIndex()
        self.document_of = np.zeros(1024, dtype=np.int64)  # by chunk id
        self.compacting = False  # a vector compaction is running in a thread
        self.building = False  # an approximate graph is being built in a thread
        # A posting fold, and a graph build, once the collection's writes pause (a bulk
        # load keeps its CPU), or at once when urgent: a fold when the backlog outgrows
        # what searches should merge, a build when the rows waiting reach the graph's own
        # size (twice the threshold before the first), which bounds what searches scan
        # exactly meanwhile.
        self.fold_start = QuietStart(
            due=self.postings.due,
            urgent=lambda: self.postings.urgent,
            start=functools.partial(start_fold, self),
            quiet_seconds=QUIET_SECONDS,
        )
        self.graph_start = QuietStart(
            due=lambda: not self.building and self.vectors.graph_due,
            urgent=lambda: self.vectors.graph_urgent,
            start=functools.partial(start_graph, self),
            quiet_seconds=QUIET_SECONDS,
        )
        self.generation = 0  # bumped by every committed write to the collection

    def add(
        self, chunk_ids: Sequence[int], document_ids: Sequence[int] | int, vectors: Vector
    ) -> None:
        """Adds chunks with their vectors and their document (one for all, or one each)."""
        self.vectors.add(chunk_ids, vectors)
        if chunk_ids:
            top = max(chunk_ids)
            if top >= len(self.document_of):
                grown = np.zeros(max(top + 1, 2 * len(self.document_of)), dtype=np.int64)
                grown[: len(self.document_of)] = self.document_of
                self.document_of = grown
            self.document_of[list(chunk_ids)] = document_ids

    def chunks_of(self, document_ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Ids of the live chunks of these documents."""
        live = self.vectors.live_ids()
        return live[id_mask(document_ids, self.document_of[live])]


class QuietStart:
    """Background work that waits for a pause in writes: each write pokes it, re-arming a
    wait of `quiet_seconds`, and it starts once the wait runs out, or at the poke itself
    when `urgent` says it cannot wait (what it would catch up on has grown too large).
    `due` says whether there is work at all; `start` begins it (without awaiting it)."""

    def __init__(
        self,
        *,
        due: Callable[[], bool],
        urgent: Callable[[], bool],
        start: Callable[[], None],
        quiet_seconds: float,
    ) -> None:
        self._due, self._urgent, self._start = due, urgent, start
        self._quiet_seconds = quiet_seconds
        self._timer: asyncio.TimerHandle | None = None

    def poke(self, *, now: bool = False) -> None:
        self.cancel()
        if not self._due():
            return
        if now or self._urgent():
            self._start()
            return
        later = functools.partial(self.poke, now=True)
        self._timer = asyncio.get_running_loop().call_later(self._quiet_seconds, later)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def forget(index: CollectionIndex, removed: dict[int, list[str]]) -> None:
    index.generation += 1
    index.vectors.remove(list(removed))
    for chunk_id, tokens in removed.items():
        index.postings.remove(chunk_id, tokens)
