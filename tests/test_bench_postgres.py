"""The benchmark's own PostgreSQL cluster: sized as a production server would be, and
described in the report as it ran."""

from __future__ import annotations

import os

from bench.report import _postgres_line
from bench.server import PostgresHost, _fetchval

from .conftest import made_locally


def test_the_bench_cluster_gets_a_quarter_of_memory_as_buffer_cache() -> None:
    host = made_locally(lambda: PostgresHost(None))
    try:
        described = host.describe()
        buffer_bytes = int(
            str(
                _fetchval(host.admin_dsn, "SELECT pg_size_bytes(current_setting('shared_buffers'))")
            )
        )
    finally:
        host.close()
    quarter = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    assert quarter - 2**20 < buffer_bytes <= quarter  # whole megabytes
    assert described["own_cluster"] is True
    (line, _) = _postgres_line(described)
    assert f"shared_buffers {described['shared_buffers']}" in line
    assert "the bench's own cluster" in line
    assert _postgres_line(None) == []  # SQLite-only runs say nothing of PostgreSQL
