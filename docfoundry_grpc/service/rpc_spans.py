"""The span of each RPC, when tracing is on: OpenTelemetry's gRPC interceptor, which
continues the caller's trace from W3C `traceparent` metadata, goes before the service's
own interceptor so that its span encloses everything the call does (authentication,
admission, the handler); with tracing off there are no interceptors here at all."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from ..tracing import Tracing

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Streaming: TypeAlias = Callable[[Any, Context], AsyncGenerator[Any, None]]

# Probes and tooling, not work: Kubernetes checks health every few seconds. (Health's
# Watch also writes with context.write, which the instrumentation cannot wrap.)
UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")


def rpc_span_interceptors(tracing: Tracing) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors that make each RPC's span, to go first; none when off."""
    if tracing.provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    untraced = filters.any_of(*(filters.service_prefix(s) for s in UNTRACED_SERVICES))
    spans = aio_server_interceptor(  # type: ignore[no-untyped-call]
        tracer_provider=tracing.provider, filter_=filters.negate(untraced)
    )
    return [StreamDriver(), spans]


class StreamDriver(grpc.aio.ServerInterceptor):
    """Runs each response stream as a coroutine that writes the messages and closes the
    stream in the call's own task. gRPC iterates a generator itself and, when the caller
    goes away during a write, drops it: it is closed later from another context, where
    OpenTelemetry cannot detach the trace context it attached there and logs "Failed to
    detach context" (open-telemetry/opentelemetry-python-contrib#2357, grpc/grpc#42295)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or not handler.response_streaming:
            return handler
        parse = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.request_streaming:
            if inspect.isasyncgenfunction(handler.stream_stream):
                return grpc.stream_stream_rpc_method_handler(
                    _driven(handler.stream_stream), **parse
                )
        elif inspect.isasyncgenfunction(handler.unary_stream):
            return grpc.unary_stream_rpc_method_handler(_driven(handler.unary_stream), **parse)
        return handler


def _driven(behavior: Streaming) -> Callable[[Any, Context], Awaitable[None]]:
    async def drive(request: Any, context: Context) -> None:
        responses = behavior(request, context)
        try:
            async for response in responses:
                await context.write(response)
        finally:
            await responses.aclose()

    return drive
