"""The store supervisor outlives a database that comes back unusable, and stop() stays
graceful whatever happened to it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from docfoundry_grpc.config import DatabaseConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.service import app as app_module
from docfoundry_grpc.storage.sqlite import SQLiteAdapter

from .conftest import start_harness, stop_harness
from .test_postgres_failures import NOT_SERVING, SERVING, eventually, health_is


async def test_a_database_back_with_another_dimension_is_reported_not_fatal(
    tmp_path: Path, embedder: MiniLMEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "db"
    blocker.write_text("a file where the database folder should be")  # unavailable
    config = DatabaseConfig(type="sqlite", sqlite_path=blocker / "docfoundry.db")
    harness = await start_harness(config, embedder)
    try:
        assert await health_is(harness, NOT_SERVING)()
        blocker.unlink()
        blocker.mkdir()
        other = SQLiteAdapter(config.sqlite_path, dimension=8)  # made for another model
        await other.open()
        await other.close()

        async def reported() -> bool:
            return "database check failed" in caplog.text and "8-d embeddings" in caplog.text

        with caplog.at_level(logging.ERROR, logger="docfoundry_grpc.service.app"):
            await eventually(reported)
            assert await health_is(harness, NOT_SERVING)()
            supervisor = harness.app._supervisor
            assert supervisor is not None and not supervisor.done()  # still watching
            config.sqlite_path.unlink()  # fixed: an empty database the server can make
            await eventually(health_is(harness, SERVING))
    finally:
        with caplog.at_level(logging.INFO, logger="docfoundry_grpc.service.app"):
            await stop_harness(harness)
    assert "DocFoundry stopped" in caplog.text


async def test_a_stop_step_that_hangs_is_left_after_its_bound(
    tmp_path: Path,
    embedder: MiniLMEmbedder,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step that never finishes (a stand-in for a driver or gRPC hang, which cannot be
    caused on demand) is logged with the pending tasks' stacks, and the stop goes on to
    its end instead of holding the process until it is killed."""
    config = DatabaseConfig(type="sqlite", sqlite_path=tmp_path / "docfoundry.db")
    harness = await start_harness(config, embedder)
    store = harness.app.store
    real_close = store.close
    never = asyncio.Event()

    async def hanging_close() -> None:
        await never.wait()

    monkeypatch.setattr(app_module, "STOP_STEP_SECONDS", 0.3)
    monkeypatch.setattr(store, "close", hanging_close)
    with caplog.at_level(logging.INFO, logger="docfoundry_grpc.service.app"):
        await asyncio.wait_for(stop_harness(harness), timeout=10)
    await real_close()
    assert "stopping: storage did not finish in 0.3 s" in caplog.text
    assert "hanging_close" in caplog.text  # the stack of the task it waited for
    assert "DocFoundry stopped" in caplog.text
