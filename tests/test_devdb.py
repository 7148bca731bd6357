"""A throwaway cluster whose owner was killed is stopped and deleted by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docfoundry_grpc.devdb import LocalPostgres, reap_orphans

from .conftest import made_locally

_OWNER = """
import sys, time
from pathlib import Path
from docfoundry_grpc.devdb import LocalPostgres
cluster = LocalPostgres(Path(sys.argv[1])).start()
print(cluster.base_dir, flush=True)
time.sleep(600)
"""


def _postmaster_pid(base_dir: Path) -> int:
    return int((base_dir / "data" / "postmaster.pid").read_text().split()[0])


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    made_locally(lambda: LocalPostgres(tmp_path).destroy())  # can this machine make any?
    return tmp_path


def test_cluster_of_a_killed_owner_is_reaped(parent: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(parent)], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    base_dir = Path(owner.stdout.readline().strip())
    postmaster = _postmaster_pid(base_dir)
    assert _running(postmaster)

    assert reap_orphans(parent) == []  # its owner still runs: left alone

    owner.send_signal(signal.SIGKILL)
    owner.wait()
    owner.stdout.close()
    assert _running(postmaster)  # nothing cleaned up after the kill
    assert reap_orphans(parent) == [base_dir]
    deadline = time.monotonic() + 10
    while _running(postmaster) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(postmaster)
    assert not base_dir.exists()


def test_a_new_cluster_reaps_before_it_starts(parent: Path) -> None:
    orphan = parent / "docfoundry-pg-orphan"
    (orphan / "data").mkdir(parents=True)
    (orphan / "owner").write_text("999999999 0\n")  # no such process
    cluster = LocalPostgres(parent)
    try:
        assert not orphan.exists()
        assert cluster.base_dir.exists()
    finally:
        cluster.destroy()
