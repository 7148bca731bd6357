"""What both backends' backups share: the file kinds, what a backup holds, and writing a
file so that it appears whole or not at all.

A backup is the backend's own format, so the backend's own tools read it too: a SQLite
database file, or a pg_dump custom-format archive. Either records the schema version, in
its `meta` table; a restore refuses a schema newer than this code knows, as a server does.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import DocFoundryError, SchemaMismatchError
from .base import SCHEMA_VERSION

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
KIND_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


class BackupError(DocFoundryError):
    """A backup or restore cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Snapshot:
    """What a backup holds, or what a restore wrote."""

    schema_version: int
    documents: int
    chunks: int
    clicks: int

    def describe(self) -> str:
        return (
            f"schema {self.schema_version}: {_count(self.documents, 'document')}, "
            f"{_count(self.chunks, 'chunk')}, {_count(self.clicks, 'click')}"
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def backup_kind(path: Path) -> str:
    """`sqlite` or `postgresql`, from the file's first bytes."""
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise BackupError(f"no backup file {path}") from None
    except IsADirectoryError:
        raise BackupError(f"{path} is a folder, not a backup file") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    raise BackupError(
        f"{path} is not a DocFoundry backup: neither a SQLite database nor a pg_dump "
        "custom-format archive (pg_dump -Fc)"
    )


def check_restorable(schema_version: int, source: Path) -> None:
    """Refuses a backup of a schema newer than this code's (a server of this version
    would refuse to open it); an older one is upgraded by the first server start."""
    if schema_version > SCHEMA_VERSION:
        raise SchemaMismatchError(
            f"{source} holds schema {schema_version}, newer than this DocFoundry's "
            f"({SCHEMA_VERSION}): restore it with the version that made it, or a newer one"
        )


@contextmanager
def atomic_output(path: Path, *, replace: bool, mode: int = 0o600) -> Iterator[Path]:
    """A temporary file beside `path` to write; on success it is synced and renamed over
    `path` (one rename: readers see the old file or the new one, never part of either).
    `mode` 0o600 by default: a backup holds API key hashes and every document."""
    if path.is_dir():
        raise BackupError(f"{path} is a folder")
    if path.exists() and not replace:
        raise BackupError(f"{path} exists: choose another name, or --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temp = Path(name)
    try:
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        yield temp
        fsync(temp)
        os.replace(temp, path)
        fsync(path.parent)
    finally:
        for leftover in (temp, temp.with_name(temp.name + "-journal")):
            leftover.unlink(missing_ok=True)


def fsync(path: Path) -> None:
    """Flushes a file, or a folder's entries (so a rename in it survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
