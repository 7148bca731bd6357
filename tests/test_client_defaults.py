"""The client's defaults: its target from the environment, and its types for a user's mypy."""

from __future__ import annotations

from pathlib import Path

import pytest

from docfoundry_client import DocFoundryClient


def test_the_default_target_is_docfoundry_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCFOUNDRY_TARGET", "search.internal:7000")
    assert DocFoundryClient().target == "search.internal:7000"
    assert DocFoundryClient("other:1").target == "other:1"
    monkeypatch.delenv("DOCFOUNDRY_TARGET")
    assert DocFoundryClient().target == "localhost:50051"


def test_the_client_package_says_it_is_typed() -> None:
    import docfoundry_client

    assert (Path(docfoundry_client.__file__).parent / "py.typed").is_file()
