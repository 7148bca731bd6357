"""PostgreSQL's packed postings: full-text results stay exact before, during and after
compaction, with writes, replacements and deletions in between."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import numpy as np
import pytest

from docfoundry_grpc.bm25 import Postings
from docfoundry_grpc.config import PostgresConfig
from docfoundry_grpc.models import Chunk, Document, DocumentChunks
from docfoundry_grpc.storage.postgres import PostgresAdapter, segments
from docfoundry_grpc.text import analyze, query_terms

from .bm25_reference import bm25_scores
from .conftest import PostgresServer, fresh_database

WORDS = "server port install index search vector query chunk token cluster shard replica".split()
QUERIES = ["server port", "search vector query", "install", "replica shard cluster token"]
Corpus = dict[str, list[tuple[str, ...]]]  # document path -> its chunks' tokens


def text_for(rng: random.Random, label: str) -> str:
    return f"{label} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30)))


def reference(corpus: Corpus, query: str) -> dict[str, float]:
    """BM25 (FTS5's formula) over `corpus`, keyed by chunk text."""
    chunks = {" ".join(tokens): tokens for document in corpus.values() for tokens in document}
    return bm25_scores(chunks, query_terms(query))


async def assert_exact(store: PostgresAdapter, corpus: Corpus) -> None:
    for query in QUERIES:
        found = await store.search_fulltext(query_terms(query), limit=1000)
        expected = reference(corpus, query)
        assert {" ".join(analyze(c.text)): c.score for c in found} == pytest.approx(
            expected, rel=1e-9
        )
        ranked = sorted(found, key=lambda c: (-c.score, c.chunk_id))
        assert [c.chunk_id for c in found] == [c.chunk_id for c in ranked]


async def put(
    store: PostgresAdapter, corpus: Corpus, rng: random.Random, path: str, version: int
) -> None:
    texts = [
        text_for(rng, f"{path.replace('/', '')}v{version}c{n}") for n in range(rng.randint(1, 4))
    ]
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    chunks = [Chunk("", "", t, tuple(analyze(t)), vector) for t in texts]
    await store.replace_documents(
        [DocumentChunks(Document(path, "", "", f"{path}@{version}"), chunks)]
    )
    corpus[path] = [c.tokens for c in chunks]


@pytest.fixture
async def store(postgres_server: PostgresServer) -> AsyncIterator[PostgresAdapter]:
    async with fresh_database(postgres_server) as dsn:
        config = PostgresConfig(url=dsn, pool_min_size=1, pool_max_size=8, compact_interval=0)
        adapter = PostgresAdapter(config, dimension=384)
        await adapter.open()
        yield adapter
        await adapter.close()


async def table_count(store: PostgresAdapter, table: str) -> int:
    connection = await asyncpg.connect(store.config.dsn())
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await connection.close()


async def assert_segments_packed_from_scratch(store: PostgresAdapter) -> None:
    """Appended or rebuilt, every segment holds what a build from `postings` would."""
    connection = await asyncpg.connect(store.config.dsn())
    try:
        segments_now = await connection.fetch(
            "SELECT term, chunk_ids, tfs, dls FROM posting_segments ORDER BY term"
        )
        from_scratch = await connection.fetch(
            """SELECT p.term,
                      string_agg(int8send(p.chunk_id), ''::bytea ORDER BY p.chunk_id),
                      string_agg(int4send(p.tf), ''::bytea ORDER BY p.chunk_id),
                      string_agg(int4send(p.dl), ''::bytea ORDER BY p.chunk_id)
               FROM postings p, segment_state s WHERE p.chunk_id <= s.through
               GROUP BY p.term ORDER BY p.term"""
        )
    finally:
        await connection.close()
    assert [tuple(r) for r in segments_now] == [tuple(r) for r in from_scratch]


async def test_results_stay_exact_across_compactions_writes_and_deletes(
    store: PostgresAdapter,
) -> None:
    rng = random.Random(1)
    corpus: Corpus = {}
    for n in range(30):
        await put(store, corpus, rng, f"d/{n}", 0)
    await assert_exact(store, corpus)  # everything in the tail
    assert (await store.stats()).fulltext_backlog == await table_count(store, "chunks")

    packed = await store.compact()
    assert packed is not None and packed.terms > len(WORDS)
    assert await table_count(store, "posting_segments") == packed.terms
    assert (await store.stats()).fulltext_backlog == 0
    await assert_exact(store, corpus)  # everything packed
    await assert_segments_packed_from_scratch(store)

    for n in range(35, 40):
        await put(store, corpus, rng, f"d/{n}", 0)  # new chunks only: every term appended
    assert await store.compact() is not None
    await assert_segments_packed_from_scratch(store)

    packed_away = sum(len(corpus[f"d/{n}"]) for n in range(10))
    for n in range(0, 10, 2):
        await put(store, corpus, rng, f"d/{n}", 1)  # replaced: tombstones plus tail
    for n in range(1, 10, 2):
        await store.delete_document(f"d/{n}")
        del corpus[f"d/{n}"]
    for n in range(30, 35):
        await put(store, corpus, rng, f"d/{n}", 0)
    assert await table_count(store, "segment_tombstones") > 0
    written = sum(len(corpus[f"d/{n}"]) for n in [*range(0, 10, 2), *range(30, 35)])
    assert (await store.stats()).fulltext_backlog == packed_away + written
    await assert_exact(store, corpus)  # packed, tail and tombstones together

    assert await store.compact() is not None
    assert await table_count(store, "segment_tombstones") == 0
    await assert_exact(store, corpus)
    await assert_segments_packed_from_scratch(store)


async def test_compaction_racing_writers_loses_nothing(store: PostgresAdapter) -> None:
    rng = random.Random(2)
    corpus: Corpus = {}
    for n in range(20):
        await put(store, corpus, rng, f"d/{n}", 0)
    done = asyncio.Event()

    async def writer(w: int) -> None:
        for version in range(1, 15):
            path = f"d/{(w * 7 + version) % 20}"
            await put(store, corpus, rng, path, version * 10 + w)
            if version % 5 == 0:
                await store.delete_document(path)
                del corpus[path]

    async def compactor() -> None:
        while not done.is_set():
            await store.compact()
            await asyncio.sleep(0)

    running = asyncio.create_task(compactor())
    await asyncio.gather(*(writer(w) for w in range(3)))
    await assert_exact(store, corpus)
    done.set()
    await running
    await assert_exact(store, corpus)
    await store.compact()
    await assert_exact(store, corpus)
    await assert_segments_packed_from_scratch(store)


async def test_a_chunk_deleted_while_being_packed_stays_deleted(store: PostgresAdapter) -> None:
    """The build packs the snapshot it started from; a deletion committed after that
    snapshot leaves a tombstone that outlives the build."""
    rng = random.Random(5)
    corpus: Corpus = {}
    for n in range(6):
        await put(store, corpus, rng, f"d/{n}", 0)
    compactor = await asyncpg.connect(store.config.dsn())
    try:
        through, building = await segments.start_build(compactor)
        async with compactor.transaction(isolation="repeatable_read"):
            await compactor.fetchval("SELECT 1")  # the build's snapshot starts here
            await store.delete_document("d/2")
            del corpus["d/2"]
            await segments.pack(compactor, through, building)
    finally:
        await compactor.close()
    assert await table_count(store, "segment_tombstones") > 0
    await assert_exact(store, corpus)
    await store.compact()
    assert await table_count(store, "segment_tombstones") == 0
    await assert_exact(store, corpus)


async def test_one_compactor_at_a_time(store: PostgresAdapter) -> None:
    await put(store, {}, random.Random(3), "d/0", 0)
    other = await asyncpg.connect(store.config.dsn())
    try:
        assert await other.fetchval("SELECT pg_try_advisory_lock(7240213)")
        assert await store.compact() is None
        await other.execute("SELECT pg_advisory_unlock(7240213)")
        assert await store.compact() is not None
    finally:
        await other.close()


async def test_the_adapter_compacts_once_writes_pause(postgres_server: PostgresServer) -> None:
    async with fresh_database(postgres_server) as dsn:
        config = PostgresConfig(url=dsn, pool_min_size=1, pool_max_size=4, compact_interval=0.05)
        store = PostgresAdapter(config, dimension=384)
        await store.open()
        try:
            rng = random.Random(4)
            corpus: Corpus = {}
            for n in range(5):
                await put(store, corpus, rng, f"d/{n}", 0)
            for _ in range(200):
                if await table_count(store, "posting_segments") and not await tail_chunks(store):
                    break
                await asyncio.sleep(0.05)
            assert await tail_chunks(store) == 0
            await assert_exact(store, corpus)
        finally:
            await store.close()


async def tail_chunks(store: PostgresAdapter) -> int:
    connection = await asyncpg.connect(store.config.dsn())
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM chunks c, segment_state s WHERE c.id > s.through"
            )
        )
    finally:
        await connection.close()


