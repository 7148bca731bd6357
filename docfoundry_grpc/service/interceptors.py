"""One interceptor at the gRPC boundary. For every call, in order: one log line and the
metrics (whatever happens next), a malformed message → INVALID_ARGUMENT, the API key and
its scopes (when keys are on), admission control, and a time limit for calls that bring
none. Domain errors become status codes through one table; unknown exceptions become
INTERNAL with a generic message, the traceback going to the log, never to the client.

A domain error's status also carries google.rpc details (through grpcio-status, in the
standard `grpc-status-details-bin` trailer), so callers in any language can act on it
without parsing messages: an ErrorInfo with a stable reason, and for a bad field a
BadRequest naming it."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext, suppress
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from .. import errors
from ..admission import CALL_DEADLINE, Admission
from ..metrics import UNMEASURED, RpcCall, ServiceMetrics
from ..models import ApiKey
from .auth import CALLER_KEY, Authenticator
from .policy import Kind, MethodPolicy, policy_for

log = logging.getLogger("docfoundry_grpc.rpc")
DEADLINE_SLACK_SECONDS = 0.05
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

STATUS_OF_ERROR: dict[type[errors.DocFoundryError], grpc.StatusCode] = {
    errors.InvalidArgumentError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFoundError: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.StoreUnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.StoreBusyError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.SchemaMismatchError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.StoreLockedError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.NotEnoughClicksError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.OverloadedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceededError: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
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
    errors.StoreLockedError: "STORE_LOCKED",
    errors.NotEnoughClicksError: "NOT_ENOUGH_CLICKS",
    errors.OverloadedError: "OVERLOADED",
    errors.DeadlineExceededError: "DEADLINE_EXCEEDED",
    errors.UnauthenticatedError: "UNAUTHENTICATED",
    errors.PermissionDeniedError: "PERMISSION_DENIED",
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
    if isinstance(exc, errors.OverloadedError):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(exc.retry_after * 1e9))
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
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


@dataclass(frozen=True)
class Malformed:
    """A message that did not parse: handed to the wrapper instead of failing inside gRPC,
    which would answer UNKNOWN."""

    reason: str


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # protobuf's DecodeError, or anything a parser raises
            return Malformed(str(exc))

    return parse


def _parsed(request: Any) -> Any:
    if isinstance(request, Malformed):
        raise errors.InvalidArgumentError(f"malformed request: {request.reason}")
    return request


class _RpcScope:
    """Times one RPC, records its outcome exactly once, and turns an exception escaping the
    handler into the status of the error table (aborting the call)."""

    def __init__(self, method: str, call: RpcCall, context: Context) -> None:
        self.method = method
        self.call = call
        self.context = context
        self.started = time.perf_counter()

    async def __aenter__(self) -> RpcCall:
        self.call.started()
        return self.call

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None:
            self._finish(grpc.StatusCode.OK)
        elif isinstance(exc, grpc.aio.AbortError):
            self._finish(self.context.code() or grpc.StatusCode.UNKNOWN)
        elif isinstance(exc, asyncio.CancelledError):
            self._finish(self._cancelled_code())
        elif isinstance(exc, Exception):
            status = rich_status(exc)
            if status.code is grpc.StatusCode.INTERNAL:
                log.error("unhandled error in %s", self.method, exc_info=exc)
            self._finish(status.code)
            await self.context.abort(status.code, status.details, status.trailing_metadata)
        else:  # GeneratorExit: gRPC closing a stream its caller abandoned
            self._finish(self._cancelled_code())

    def _cancelled_code(self) -> grpc.StatusCode:
        """gRPC cancels the handler both when the caller goes away and when the deadline
        passes; the time left tells which. Its deadline timer and `time_remaining` read
        different clocks, so a cancel at the deadline may still see a sliver of time left:
        within DEADLINE_SLACK_SECONDS of it, a cancel is the deadline's."""
        remaining = self.context.time_remaining()
        if remaining is not None and remaining <= DEADLINE_SLACK_SECONDS:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED

    def _finish(self, code: grpc.StatusCode) -> None:
        elapsed = time.perf_counter() - self.started
        self.call.handled(code.name, elapsed)
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


