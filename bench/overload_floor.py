"""The floor under `python -m bench.overload`'s time to refusal: the same callers, in the
same processes, against a gRPC server in this process that refuses every call at once with
DocFoundry's own interceptor and status (RESOURCE_EXHAUSTED with RetryInfo), doing no other
work. What the callers see there is what a refusal costs the clients, the transport and
gRPC's Python on this machine; what the real server adds on top is its own."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc

from docfoundry.v1 import search_pb2_grpc as pb_grpc
from docfoundry_grpc.errors import OverloadedError
from docfoundry_grpc.service.interceptors import ServiceInterceptor

REFUSAL_DELAY_SECONDS = 0.5  # what the real server advises under load, about


class _Refuser(pb_grpc.SearchServiceServicer):
    async def _refuse(self, request: Any, context: Any) -> Any:
        raise OverloadedError("refusal floor", retry_after=REFUSAL_DELAY_SECONDS)

    Fulltext = Semantic = Hybrid = _refuse


@contextmanager
def refusing_server() -> Iterator[str]:
    """A refusing server on a loopback port, on an event loop of its own thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    address: list[str] = []
    stop: asyncio.Event | None = None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        server = grpc.aio.server(interceptors=[ServiceInterceptor()])
        pb_grpc.add_SearchServiceServicer_to_server(_Refuser(), server)
        address.append(f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}")
        await server.start()
        started.set()
        await stop.wait()
        await server.stop(None)

    rpc_log = logging.getLogger("docfoundry_grpc.rpc")  # a line per refusal otherwise
    level = rpc_log.level
    rpc_log.setLevel(logging.WARNING)
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    started.wait(timeout=30)
    try:
        yield address[0]
    finally:
        rpc_log.setLevel(level)
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