def test_compaction_is_due_when_the_backlog_is_large_or_writes_paused() -> None:
    quiet = segments.Backlog(tail_chunks=5, deleted_chunks=1, chunk_count=1000)
    assert not quiet.due(None)  # small and still changing: wait
    assert quiet.due(quiet)  # unchanged since the last look: writes paused
    assert segments.Backlog(80, 20, 1000).due(None)  # 10% of the corpus
    assert not segments.Backlog(0, 0, 1000).due(segments.Backlog(0, 0, 1000))


async def open_store(dsn: str, **settings: Any) -> PostgresAdapter:
    config = PostgresConfig(url=dsn, pool_min_size=1, pool_max_size=4, compact_interval=0)
    adapter = PostgresAdapter(replace(config, **settings), dimension=384)
    await adapter.open()
    return adapter


def lookups(store: PostgresAdapter) -> tuple[int, int]:
    cache = store._segment_cache.stats()
    return cache.hits, cache.misses


async def test_servers_reuse_cached_segments_until_any_server_repacks_them(
    postgres_server: PostgresServer,
) -> None:
    """Two servers on one database: each keeps its own decoded segments, and a compaction
    by either gives the repacked terms new versions, which the other then fetches."""
    async with fresh_database(postgres_server) as dsn:
        reader, writer = await open_store(dsn), await open_store(dsn, postings_cache_mb=0)
        try:
            rng = random.Random(6)
            corpus: Corpus = {}
            for n in range(20):
                await put(writer, corpus, rng, f"d/{n}", 0)
            await writer.compact()
            await assert_exact(reader, corpus)
            hits, misses = lookups(reader)
            assert hits == 0 and misses > 0  # the first queries fetch every segment
            await assert_exact(reader, corpus)
            assert lookups(reader) == (misses, misses)  # the same queries again: all cached

            await put(writer, corpus, rng, "d/3", 1)  # replaced: tombstones and tail
            await put(writer, corpus, rng, "d/20", 0)
            await assert_exact(reader, corpus)  # cached segments, tail and tombstones
            assert lookups(reader) == (2 * misses, misses)

            await writer.compact()
            await assert_exact(reader, corpus)
            assert lookups(reader)[1] == 2 * misses  # every queried term was repacked
            await assert_exact(writer, corpus)  # and the uncached server agrees
            assert lookups(writer)[0] == 0  # caching off: every segment fetched
        finally:
            await reader.close()
            await writer.close()