def _set_call_context(key: ApiKey | None, deadline: float | None) -> None:
    """What code deep inside the call may need: who calls, and by when. gRPC runs each call
    in a task of its own, whose context dies with it, so nothing is reset: a reset from a
    stream's generator would fail when gRPC closes it from another context."""
    CALLER_KEY.set(key)
    CALL_DEADLINE.set(deadline)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """`authenticator` None: keys are off. `admission` None: no admission control.
    `request_timeout`: the limit for unary calls that come without a deadline."""

    def __init__(
        self,
        metrics: ServiceMetrics | None = None,
        *,
        authenticator: Authenticator | None = None,
        admission: Admission | None = None,
        request_timeout: float | None = None,
    ) -> None:
        self.metrics = metrics
        self.authenticator = authenticator
        self.admission = admission
        self.request_timeout = request_timeout

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        full_method = handler_call_details.method
        policy = policy_for(full_method)
        method = full_method.rsplit("/", 1)[-1]
        call = self._call(full_method, handler)
        parse = {
            "request_deserializer": _tolerant(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, call, policy, handler.unary_unary), **parse
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._unary_stream(method, call, policy, handler.unary_stream), **parse
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._stream_stream(method, call, policy, handler.stream_stream), **parse
            )
        return handler  # no stream-unary methods are served

    def _call(self, full_method: str, handler: Handler) -> RpcCall:
        """The method's metrics (ones that record nothing without metrics)."""
        if self.metrics is None:
            return UNMEASURED
        return self.metrics.grpc.call(
            full_method,
            client_streaming=handler.request_streaming,
            server_streaming=handler.response_streaming,
        )

    async def _start(self, policy: MethodPolicy, context: Context, request: Any) -> ApiKey | None:
        """The checks before a handler runs: the key, and the collection it names."""
        if self.authenticator is None:
            return None
        key = await self.authenticator.authenticate(policy, context.invocation_metadata())
        if request is not None:
            self.authenticator.check_collection(key, policy, request)
        return key

    def _deadline(self, context: Context, *, limit: float | None) -> float | None:
        remaining = context.time_remaining()
        if remaining is None:
            remaining = limit
        return None if remaining is None else time.monotonic() + remaining

    def _admitted(self, policy: MethodPolicy) -> AbstractAsyncContextManager[None]:
        if self.admission is None or policy.kind is None:
            return nullcontext()
        limiter = self.admission.search if policy.kind is Kind.SEARCH else self.admission.ingest
        return limiter.slot()

    def _unary(self, method: str, call: RpcCall, policy: MethodPolicy, behavior: Any) -> Any:
        async def wrapper(request: Any, context: Context) -> Any:
            async with _RpcScope(method, call, context):
                call.received()
                request = _parsed(request)
                key = await self._start(policy, context, request)
                deadline = self._deadline(context, limit=self.request_timeout)
                _set_call_context(key, deadline)
                async with self._admitted(policy):
                    response = await _within(deadline, behavior(request, context))
                call.sent()
                return response

        return wrapper

    def _unary_stream(self, method: str, call: RpcCall, policy: MethodPolicy, behavior: Any) -> Any:
        """Server streams (health Watch): either an async generator, or a coroutine that
        writes its messages with `context.write`."""
        if inspect.isasyncgenfunction(behavior):

            async def generator(request: Any, context: Context) -> AsyncIterator[Any]:
                async with _RpcScope(method, call, context):
                    call.received()
                    request = _parsed(request)
                    key = await self._start(policy, context, request)
                    _set_call_context(key, self._deadline(context, limit=None))
                    async for response in behavior(request, context):
                        call.sent()
                        yield response

            return generator

        async def writer(request: Any, context: Context) -> None:
            # Messages written with context.write are not counted as sent: only gRPC sees them.
            async with _RpcScope(method, call, context):
                call.received()
                request = _parsed(request)
                key = await self._start(policy, context, request)
                _set_call_context(key, self._deadline(context, limit=None))
                await behavior(request, context)

        return writer

    def _stream_stream(
        self, method: str, call: RpcCall, policy: MethodPolicy, behavior: Any
    ) -> Any:
        """Bidirectional streams (IndexDocuments): the key is checked once, each message's
        collection as it arrives; admission is per batch, inside the handler."""

        async def wrapper(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            async with _RpcScope(method, call, context):
                try:
                    key = await self._start(policy, context, None)
                    _set_call_context(key, self._deadline(context, limit=None))
                    checked = self._checked(requests, key, policy, call)
                    async for response in behavior(checked, context):
                        call.sent()
                        yield response
                except Exception:
                    await _drain(requests, REFUSED_STREAM_DRAIN_SECONDS)
                    raise

        return wrapper

    async def _checked(
        self,
        requests: AsyncIterator[Any],
        key: ApiKey | None,
        policy: MethodPolicy,
        call: RpcCall,
    ) -> AsyncIterator[Any]:
        async for request in requests:
            call.received()  # each message of a stream, as go-grpc-prometheus counts
            request = _parsed(request)
            if self.authenticator is not None:
                self.authenticator.check_collection(key, policy, request)
            yield request


# How long a refused client stream is read on before its status is sent (see _drain).
REFUSED_STREAM_DRAIN_SECONDS = 2.0


async def _drain(requests: AsyncIterator[Any], limit: float) -> None:
    """Reads and drops what the caller still sends, until it half-closes or `limit` passes.

    A call that ends while its caller is still writing is reported by grpc.aio clients as
    INTERNAL ("Failed execute_batch") instead of the status the server sent, because the
    failed write overwrites it (grpc/grpc#36066). Reading the rest first lets a refused
    upload see why it was refused; the limit keeps a caller that never stops from holding
    the call."""
    with suppress(Exception):
        async with asyncio.timeout(limit):
            async for _ in requests:
                pass


async def _within(deadline: float | None, work: Awaitable[Any]) -> Any:
    """`work`, stopped at `deadline` (monotonic seconds) with DeadlineExceededError."""
    if deadline is None:
        return await work
    try:
        async with asyncio.timeout(deadline - time.monotonic()) as limit:
            return await work
    except TimeoutError:
        if limit.expired():
            raise errors.DeadlineExceededError("the call ran past its deadline") from None
        raise
