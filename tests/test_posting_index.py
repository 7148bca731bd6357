"""The SQLite backend's in-memory postings: whatever the order of writes, deletions and
rebuilds, a search ranks as a fresh index of the live chunks would, by the BM25 formula."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import numpy as np
import pytest

from docfoundry_grpc.models import Chunk, Document, DocumentChunks
from docfoundry_grpc.storage import posting_index
from docfoundry_grpc.storage.posting_index import PostingIndex
from docfoundry_grpc.storage.sqlite import SQLiteAdapter
from docfoundry_grpc.storage.sqlite.index import QUIET_SECONDS

from .bm25_reference import bm25_scores, ranked

WORDS = [f"w{n}" for n in range(40)]
UNIT = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
QUERIES = [["w0", "w1"], ["w3", "w17", "w39"], ["w5"], ["w2", "w2", "w30", "missing"]]


def tokens(rng: random.Random) -> list[str]:
    # Skewed, so some terms are common and some rare, as in text.
    return [WORDS[min(int(rng.expovariate(0.15)), 39)] for _ in range(rng.randint(1, 40))]


def assert_ranks_like(index: PostingIndex, live: dict[int, list[str]]) -> None:
    fresh = PostingIndex.build(live.items())
    for terms in QUERIES:
        found = index.search(terms, 15)
        expected = bm25_scores(live, terms)
        assert [i for i, _ in found] == ranked(expected, 15)
        assert [s for _, s in found] == pytest.approx([expected[i] for i, _ in found])
        rebuilt = fresh.search(terms, 15)
        assert [i for i, _ in found] == [i for i, _ in rebuilt]
        assert [s for _, s in found] == pytest.approx([s for _, s in rebuilt])


@pytest.mark.parametrize("seed", range(4))
def test_writes_deletes_and_rebuilds_keep_rankings_exact(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(posting_index, "REBUILD_MIN_POSTINGS", 50)  # rebuild often
    rng = random.Random(seed)
    live = {chunk_id: tokens(rng) for chunk_id in range(1, 200)}
    index = PostingIndex.build(live.items())
    assert_ranks_like(index, live)
    next_id, rebuilds = 200, 0
    for step in range(600):
        if rng.random() < 0.4 and len(live) > 20:
            chunk_id = rng.choice(list(live))
            index.remove(chunk_id, live.pop(chunk_id))
        else:
            live[next_id] = tokens(rng)
            index.add(next_id, live[next_id])
            next_id += 1
        rebuilds += index.rebuild_if_due()
        if step % 97 == 0:
            assert_ranks_like(index, live)
    assert rebuilds > 3
    assert_ranks_like(index, live)
    index.rebuild()
    assert index.backlog_chunks == 0
    assert_ranks_like(index, live)
    assert (index.chunk_count, index.token_count) == (len(live), sum(map(len, live.values())))


def test_an_empty_index_finds_nothing() -> None:
    index = PostingIndex.build([])
    assert index.search(["w1"], 10) == []
    index.add(3, ["w1", "w1"])
    assert [i for i, _ in index.search(["w1"], 10)] == [3]
    index.remove(3, ["w1", "w1"])
    assert index.search(["w1"], 10) == []
    assert index.backlog_chunks == 2  # one chunk added, one removed, neither folded in


@pytest.mark.parametrize("seed", range(4))
def test_a_rebuild_folding_beside_writes_keeps_rankings_exact(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's way: freeze, keep writing and deleting (searching all along) while the
    fold is computed, then apply; rankings stay those of a fresh index throughout."""
    monkeypatch.setattr(posting_index, "REBUILD_MIN_POSTINGS", 50)
    rng = random.Random(seed)
    live = {chunk_id: tokens(rng) for chunk_id in range(1, 200)}
    index = PostingIndex.build(live.items())
    next_id, folds = 200, 0
    fold = None
    for step in range(600):
        if rng.random() < 0.4 and len(live) > 20:
            chunk_id = rng.choice(list(live))
            index.remove(chunk_id, live.pop(chunk_id))
        else:
            live[next_id] = tokens(rng)
            index.add(next_id, live[next_id])
            next_id += 1
        if fold is None and index.due():
            fold = index.freeze()  # writes go on while it is computed
            assert index.folding and not index.due()
        elif fold is not None and rng.random() < 0.1:
            index.apply(fold, fold.compute())
            fold, folds = None, folds + 1
        if step % 37 == 0:
            assert_ranks_like(index, live)
    assert folds > 3
    if fold is not None:
        with pytest.raises(RuntimeError):
            index.rebuild()  # one fold at a time
        index.apply(fold, fold.compute())
    index.rebuild()
    assert index.backlog_chunks == 0 and not index.folding
    assert_ranks_like(index, live)


def test_a_chunk_deleted_while_its_tail_is_folded_is_gone_after_the_next_rebuild() -> None:
    index = PostingIndex.build([(1, ["common"]), (2, ["common"])])
    index.add(3, ["rare", "common"])  # only in the tail the fold will pack
    fold = index.freeze()
    index.remove(3, ["rare", "common"])  # while the fold runs
    index.apply(fold, fold.compute())  # packs chunk 3's postings: it is still excluded
    assert index.search(["rare"], 10) == []
    index.rebuild()
    assert index.search(["rare"], 10) == [] and index.backlog_chunks == 0
    assert [i for i, _ in index.search(["common"], 10)] == [1, 2]
    assert index.packed_postings == 2  # chunk 3's postings are gone, not just hidden


def test_a_fold_is_urgent_once_the_tail_reaches_the_packed_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(posting_index, "REBUILD_MIN_POSTINGS", 100)
    rng = random.Random(7)
    live = {n: tokens(rng) for n in range(200)}
    index = PostingIndex.build(live.items())
    packed = index.packed_postings
    written = 0
    chunk_id = 1000
    while written < packed // 2:  # a backlog past 5% of the packed size: due, not urgent
        live[chunk_id] = tokens(rng)
        index.add(chunk_id, live[chunk_id])
        written += len(set(live[chunk_id]))
        chunk_id += 1
    assert index.due() and not index.urgent
    while written < packed:
        live[chunk_id] = tokens(rng)
        index.add(chunk_id, live[chunk_id])
        written += len(set(live[chunk_id]))
        chunk_id += 1
    assert index.urgent
    index.rebuild()
    assert not index.due() and not index.urgent
    assert_ranks_like(index, live)


async def test_the_sqlite_adapter_folds_once_writes_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A due backlog waits for a pause in the collection's writes (QUIET_SECONDS), so a
    bulk load is not slowed by folds; then it is folded without further writes."""
    monkeypatch.setattr(posting_index, "REBUILD_MIN_POSTINGS", 50)
    store = SQLiteAdapter(tmp_path / "f.db", dimension=4)
    await store.open()
    try:
        rng = random.Random(8)
        postings = store._index("default").postings
        for n in range(3):
            chunks = [Chunk("", "", "text", tuple(tokens(rng)), UNIT) for _ in range(20)]
            await store.replace_documents([DocumentChunks(Document(f"d{n}", "", "", "h"), chunks)])
            # An urgent fold starts with the write and runs in a thread: on a busy machine
            # it may outlast the next write, so each write waits for it to end.
            for _ in range(1000):
                if not postings.folding:
                    break
                await asyncio.sleep(0.01)
        assert postings.due() and not postings.urgent  # packed by the first fold at 50
        assert (await store.stats()).fulltext_backlog > 0
        await asyncio.sleep(QUIET_SECONDS + 0.5)
        assert (await store.stats()).fulltext_backlog == 0
    finally:
        await store.close()
