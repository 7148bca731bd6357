"""The store supervisor outlives a database that comes back unusable, and stop() stays
graceful whatever happened to it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from docfoundry_grpc.config import DatabaseConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
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