def test_the_segment_cache_is_bounded_and_keeps_values_exact() -> None:
    def postings(n: int) -> Postings:
        return Postings(
            np.arange(1, n + 1, dtype=">i8") * 1000, np.full(n, 3, ">i4"), np.full(n, 300, ">i4")
        )

    cache = segments.SegmentCache(capacity_bytes=7 * 250)  # 250 postings of 4 + 1 + 2 bytes
    stored = cache.store("a", 1, postings(100))
    assert [a.dtype for a in (stored.chunk_ids, stored.tfs, stored.dls)] == [
        np.uint32,
        np.uint8,
        np.uint16,
    ]
    assert stored.chunk_ids.tolist() == postings(100).chunk_ids.tolist()
    assert stored.dls.tolist() == [300] * 100
    cache.store("b", 1, postings(100))
    cache.lookup(["a"])  # a is now the more recently used
    cache.store("c", 1, postings(100))  # over capacity: b goes
    assert set(cache.lookup(["a", "b", "c"])) == {"a", "c"}
    assert cache.stats().bytes == 2 * 700 <= cache.stats().capacity
    too_large = cache.store("d", 1, postings(300))
    assert len(too_large.chunk_ids) == 300 and "d" not in cache.lookup(["d"])
    assert cache.store("a", 2, postings(10)).chunk_ids.tolist() == postings(10).chunk_ids.tolist()
    assert cache.lookup(["a"])["a"][0] == 2
