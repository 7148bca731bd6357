"""PostgreSQL full-text search over packed posting segments, and their compaction.

The layout is described in `sql`. Ranking is one round trip: every query term's
packed postings (segment plus tail) with the statistics. A packed segment never changes (a
compaction writes a new row with a new version), so the server keeps the hot ones decoded in
a `SegmentCache` and the database sends only those it does not hold: at 1M chunks a common
term's segment is megabytes, and shipping it would be most of a query's time.
Compaction runs in two transactions so that writers wait only while it drains the writes
in flight, never while it packs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np
import numpy.typing as npt
from cachetools import LRUCache

from ...bm25 import I64, Postings, TermPostings, top_chunks_off_loop
from ...models import CacheStats, ScoredId
from . import sql

log = logging.getLogger(__name__)

# Compact once the chunks written or deleted since the last build reach this share of the
# corpus (the tail's cost grows with it), or as soon as writes pause.
BACKLOG_SHARE = 0.1


@dataclass(frozen=True)
class Backlog:
    """Chunks whose postings are not packed yet (tail) or packed but deleted."""

    tail_chunks: int
    deleted_chunks: int
    chunk_count: int

    @property
    def size(self) -> int:
        return self.tail_chunks + self.deleted_chunks

    def due(self, previous: Backlog | None) -> bool:
        """Worth compacting: large against the corpus, or unchanged since the last look
        (writes have paused, so a build will not be outdated at once)."""
        if self.size == 0:
            return False
        return self.size >= BACKLOG_SHARE * self.chunk_count or self == previous


@dataclass(frozen=True)
class Compaction:
    terms: int
    packed_through: int
    seconds: float


class SegmentCache:
    """Decoded packed segments by term, least recently used out first, bounded in bytes.

    Entries are stored in the narrowest integer types that hold them (chunk length and term
    frequency usually fit 16 and 8 bits), so a posting costs ~7 bytes instead of 16.
    """

    def __init__(self, capacity_bytes: int) -> None:
        self._entries: LRUCache[str, tuple[int, Postings]] = LRUCache(
            maxsize=max(capacity_bytes, 1), getsizeof=lambda entry: _size(entry[1])
        )
        self._capacity = capacity_bytes
        self._hits = 0
        self._misses = 0

    def lookup(self, terms: Sequence[str]) -> dict[str, tuple[int, Postings]]:
        """The cached (version, postings) of each term that has an entry."""
        return {term: entry for term in terms if (entry := self._entries.get(term)) is not None}

    def store(self, term: str, version: int, postings: Postings) -> Postings:
        """Caches a fetched segment (unless it alone outgrows the cache); returns the copy."""
        if self._capacity == 0:
            return postings
        narrow = Postings(
            _narrowest(postings.chunk_ids), _narrowest(postings.tfs), _narrowest(postings.dls)
        )
        if _size(narrow) <= self._capacity:
            self._entries[term] = (version, narrow)
        return narrow

    def record(self, *, hit: bool) -> None:
        if hit:
            self._hits += 1
        else:
            self._misses += 1

    def stats(self) -> CacheStats:
        return CacheStats(self._hits, self._misses, int(self._entries.currsize), self._capacity)


def _size(postings: Postings) -> int:
    return postings.chunk_ids.nbytes + postings.tfs.nbytes + postings.dls.nbytes


def _narrowest(values: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
    """Values >= 0 in the smallest unsigned type that holds them (native byte order)."""
    top = int(values.max()) if len(values) else 0
    return values.astype(np.min_scalar_type(top))


def term_key(collection_id: int, term: str) -> str:
    """How a collection's term is stored: prefixed by the collection's id, so each
    collection has its own postings, document frequencies and packed segments. A term never
    holds ':' (text analysis keeps letters and digits only), so keys cannot collide. The
    default collection's terms stay bare: a database from before collections keeps its
    postings and segments as they are."""
    return term if collection_id == 1 else f"{collection_id}:{term}"


async def rank(
    db: asyncpg.Connection,
    terms: Sequence[str],
    limit: int,
    cache: SegmentCache,
    *,
    collection_id: int,
    only: I64 | None = None,
) -> list[ScoredId]:
    """The BM25 ranking of `terms` (bare, as analysed) in one collection; with `only`,
    among those chunk ids alone."""
    # One row, so one contribution, per distinct term.
    terms = list(dict.fromkeys(term_key(collection_id, t) for t in terms))
    # Held here, so an entry evicted by a concurrent query while this one waits still counts.
    cached = cache.lookup(terms)
    versions = [cached[term][0] if term in cached else 0 for term in terms]
    rows = await db.fetch(sql.TERM_POSTINGS, terms, versions, collection_id)
    if not rows:
        return []
    first = rows[0]
    return await top_chunks_off_loop(
        [_term_postings(row, cached, cache) for row in rows],  # the cache: on the loop
        chunk_count=int(first["chunk_count"]),
        token_count=int(first["token_count"]),
        limit=limit,
        exclude=first["deleted"],
        only=only,
    )


def _term_postings(
    row: asyncpg.Record, cached: dict[str, tuple[int, Postings]], cache: SegmentCache
) -> TermPostings:
    term, version = row["term"], row["segment_version"]
    parts = []
    if row["chunk_ids"] is not None:
        packed = Postings.unpack(row["chunk_ids"], row["tfs"], row["dls"])
        parts.append(cache.store(term, version, packed))
        cache.record(hit=False)
    elif version is not None:
        parts.append(cached[term][1])
        cache.record(hit=True)
    if row["tail_chunk_ids"] is not None:
        parts.append(Postings.unpack(row["tail_chunk_ids"], row["tail_tfs"], row["tail_dls"]))
    return TermPostings(term, int(row["df"]), parts)


async def backlog(db: asyncpg.Connection) -> Backlog:
    tail, deleted, chunk_count = await db.fetchrow(sql.SEGMENT_BACKLOG)
    return Backlog(int(tail), int(deleted), int(chunk_count))


async def compact(db: asyncpg.Connection) -> Compaction | None:
    """Packs every chunk written up to now; None if another server is compacting."""
    if not await db.fetchval(sql.COMPACTOR_LOCK):
        return None
    started = time.perf_counter()
    try:
        through, building = await start_build(db)
        async with db.transaction(isolation="repeatable_read"):
            terms = await pack(db, through, building)
    finally:
        await db.fetchval(sql.COMPACTOR_UNLOCK)
    result = Compaction(terms, building, time.perf_counter() - started)
    log.info(
        "packed postings of %d terms through chunk %d in %.2fs",
        result.terms,
        result.packed_through,
        result.seconds,
    )
    return result


async def start_build(db: asyncpg.Connection) -> tuple[int, int]:
    """Waits out the writes in flight and marks every chunk written so far as being packed;
    returns (packed through, to pack through)."""
    async with db.transaction():
        await db.execute(sql.DRAIN_WRITES)
        through, building = await db.fetchrow(sql.START_BUILD)
    return int(through), int(building)


async def pack(db: asyncpg.Connection, through: int, building: int) -> int:
    """Rebuilds the segments of the terms that lost chunks and appends the tail to the others,
    in the caller's REPEATABLE READ transaction; returns how many terms it packed."""
    last_tombstone = await db.fetchval(sql.LAST_TOMBSTONE)
    rebuilt = [r[0] for r in await db.fetch(sql.TOMBSTONED_TERMS)]
    await db.execute(sql.DROP_SEGMENTS, rebuilt)
    await db.execute(sql.BUILD_SEGMENTS, rebuilt, building)
    appended = await db.fetchval(sql.APPEND_SEGMENTS, through, building)
    await db.execute(sql.CLEAR_TOMBSTONES, last_tombstone)
    await db.execute(sql.FINISH_BUILD)
    return len(rebuilt) + int(appended)
