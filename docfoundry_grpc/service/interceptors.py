"""One interceptor at the gRPC boundary: domain errors → status codes (one table), metrics,
and one log line per RPC. Unknown exceptions become INTERNAL with a generic message; the
traceback goes to the log, never to the client.

A domain error's status also carries google.rpc details (through grpcio-status, in the
standard `grpc-status-details-bin` trailer), so callers in any language can act on it
without parsing messages: an ErrorInfo with a stable reason, and for a bad field a
BadRequest naming it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from .. import errors
from ..metrics import ServiceMetrics

log = logging.getLogger("docfoundry_grpc.rpc")
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

STATUS_OF_ERROR: dict[type[errors.DocFoundryError], grpc.StatusCode] = {
    errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.StoreUnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.StoreBusyError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.SchemaMismatchError: grpc.StatusCode.FAILED_PRECONDITION,
}


ERROR_DOMAIN = "docfoundry.dev"
# ErrorInfo reasons: stable, UPPER_SNAKE_CASE, one per kind of domain error.
REASON_OF_ERROR: dict[type[errors.DocFoundryError], str] = {
    errors.InvalidArgumentError: "INVALID_ARGUMENT",
    errors.NotFoundError: "NOT_FOUND",
    errors.AlreadyExistsError: "ALREADY_EXISTS",
    errors.StoreUnavailableError: "STORE_UNAVAILABLE",
    errors.StoreBusyError: "STORE_BUSY",
    errors.SchemaMismatchError: "SCHEMA_MISMATCH",
}


def rich_status(exc: BaseException) -> grpc.Status:
    """The status of an exception, with google.rpc details for a domain error."""
    code, message = status_for(exc)
    details: list[any_pb2.Any] = []
    reason = next((r for t, r in REASON_OF_ERROR.items() if isinstance(exc, t)), None)
    if reason is not None:
        details.append(_packed(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN)))
    if isinstance(exc, errors.InvalidArgumentError) and exc.field:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.field, description=message
        )
        details.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
    status = status_pb2.Status(code=_CODES[code], message=message, details=details)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


_CODES = {code: code_pb2.Code.Value(code.name) for code in grpc.StatusCode}


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    for error_type, code in STATUS_OF_ERROR.items():
        if isinstance(exc, error_type):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, "internal error"


class _RpcScope:
    """Times one RPC, records its outcome exactly once, and turns an exception escaping the
    handler into the status of the error table (aborting the call)."""

    def __init__(self, method: str, metrics: ServiceMetrics | None, context: Context) -> None:
        self.method = method
        self.metrics = metrics
        self.context = context
        self.started = time.perf_counter()

    async def __aenter__(self) -> None:
        if self.metrics:
            self.metrics.rpc_in_flight.labels(self.method).inc()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            self._finish(grpc.StatusCode.OK)
        elif isinstance(exc, grpc.aio.AbortError):
            self._finish(self.context.code() or grpc.StatusCode.UNKNOWN)
        elif isinstance(exc, asyncio.CancelledError):
            self._finish(grpc.StatusCode.CANCELLED)
        elif isinstance(exc, Exception):
            status = rich_status(exc)
            if status.code is grpc.StatusCode.INTERNAL:
                log.error("unhandled error in %s", self.method, exc_info=exc)
            self._finish(status.code)
            await self.context.abort(status.code, status.details, status.trailing_metadata)

    def _finish(self, code: grpc.StatusCode) -> None:
        elapsed = time.perf_counter() - self.started
        if self.metrics:
            self.metrics.rpc_in_flight.labels(self.method).dec()
            self.metrics.rpc_requests.labels(self.method, code.name).inc()
            self.metrics.rpc_duration.labels(self.method).observe(elapsed)
        log.info(
            "rpc %s %s %.2fms",
            self.method,
            code.name,
            elapsed * 1000,
            extra={
                "rpc_method": self.method,
                "grpc_code": code.name,
                "duration_ms": round(elapsed * 1000, 3),
            },
        )


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: ServiceMetrics | None = None) -> None:
        self.metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(method, handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, method: str, behavior: Any) -> Any:
        async def wrapper(request: Any, context: Context) -> Any:
            async with _RpcScope(method, self.metrics, context):
                return await behavior(request, context)

        return wrapper

    def _stream(self, method: str, behavior: Any) -> Any:
        async def wrapper(request: Any, context: Context) -> AsyncIterator[Any]:
            async with _RpcScope(method, self.metrics, context):
                async for response in behavior(request, context):
                    yield response

        return wrapper
