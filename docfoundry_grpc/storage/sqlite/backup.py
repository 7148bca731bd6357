"""SQLite backup and restore with SQLite's online backup API.

A backup reads through its own read-only connection, which needs no claim on the file, so
it runs beside the server that holds it. It copies every page in one step: one read
transaction, so one consistent snapshot, and in WAL mode the server's writers go on
meanwhile (copied in several steps, a write from another connection would restart the copy,
and steady writes would keep it from ever ending).

A restore claims the file as a server does (`owner.FileOwner`), so it is refused while a
server runs on it, and no server can start while it runs. It writes the new database beside
the old one and renames it over it; the old file's `-wal` is folded back first and its side
files removed, because a WAL left beside the new file would be replayed into it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from ...errors import StoreLockedError
from ..backup import BackupError, Snapshot, atomic_output, check_restorable
from . import sql
from .owner import FileOwner

SIDE_FILES = ("-wal", "-shm", "-journal")


def backup(source: Path, output: Path, *, replace: bool) -> Snapshot:
    """Copies the database at `source` to `output`, a self-contained SQLite file."""
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source} (SQLITE_PATH)")
    if output.exists() and output.samefile(source):
        raise BackupError(f"{output} is the database itself: back it up to another file")
    with atomic_output(output, replace=replace) as temp:
        try:
            _copy(_open_read_only(source), temp)
            with contextlib.closing(sqlite3.connect(temp)) as copy:
                return _snapshot(copy, source)
        except sqlite3.Error as exc:
            raise BackupError(f"cannot back up {source}: {exc}") from exc


def restore(file: Path, target: Path, *, replace: bool) -> Snapshot:
    """Replaces the database at `target` (none, or with `replace` one that holds data) with
    the backup `file`; refused while a server holds `target`."""
    try:
        with contextlib.closing(_open_read_only(file)) as backup_db:
            snapshot = _snapshot(backup_db, file)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read {file}: {exc}") from exc
    check_restorable(snapshot.schema_version, file)
    target.parent.mkdir(parents=True, exist_ok=True)
    owner = _claim(target)
    try:
        if target.exists() and target.stat().st_size > 0 and not replace:
            raise BackupError(
                f"{target} exists and {_describe_existing(target)}: --force replaces it"
            )
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
        with atomic_output(target, replace=True, mode=mode) as temp:
            try:
                _copy(_open_read_only(file), temp)
            except sqlite3.Error as exc:
                raise BackupError(f"cannot restore {file}: {exc}") from exc
            _settle(target)
    finally:
        owner.release()
    return snapshot


def _open_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def _copy(source: sqlite3.Connection, temp: Path) -> None:
    """All pages of `source` into `temp` in one step, then a rollback journal instead of
    WAL (one self-contained file; a server turns WAL on again at open), then checked."""
    with contextlib.closing(source), contextlib.closing(sqlite3.connect(temp)) as copy:
        source.backup(copy, pages=-1)
        copy.execute("PRAGMA journal_mode = DELETE")
        (verdict,) = copy.execute("PRAGMA quick_check").fetchone()
        if verdict != "ok":
            raise BackupError(f"the copy failed SQLite's quick_check: {verdict}")


def _snapshot(db: sqlite3.Connection, source: Path) -> Snapshot:
    try:
        row = db.execute(sql.GET_META, ("schema_version",)).fetchone()
    except sqlite3.DatabaseError as exc:  # no meta table, or not a database at all
        raise BackupError(f"{source} is not a DocFoundry database ({exc})") from exc
    if row is None:
        raise BackupError(f"{source} is not a DocFoundry database (no schema version)")
    documents, chunks, clicks = db.execute(sql.COUNTS).fetchone()
    return Snapshot(int(row[0]), documents, chunks, clicks)


def _claim(target: Path) -> FileOwner:
    try:
        return FileOwner.claim(target)
    except StoreLockedError:
        lock = target.with_name(target.name + ".lock")
        holder = lock.read_text(errors="replace").strip() or "unknown"
        raise StoreLockedError(
            f"refusing to restore into {target}: a DocFoundry process (pid {holder}) holds "
            "it; stop it, then restore (nothing was changed)"
        ) from None


def _describe_existing(target: Path) -> str:
    try:
        with contextlib.closing(_open_read_only(target)) as db:
            return f"holds a DocFoundry index ({_snapshot(db, target).describe()})"
    except (sqlite3.Error, BackupError):
        return "is not a DocFoundry database this version can read"


def _settle(target: Path) -> None:
    """Folds the old database's WAL into it and removes its side files, so none of them
    can be replayed into the file that replaces it. The old file stays whole meanwhile."""
    if target.exists():
        with contextlib.suppress(sqlite3.Error):
            with contextlib.closing(sqlite3.connect(target, timeout=30)) as old:
                old.execute("PRAGMA journal_mode = DELETE")
    for suffix in SIDE_FILES:
        target.with_name(target.name + suffix).unlink(missing_ok=True)
