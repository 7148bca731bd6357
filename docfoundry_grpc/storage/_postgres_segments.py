"""PostgreSQL full-text search over packed posting segments, and their compaction.

The layout is described in `_postgres_sql`. Ranking is one round trip: every query term's
packed postings (segment plus tail) with the statistics.
Compaction runs in two transactions so that writers wait only while it drains the writes
in flight, never while it packs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from ..bm25 import Postings, TermPostings, top_chunks
from ..models import ScoredId
from . import _postgres_sql as sql

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


async def rank(db: asyncpg.Connection, terms: Sequence[str], limit: int) -> list[ScoredId]:
    rows = await db.fetch(sql.TERM_POSTINGS, list(terms))
    if not rows:
        return []
    chunk_count, token_count, deleted = rows[0][8], rows[0][9], rows[0][10]
    return top_chunks(
        (_term_postings(row) for row in rows),
        chunk_count=int(chunk_count),
        token_count=int(token_count),
        limit=limit,
        exclude=deleted,
    )


def _term_postings(row: asyncpg.Record) -> TermPostings:
    parts = [Postings.unpack(row[i], row[i + 1], row[i + 2]) for i in (2, 5) if row[i] is not None]
    return TermPostings(row[0], int(row[1]), parts)


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
    """Rebuilds the segments of every term the tail or a tombstone touches, in the caller's
    REPEATABLE READ transaction; returns how many terms it rebuilt."""
    last_tombstone = await db.fetchval(sql.LAST_TOMBSTONE)
    stale = [r[0] for r in await db.fetch(sql.STALE_TERMS, through, building)]
    await db.execute(sql.DROP_SEGMENTS, stale)
    await db.execute(sql.BUILD_SEGMENTS, stale, building)
    await db.execute(sql.CLEAR_TOMBSTONES, last_tombstone)
    await db.execute(sql.FINISH_BUILD)
    return len(stale)
