"""Python client for the DocFoundry gRPC API.

Results come back as frozen dataclasses so callers never handle protobuf messages. Failed
calls raise `grpc.aio.AioRpcError` unchanged: its `code()` and `details()` are the server's
contract (NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE…) and a wrapper would only hide them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar, Unpack

import grpc
import grpc.aio
from google.protobuf.message import Message

from docfoundry.v1 import search_pb2 as pb

from .convert import (
    _method_path,
    document_to_pb,
    health_from_pb,
    index_outcome_from_pb,
    search_request,
    search_result_from_pb,
)
from .models import (
    DEFAULT_TARGET,
    DeleteOutcome,
    DocumentLike,
    HealthInfo,
    IndexOutcome,
    SearchMode,
    SearchOptions,
    SearchResult,
)

_T = TypeVar("_T")
_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)


@dataclass(frozen=True)
class _Rpcs:
    """Typed callables for every RPC, built from the proto descriptor.

    The generated `search_pb2_grpc` stubs carry no type information; binding the methods
    here keeps request and response types checked without a second copy of the paths.
    """

    fulltext: grpc.aio.UnaryUnaryMultiCallable[pb.SearchRequest, pb.SearchResponse]
    semantic: grpc.aio.UnaryUnaryMultiCallable[pb.SearchRequest, pb.SearchResponse]
    hybrid: grpc.aio.UnaryUnaryMultiCallable[pb.SearchRequest, pb.SearchResponse]
    record_click: grpc.aio.UnaryUnaryMultiCallable[pb.RecordClickRequest, pb.RecordClickResponse]
    health: grpc.aio.UnaryUnaryMultiCallable[pb.HealthRequest, pb.HealthResponse]
    index_documents: grpc.aio.StreamStreamMultiCallable[
        pb.IndexDocumentRequest, pb.IndexDocumentResult
    ]
    delete_document: grpc.aio.UnaryUnaryMultiCallable[
        pb.DeleteDocumentRequest, pb.DeleteDocumentResponse
    ]

    @classmethod
    def bind(cls, channel: grpc.aio.Channel) -> _Rpcs:
        def unary(
            service: str, method: str, request: type[_Req], response: type[_Resp]
        ) -> grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp]:
            return channel.unary_unary(
                _method_path(service, method),
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )

        search = "SearchService"
        return cls(
            fulltext=unary(search, "Fulltext", pb.SearchRequest, pb.SearchResponse),
            semantic=unary(search, "Semantic", pb.SearchRequest, pb.SearchResponse),
            hybrid=unary(search, "Hybrid", pb.SearchRequest, pb.SearchResponse),
            record_click=unary(
                search, "RecordClick", pb.RecordClickRequest, pb.RecordClickResponse
            ),
            health=unary(search, "Health", pb.HealthRequest, pb.HealthResponse),
            index_documents=channel.stream_stream(
                _method_path("IndexService", "IndexDocuments"),
                request_serializer=pb.IndexDocumentRequest.SerializeToString,
                response_deserializer=pb.IndexDocumentResult.FromString,
            ),
            delete_document=unary(
                "IndexService",
                "DeleteDocument",
                pb.DeleteDocumentRequest,
                pb.DeleteDocumentResponse,
            ),
        )


class DocFoundryClient:
    """Async client; use as `async with DocFoundryClient(target) as client:`.

    The channel is opened on first use rather than in `__init__` because a grpc.aio channel
    belongs to the event loop that is running when it is created. `timeout` is the deadline
    of each unary call; index streams have their own (see `index_documents`).
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._rpcs: _Rpcs | None = None

    async def __aenter__(self) -> Self:
        self._bound()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel; a later call opens a new one."""
        channel, self._channel, self._rpcs = self._channel, None, None
        if channel is not None:
            await channel.close()

    async def fulltext(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        """BM25 search; `query_vector` and the fusion options are ignored by the server."""
        return await self._search(self._bound().fulltext, q, options)

    async def semantic(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        """Embedding search; `query_vector` skips the server-side embedding of `q`."""
        return await self._search(self._bound().semantic, q, options)

    async def hybrid(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        """Reciprocal rank fusion of both legs; hits carry each leg's rank and score."""
        return await self._search(self._bound().hybrid, q, options)

    async def search(
        self, q: str, mode: SearchMode = "hybrid", **options: Unpack[SearchOptions]
    ) -> SearchResult:
        """Dispatches to `fulltext`, `semantic` or `hybrid`; any other mode: ValueError."""
        rpcs = self._bound()
        methods = {"fulltext": rpcs.fulltext, "semantic": rpcs.semantic, "hybrid": rpcs.hybrid}
        if mode not in methods:
            raise ValueError(f"unknown search mode {mode!r}; expected one of {sorted(methods)}")
        return await self._search(methods[mode], q, options)

    async def record_click(
        self,
        query: str,
        chunk_id: int,
        *,
        position: int,
        session_id: str = "",
        user_id: str = "",
        dwell_time: float = 0.0,
    ) -> int:
        """Stores a click on the hit at 1-based `position`; returns the click id."""
        request = pb.RecordClickRequest(
            query=query,
            chunk_id=chunk_id,
            position=position,
            session_id=session_id,
            user_id=user_id,
            dwell_time=dwell_time,
        )
        response = await self._bound().record_click(request, timeout=self.timeout)
        return response.click_id

    async def health(self) -> HealthInfo:
        response = await self._bound().health(pb.HealthRequest(), timeout=self.timeout)
        return health_from_pb(response)

    async def delete_document(self, path: str) -> DeleteOutcome:
        """Removes a document with its chunks and clicks; unknown path raises NOT_FOUND."""
        request = pb.DeleteDocumentRequest(path=path)
        response = await self._bound().delete_document(request, timeout=self.timeout)
        return DeleteOutcome(response.path, response.chunks_deleted, response.clicks_deleted)

    async def index_documents(
        self,
        documents: AsyncIterable[DocumentLike] | Iterable[DocumentLike],
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[IndexOutcome]:
        """Streams documents to IndexDocuments and yields one outcome per document, in order.

        The stream has no deadline unless `timeout` is given, because its length depends on
        the input. Documents are sent while outcomes are read, so a large input never sits
        in memory. An error raised by `documents` itself (say, an unreadable file) cancels
        the stream and is re-raised here instead of surfacing as a bare cancellation.
        """
        call = self._bound().index_documents(timeout=timeout)
        writer = asyncio.create_task(_send_documents(call, documents))
        try:
            try:
                async for result in call:
                    yield index_outcome_from_pb(result)
            except (asyncio.CancelledError, grpc.aio.AioRpcError):
                cause = _writer_failure(writer)
                if cause is not None:
                    raise cause from None
                raise
            await writer
        finally:
            if not writer.done():
                writer.cancel()
                await asyncio.wait({writer})
            call.cancel()

    def _bound(self) -> _Rpcs:
        if self._rpcs is None:
            self._channel = (
                grpc.aio.secure_channel(self.target, self._credentials)
                if self._credentials is not None
                else grpc.aio.insecure_channel(self.target)
            )
            self._rpcs = _Rpcs.bind(self._channel)
        return self._rpcs

    async def _search(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[pb.SearchRequest, pb.SearchResponse],
        q: str,
        options: SearchOptions,
    ) -> SearchResult:
        response = await method(search_request(q, **options), timeout=self.timeout)
        return search_result_from_pb(response)


async def _send_documents(
    call: grpc.aio.StreamStreamCall[pb.IndexDocumentRequest, pb.IndexDocumentResult],
    documents: AsyncIterable[DocumentLike] | Iterable[DocumentLike],
) -> None:
    """Writes every document then half-closes; stops quietly once the call has failed,
    since the reader reports that status."""
    try:
        if isinstance(documents, AsyncIterable):
            async for document in documents:
                await call.write(pb.IndexDocumentRequest(document=document_to_pb(document)))
        else:
            for document in documents:
                await call.write(pb.IndexDocumentRequest(document=document_to_pb(document)))
        await call.done_writing()
    except grpc.aio.AioRpcError:
        return
    except BaseException:
        call.cancel()
        raise


def _writer_failure(writer: asyncio.Task[None]) -> BaseException | None:
    """The input's own error, when that is what ended the call."""
    if writer.done() and not writer.cancelled():
        return writer.exception()
    return None
