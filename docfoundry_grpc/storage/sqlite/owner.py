"""One process per SQLite file. The adapter keeps each collection's vectors and postings in
memory and updates them on its own writes only, so a second server on the same file would
never see the first one's documents in search. A second process is therefore refused at
open, with the first one's pid; SQLite stays a single-node backend (PostgreSQL is the way to
several servers).

The claim is an advisory `flock` on `<database>.lock`: the kernel drops it when the process
dies, however it dies, so a crash never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ...errors import StoreLockedError


class FileOwner:
    def __init__(self, lock_path: Path, fd: int) -> None:
        self.lock_path = lock_path
        self._fd = fd

    @classmethod
    def claim(cls, database: Path) -> FileOwner:
        lock_path = database.with_name(database.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreLockedError(
                f"SQLite database {database} is in use by another process (pid {holder}): "
                "SQLite serves from one process; stop it, or use PostgreSQL for several "
                "servers"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return cls(lock_path, fd)

    def release(self) -> None:
        os.close(self._fd)  # closing drops the lock
