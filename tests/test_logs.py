"""Logs: one line per RPC, JSON on request, SQL statements without values, no secrets."""

from __future__ import annotations

import json
import logging

import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc.config import DatabaseConfig, PostgresConfig
from docfoundry_grpc.embedding import MiniLMEmbedder
from docfoundry_grpc.logs import JsonFormatter

from .conftest import Harness, PostgresServer, fresh_database, start_harness, stop_harness
from .test_grpc import indexed


def test_json_formatter_writes_one_object_with_extras() -> None:
    record = logging.makeLogRecord(
        {
            "name": "docfoundry_grpc.rpc",
            "levelname": "INFO",
            "levelno": logging.INFO,
            "msg": "rpc %s",
            "args": ("Hybrid",),
            "rpc_method": "Hybrid",
            "duration_ms": 1.5,
        }
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "rpc Hybrid"
    assert (entry["level"], entry["rpc_method"], entry["duration_ms"]) == ("INFO", "Hybrid", 1.5)
    assert "T" in entry["time"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_one_info_line_per_rpc(server: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="docfoundry_grpc.rpc")
    await server.search.Fulltext(pb.FulltextRequest(q="port"))
    [record] = [r for r in caplog.records if r.name == "docfoundry_grpc.rpc"]
    assert (record.levelno, record.rpc_method, record.grpc_code) == (  # type: ignore[attr-defined]
        logging.INFO,
        "Fulltext",
        "OK",
    )
    assert record.duration_ms > 0  # type: ignore[attr-defined]


async def test_sql_logging_without_values_or_password(
    postgres_server: PostgresServer, embedder: MiniLMEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with fresh_database(postgres_server) as dsn:
        with_password = dsn.replace("postgres@", "postgres:s3cret-pw@", 1)
        database = DatabaseConfig(
            type="postgresql",
            postgres=PostgresConfig(
                url=with_password, pool_min_size=1, pool_max_size=2, log_queries=True
            ),
        )
        harness = await indexed(await start_harness(database, embedder))
        try:
            await harness.search.Fulltext(pb.FulltextRequest(q="zebracorn"))
        finally:
            await stop_harness(harness)
    statements = [r.getMessage() for r in caplog.records if r.name == "docfoundry_grpc.sql"]
    assert any("FROM postings" in s for s in statements)
    assert not any("zebracorn" in s for s in statements)
    assert "s3cret-pw" not in caplog.text


def test_safe_dsn_masks_password() -> None:
    config = PostgresConfig(host="db", user="app", password="p@ss:word", database="docs")
    assert "p@ss" not in config.safe_dsn() and "***" in config.safe_dsn()
    assert "p@ss" not in repr(config)
    assert "p%40ss%3Aword" in config.dsn()
