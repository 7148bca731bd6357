"""Copies an index between backends (SQLite → PostgreSQL, or back) without re-embedding.

Collections are created on the target with their settings, documents keep their collection,
metadata and content hash (so a second run skips what is already there), and clicks keep
their ids, so they are never copied twice. The run fails unless both sides end with the same
counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tqdm import tqdm

from .config import DatabaseConfig, PostgresConfig
from .errors import InvalidArgumentError, NotFoundError
from .models import CollectionSpec, DocumentChunks, StoredClick
from .storage import StorageAdapter, build_store

CLICK_BATCH = 1000
DOCUMENT_BATCH = 64  # documents per write transaction


@dataclass(frozen=True)
class MigrationReport:
    copied: int
    unchanged: int
    clicks_copied: int
    counts: dict[str, tuple[int, int]]  # table → (source, target)

    @property
    def consistent(self) -> bool:
        return all(source == target for source, target in self.counts.values())

    def table(self) -> str:
        lines = [f"{'table':<16}{'source':>10}{'target':>10}"]
        lines += [f"{name:<16}{s:>10}{t:>10}" for name, (s, t) in self.counts.items()]
        return "\n".join(lines)


def database_from_url(url: str) -> DatabaseConfig:
    """`sqlite:PATH` or a `postgresql://…` URL."""
    if url.startswith("sqlite:"):
        return DatabaseConfig(type="sqlite", sqlite_path=Path(url.removeprefix("sqlite:")))
    if urlsplit(url).scheme in {"postgres", "postgresql"}:
        return DatabaseConfig(
            type="postgresql", postgres=PostgresConfig(url=url, pool_min_size=1, pool_max_size=4)
        )
    raise InvalidArgumentError(f"expected sqlite:PATH or postgresql://…, got {url!r}")


async def migrate(
    source: StorageAdapter,
    target: StorageAdapter,
    *,
    progress: Callable[[int], object] = lambda n: None,
) -> MigrationReport:
    await _copy_collections(source, target)
    copied = unchanged = 0
    pending: list[DocumentChunks] = []
    pending_collection = ""
    async for collection, document, chunks in source.export_documents():
        if pending and (collection != pending_collection or len(pending) >= DOCUMENT_BATCH):
            done, same = await _copy(target, pending, pending_collection, progress)
            copied, unchanged, pending = copied + done, unchanged + same, []
        pending_collection = collection
        pending.append(DocumentChunks(document, chunks))
    done, same = await _copy(target, pending, pending_collection, progress)
    copied, unchanged = copied + done, unchanged + same
    clicks_copied = 0
    batch: list[StoredClick] = []
    async for click in source.export_clicks():
        batch.append(click)
        if len(batch) >= CLICK_BATCH:
            clicks_copied += await target.import_clicks(batch)
            batch = []
    clicks_copied += await target.import_clicks(batch)
    before, after = await source.stats(), await target.stats()
    counts = {
        "documents": (before.documents, after.documents),
        "chunks": (before.chunks, after.chunks),
        "click_feedback": (before.clicks, after.clicks),
    }
    return MigrationReport(copied, unchanged, clicks_copied, counts)


async def run_migration(source_url: str, target_url: str, *, dimension: int) -> MigrationReport:
    source = build_store(database_from_url(source_url), dimension=dimension)
    target = build_store(database_from_url(target_url), dimension=dimension)
    await source.open()
    try:
        await target.open()
        try:
            total = (await source.stats()).documents
            with tqdm(total=total, unit="doc", desc="migrating") as bar:
                return await migrate(source, target, progress=bar.update)
        finally:
            await target.close()
    finally:
        await source.close()


async def _copy_collections(source: StorageAdapter, target: StorageAdapter) -> None:
    """Creates the source's collections on the target; one that exists must match."""
    for collection in await source.list_collections():
        try:
            existing = await target.get_collection(collection.name)
        except NotFoundError:
            spec = CollectionSpec(
                collection.name, collection.vectors, collection.dimension, collection.description
            )
            await target.create_collection(spec)
            continue
        if (existing.vectors, existing.dimension) != (collection.vectors, collection.dimension):
            raise InvalidArgumentError(
                f"collection {collection.name!r} has {existing.dimension}-d "
                f"{existing.vectors.value} vectors on the target, {collection.dimension}-d "
                f"{collection.vectors.value} on the source"
            )


async def _copy(
    target: StorageAdapter,
    documents: list[DocumentChunks],
    collection: str,
    progress: Callable[[int], object],
) -> tuple[int, int]:
    """Writes those of `documents` the target does not hold as they are; returns how many
    were written and how many were there already."""
    if not documents:
        return 0, 0
    paths = [d.document.path for d in documents]
    stored = await target.content_hashes(paths, collection=collection)
    changed = [d for d in documents if stored.get(d.document.path) != d.document.content_hash]
    if changed:
        await target.replace_documents(changed, collection=collection)
    progress(len(documents))
    return len(changed), len(documents) - len(changed)
