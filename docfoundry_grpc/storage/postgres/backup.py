"""PostgreSQL backup and restore with pg_dump and pg_restore, in pg_dump's custom format.

A backup exports a snapshot from a read-only transaction, reads the counts and schema
version in it, and has pg_dump dump that same snapshot: the numbers reported are those of
the file, however many writes run meanwhile. Servers go on serving throughout.

A restore goes into an empty database, or with `force` over one that holds data
(`pg_restore --clean`), always in one transaction: it applies whole or not at all. It is
refused while DocFoundry servers are connected to the target (their pools name themselves
`application_name=docfoundry`), and it holds the schema's advisory lock, so a server that
starts meanwhile waits for it instead of creating a schema of its own. pgvector is created
by the restore itself (as a server would), not from the archive, whose `COMMENT ON
EXTENSION` only the extension's owner may run.

Passwords never reach an argument list, which any local user can read: the programs get
the connection string without its password, and the password through `PGPASSWORD`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from ...config import PostgresConfig
from ...errors import StoreLockedError, StoreUnavailableError
from ..backup import BackupError, Snapshot, atomic_output, check_restorable
from . import sql
from .connections import APPLICATION_NAME, CONNECT_ERRORS, Connections
from .schema import _create_extension as create_extension

Progress = Callable[[str], object]

# Session-level twin of sql.INIT_LOCK (same key): a server starting during a restore waits
# for it; closing the connection releases it.
RESTORE_LOCK = "SELECT pg_advisory_lock(7240211)"
HAS_META = "SELECT to_regclass('meta') IS NOT NULL"
EXPORT_SNAPSHOT = "SELECT pg_export_snapshot()"
SERVERS_CONNECTED = """
SELECT count(*),
       coalesce(string_agg(DISTINCT coalesce(host(client_addr), 'local socket'), ', '), '')
FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()
"""
# Tables, views, sequences… outside the system schemas, other than extensions' own.
USER_RELATIONS = r"""
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
"""
# pg_dump / pg_restore --verbose lines worth showing as progress.
_PROGRESS = re.compile(r"(dumping contents of table|processing data for table|creating INDEX)")
_TROUBLE = re.compile(r"(error|warning|detail|hint):|Command was:|while PROCESSING TOC")


@dataclass(frozen=True)
class PgTools:
    """Where pg_dump and pg_restore are: `folder` (--pg-bin, POSTGRES_BIN_DIR) or PATH.
    They must be at least as new as the server (pg_dump refuses a newer server)."""

    folder: Path | None = None

    def find(self, name: str) -> str:
        if self.folder is not None:
            candidate = self.folder / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
            raise BackupError(f"{name} not found in {self.folder} (--pg-bin / POSTGRES_BIN_DIR)")
        found = shutil.which(name)
        if found is None:
            raise BackupError(
                f"{name} not found on PATH: install PostgreSQL's client programs (as new as "
                "the server), or name their folder with --pg-bin or POSTGRES_BIN_DIR"
            )
        return found


def libpq_connection(config: PostgresConfig) -> tuple[str, dict[str, str]]:
    """The connection string for `--dbname`, without any password, and the environment
    for pg_dump / pg_restore that carries the password (PGPASSWORD) and SSL mode."""
    parts = urlsplit(config.dsn())
    userinfo, at, hosts = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    query = []
    for parameter in filter(None, parts.query.split("&")):
        key, _, value = parameter.partition("=")
        if unquote(key) == "password":
            password = password or value
        elif unquote(key) == "sslpassword":
            raise BackupError(
                "sslpassword in DATABASE_URL cannot be handed to pg_dump without showing it "
                "in its arguments: use an unencrypted client key for backups"
            )
        else:
            query.append(parameter)
    netloc = f"{user}{at}{hosts}" if user else hosts
    dsn = urlunsplit((parts.scheme, netloc, parts.path, "&".join(query), parts.fragment))
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = unquote(password)
    if not config.url:
        env["PGSSLMODE"] = config.sslmode
    return dsn, env


async def backup(
    config: PostgresConfig, output: Path, *, replace: bool, tools: PgTools, progress: Progress
) -> Snapshot:
    """Dumps the database to `output` while servers go on serving and writing."""
    pg_dump = tools.find("pg_dump")
    dsn, env = libpq_connection(config)
    env["PGAPPNAME"] = "docfoundry-backup"
    async with _connection(config) as connection:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            snapshot_id = await connection.fetchval(EXPORT_SNAPSHOT)
            snapshot = await _snapshot(connection, config)
            with atomic_output(output, replace=replace) as temp:
                # gzip level 1: at 10k chunks 3x as fast as pg_dump's default level, for a
                # file 14% larger (embeddings hardly compress at any level).
                command = [pg_dump, "--format=custom", "--compress=1", "--verbose"]
                command.append(f"--snapshot={snapshot_id}")
                await _run([*command, f"--file={temp}", f"--dbname={dsn}"], env, progress)
    return snapshot


async def archive_schema_version(file: Path, *, tools: PgTools) -> int:
    """The schema version recorded in the archive `file` (its `meta` table's rows)."""
    pg_restore = tools.find("pg_restore")
    meta = await _output([pg_restore, "--data-only", "--table=meta", "--file=-", str(file)], file)
    rows = dict(line.split("\t", 1) for line in meta.splitlines() if line.count("\t") == 1)
    if "schema_version" not in rows:
        raise BackupError(f"{file} is a pg_dump archive, but not of a DocFoundry database")
    return int(rows["schema_version"])


async def restore(
    config: PostgresConfig, file: Path, *, replace: bool, tools: PgTools, progress: Progress
) -> Snapshot:
    """Restores the archive `file` into the configured database, in one transaction."""
    pg_restore = tools.find("pg_restore")
    check_restorable(await archive_schema_version(file, tools=tools), file)
    listing = await _output([pg_restore, "--list", str(file)], file)
    dsn, env = libpq_connection(config)
    env["PGAPPNAME"] = "docfoundry-restore"
    build_memory = f"-c maintenance_work_mem={config.index_build_memory}"
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {build_memory}".strip()
    async with _connection(config) as connection:
        await connection.execute(RESTORE_LOCK)
        occupied = await _check_target(connection, config, replace=replace)
        await create_extension(connection)
        with _objects_to_restore(listing) as use_list:
            command = [pg_restore, "--verbose", "--single-transaction", "--exit-on-error"]
            command += ["--no-owner", "--no-privileges", f"--use-list={use_list}"]
            command += ["--clean", "--if-exists"] if occupied else []
            await _run([*command, f"--dbname={dsn}", str(file)], env, progress)
        return await _snapshot(connection, config)


async def _check_target(
    connection: asyncpg.Connection, config: PostgresConfig, *, replace: bool
) -> bool:
    """Refuses a target that servers use, or one that holds data unless `replace`;
    returns whether it holds anything."""
    servers, hosts = await connection.fetchrow(SERVERS_CONNECTED, APPLICATION_NAME)
    if servers:
        raise StoreLockedError(
            f"refusing to restore into {config.safe_dsn()}: {servers} connections of "
            f"DocFoundry servers are open to it (from {hosts}); stop the servers, then "
            "restore (nothing was changed)"
        )
    if not await connection.fetchval(USER_RELATIONS):
        return False
    if not replace:
        held = "tables"
        with contextlib.suppress(BackupError, asyncpg.PostgresError):
            held = f"DocFoundry {(await _snapshot(connection, config)).describe()}"
        raise BackupError(
            f"{config.safe_dsn()} is not empty (it holds {held}): restore into an empty "
            "database, or --force to replace what the backup holds, in one transaction"
        )
    return True


async def _snapshot(connection: asyncpg.Connection, config: PostgresConfig) -> Snapshot:
    if not await connection.fetchval(HAS_META):
        raise BackupError(f"{config.safe_dsn()} holds no DocFoundry index (no meta table)")
    version = await connection.fetchval(sql.GET_META, "schema_version")
    documents, chunks, clicks = await connection.fetchrow(sql.COUNTS)
    return Snapshot(int(version or 0), int(documents), int(chunks), int(clicks))


@contextlib.asynccontextmanager
async def _connection(config: PostgresConfig) -> AsyncIterator[asyncpg.Connection]:
    try:
        connection = await asyncpg.connect(config.dsn(), timeout=10, **Connections(config).ssl())
    except CONNECT_ERRORS as exc:
        reason = str(exc).replace(config.password, "***") if config.password else str(exc)
        raise StoreUnavailableError(
            f"cannot connect to PostgreSQL at {config.safe_dsn()}: {type(exc).__name__}: {reason}"
        ) from exc
    try:
        yield connection
    finally:
        await connection.close()


@contextlib.contextmanager
def _objects_to_restore(listing: str) -> Iterator[str]:
    """pg_restore's table of contents without the extension and its comment."""
    kept = [line for line in listing.splitlines() if " EXTENSION " not in line]
    with tempfile.NamedTemporaryFile("w", prefix="docfoundry-restore-", suffix=".list") as file:
        file.write("\n".join(kept) + "\n")
        file.flush()
        yield file.name


async def _output(command: list[str], file: Path) -> str:
    """pg_restore's standard output, reading the archive `file`."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode:
        raise BackupError(f"cannot read {file} as a pg_dump archive: {_last_lines(err.decode())}")
    return out.decode()


async def _run(command: list[str], env: dict[str, str], progress: Progress) -> None:
    """Runs pg_dump or pg_restore with --verbose, passing on its progress lines."""
    name = Path(command[0]).name
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
    )
    assert process.stderr is not None
    trouble = []
    async for raw in process.stderr:
        line = raw.decode(errors="replace").rstrip()
        if _PROGRESS.search(line):
            progress(line)
        elif _TROUBLE.search(line):
            trouble.append(line)
    if await process.wait():
        detail = "\n".join(trouble[-8:]) or f"exit status {process.returncode}"
        hint = ""
        if "version mismatch" in detail:
            hint = "\n(use one as new as the server: --pg-bin or POSTGRES_BIN_DIR)"
        raise BackupError(f"{name} failed:\n{detail}{hint}")


def _last_lines(text: str, count: int = 4) -> str:
    return "\n".join(text.strip().splitlines()[-count:])
