"""Unexpected failures: INTERNAL with a generic message to the client, details to the log."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_grpc.metrics import ServiceMetrics
from docfoundry_grpc.service.interceptors import ServiceInterceptor


class BrokenServicer(pb_grpc.SearchServiceServicer):
    async def Fulltext(self, request: pb.FulltextRequest, context: Any) -> pb.FulltextResponse:
        raise RuntimeError("connection to db failed: password=hunter2")


async def test_unknown_errors_become_internal_without_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(ServiceMetrics(registry, backend="sqlite"))]
    )
    pb_grpc.add_SearchServiceServicer_to_server(BrokenServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                stub = pb_grpc.SearchServiceStub(channel)
                await stub.Fulltext(pb.FulltextRequest(q="x"))
    finally:
        await server.stop(None)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error"
    assert "hunter2" not in str(info.value.debug_error_string())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].exc_info and "RuntimeError" in caplog.text
    assert (
        registry.get_sample_value(
            "grpc_server_handled_total",
            {
                "grpc_type": "unary",
                "grpc_service": "docfoundry.v1.SearchService",
                "grpc_method": "Fulltext",
                "grpc_code": "Internal",
            },
        )
        == 1
    )
