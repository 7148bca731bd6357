"""`make run` installs only when something it installs from has changed: the second run
of the README's first command goes straight to serving."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def planned(folder: Path, *args: str) -> str:
    """What `make` would run (a dry run: nothing is executed)."""
    result = subprocess.run(
        ["make", "-n", "-C", str(folder), *args], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_make_run_skips_the_install_when_nothing_changed(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml", "client/pyproject.toml", "scripts/bootstrap.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    assert "bootstrap.sh" in planned(tmp_path, "run")  # a fresh clone installs
    (tmp_path / ".venv").mkdir()
    later = time.time() + 5
    for stamp in (".venv/.installed", ".venv/.installed-dev"):
        (tmp_path / stamp).touch()
        os.utime(tmp_path / stamp, (later, later))
    assert "bootstrap.sh" not in planned(tmp_path, "run")
    assert "docfoundry serve" in planned(tmp_path, "run")
    assert "bootstrap.sh dev" not in planned(tmp_path, "setup-dev")
    # A changed pyproject.toml, the server's or the client's, installs again.
    assert "scripts/bootstrap.sh" in planned(tmp_path, "-W", "pyproject.toml", "run")
    assert "scripts/bootstrap.sh" in planned(tmp_path, "-W", "client/pyproject.toml", "run")
    assert "bootstrap.sh dev" in planned(tmp_path, "-W", "client/pyproject.toml", "setup-dev")
