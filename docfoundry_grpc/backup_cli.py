"""`docfoundry backup FILE` and `docfoundry restore FILE`, on the configured database.

SQLite backups are SQLite files (the online backup API, safe beside a running server);
PostgreSQL backups are pg_dump custom-format archives. `restore` tells the two apart by
their first bytes and refuses one that does not match the configured backend.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from .config import DatabaseConfig
from .storage.backup import KIND_NAMES, BackupError, Snapshot, backup_kind, human_size

PG_BIN_VARIABLE = "POSTGRES_BIN_DIR"


def _where(database: DatabaseConfig) -> str:
    if database.type == "sqlite":
        return f"sqlite:{database.sqlite_path}"
    return database.postgres.safe_dsn()


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _backup(args: argparse.Namespace) -> int:
    database: DatabaseConfig = args.settings.database
    output: Path = args.file
    _progress(f"backing up {_where(database)} to {output}")
    started = time.monotonic()
    snapshot: Snapshot
    if database.type == "sqlite":
        from .storage.sqlite import backup as sqlite_backup

        snapshot = sqlite_backup.backup(database.sqlite_path, output, replace=args.force)
    else:
        from .storage.postgres import backup as pg_backup

        tools = pg_backup.PgTools(_pg_bin(args))
        snapshot = asyncio.run(
            pg_backup.backup(
                database.postgres, output, replace=args.force, tools=tools, progress=_progress
            )
        )
    elapsed = time.monotonic() - started
    print(f"backed up {KIND_NAMES[database.type]} {snapshot.describe()}")
    print(f"wrote {output} ({human_size(output.stat().st_size)}) in {elapsed:.2f} s")
    return 0


def _restore(args: argparse.Namespace) -> int:
    database: DatabaseConfig = args.settings.database
    file: Path = args.file
    kind = backup_kind(file)
    if kind != database.type:
        raise BackupError(
            f"{file} is a {KIND_NAMES[kind]} backup, but the configured database is "
            f"{KIND_NAMES[database.type]} (DATABASE_TYPE={database.type}): restore it with "
            f"DATABASE_TYPE={kind}; to move an index between backends, restore it there, "
            "then run `docfoundry migrate`"
        )
    _progress(f"restoring {file} into {_where(database)}")
    started = time.monotonic()
    snapshot: Snapshot
    if database.type == "sqlite":
        from .storage.sqlite import backup as sqlite_backup

        snapshot = sqlite_backup.restore(file, database.sqlite_path, replace=args.force)
    else:
        from .storage.postgres import backup as pg_backup

        tools = pg_backup.PgTools(_pg_bin(args))
        snapshot = asyncio.run(
            pg_backup.restore(
                database.postgres, file, replace=args.force, tools=tools, progress=_progress
            )
        )
    elapsed = time.monotonic() - started
    print(f"restored {KIND_NAMES[kind]} {snapshot.describe()}")
    size = human_size(file.stat().st_size)
    print(f"into {_where(database)} from {file} ({size}) in {elapsed:.2f} s")
    return 0


def _pg_bin(args: argparse.Namespace) -> Path | None:
    folder = args.pg_bin or os.environ.get(PG_BIN_VARIABLE, "").strip()
    return Path(folder) if folder else None


def add_backup_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser(
        "backup",
        help="back up the configured database to FILE (a SQLite file, or a pg_dump "
        "custom-format archive); safe while servers run",
    )
    backup.add_argument("file", type=Path, metavar="FILE")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    restore = commands.add_parser(
        "restore",
        help="restore a backup FILE into the configured database (stop its servers first)",
    )
    restore.add_argument("file", type=Path, metavar="FILE")
    restore.add_argument(
        "--force",
        action="store_true",
        help="replace a database that holds data (in one step: old or new, never a mix)",
    )
    for command in (backup, restore):
        command.add_argument(
            "--pg-bin",
            metavar="DIR",
            help=f"folder of pg_dump / pg_restore (default ${PG_BIN_VARIABLE}, else PATH)",
        )
    backup.set_defaults(func=_backup)
    restore.set_defaults(func=_restore)
