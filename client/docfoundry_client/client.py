"""Python client for the DocFoundry gRPC API.

Results come back as frozen dataclasses so callers never handle protobuf messages. Failed
calls raise `grpc.aio.AioRpcError` unchanged: its `code()` and `details()` are the server's
contract (NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE…) and a wrapper would only hide them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self, TypedDict, TypeVar, Unpack

import grpc
import grpc.aio
from google.protobuf.message import Message

from docfoundry.v1 import search_pb2 as pb

from .files import ChunkSpec, DocumentSpec

DEFAULT_TARGET = "localhost:50051"
SearchMode = Literal["fulltext", "semantic", "hybrid"]
DocumentLike = pb.Document | DocumentSpec

_T = TypeVar("_T")
_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)


@dataclass(frozen=True)
class LegScore:
    """Where a hybrid hit stood in one leg: 1-based rank and that leg's own score."""

    rank: int
    score: float


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_path: str
    title: str
    source_url: str
    heading: str
    anchor: str
    snippet: str
    score: float
    fulltext: LegScore | None = None
    semantic: LegScore | None = None

    @property
    def link(self) -> str:
        """Deep link to the chunk's section, or to the document when it has no anchor."""
        return f"{self.document_path}#{self.anchor}" if self.anchor else self.document_path


@dataclass(frozen=True)
class SearchResult:
    """`search_type` is "fulltext", "semantic" or "hybrid", as in `search(mode=...)`."""

    search_type: str
    took_ms: float
    hits: list[SearchHit]


@dataclass(frozen=True)
class PoolInfo:
    size: int
    in_use: int
    idle: int
    min_size: int
    max_size: int
    waiting: int


@dataclass(frozen=True)
class HealthInfo:
    """`status` is "SERVING" or "NOT_SERVING" (then `detail` says why); `pool` is None for
    backends without a connection pool and `timestamp` None if the server sent none."""

    status: str
    database_type: str
    schema_version: int
    document_count: int
    chunk_count: int
    click_count: int
    embedding_model: str
    embedding_dimension: int
    timestamp: datetime | None
    pool: PoolInfo | None
    database_roundtrip_ms: float
    version: str
    detail: str

    @property
    def serving(self) -> bool:
        return self.status == "SERVING"


@dataclass(frozen=True)
class IndexOutcome:
    """`outcome` is "created", "replaced" or "unchanged"."""

    path: str
    outcome: str
    chunk_count: int


@dataclass(frozen=True)
class DeleteOutcome:
    path: str
    chunks_deleted: int
    clicks_deleted: int


class SearchOptions(TypedDict, total=False):
    """Optional search parameters; omitted ones take the server's defaults."""

    k: int
    path_prefix: str
    min_similarity: float | None
    rrf_k: int
    query_vector: Sequence[float] | None
    fulltext_weight: float | None
    semantic_weight: float | None


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


class SyncDocFoundryClient:
    """Blocking facade over DocFoundryClient for scripts and notebooks.

    The async client runs on a private event loop in a daemon thread, so one channel is
    reused across calls and the facade also works from code that already runs a loop
    (where `asyncio.run` would refuse). Use as a context manager or call `close()`.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._client = DocFoundryClient(target, timeout=timeout, credentials=credentials)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="docfoundry-client", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def fulltext(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        return self._run(self._client.fulltext(q, **options))

    def semantic(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        return self._run(self._client.semantic(q, **options))

    def hybrid(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        return self._run(self._client.hybrid(q, **options))

    def search(
        self, q: str, mode: SearchMode = "hybrid", **options: Unpack[SearchOptions]
    ) -> SearchResult:
        return self._run(self._client.search(q, mode, **options))

    def record_click(
        self,
        query: str,
        chunk_id: int,
        *,
        position: int,
        session_id: str = "",
        user_id: str = "",
        dwell_time: float = 0.0,
    ) -> int:
        return self._run(
            self._client.record_click(
                query,
                chunk_id,
                position=position,
                session_id=session_id,
                user_id=user_id,
                dwell_time=dwell_time,
            )
        )

    def health(self) -> HealthInfo:
        return self._run(self._client.health())

    def index_documents(
        self, documents: Iterable[DocumentLike], *, timeout: float | None = None
    ) -> list[IndexOutcome]:
        """All outcomes once the stream ends; `documents` is consumed on the client's thread."""
        return self._run(_collect(self._client.index_documents(documents, timeout=timeout)))

    def delete_document(self, path: str) -> DeleteOutcome:
        return self._run(self._client.delete_document(path))

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        if self._loop.is_closed():
            coroutine.close()
            raise RuntimeError("SyncDocFoundryClient is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()


def search_request(
    q: str,
    *,
    k: int = 10,
    path_prefix: str = "",
    min_similarity: float | None = None,
    rrf_k: int = 0,
    query_vector: Sequence[float] | None = None,
    fulltext_weight: float | None = None,
    semantic_weight: float | None = None,
) -> pb.SearchRequest:
    """None leaves an optional field unset, which the server reads as "use the default"."""
    return pb.SearchRequest(
        q=q,
        k=k,
        query_vector=query_vector or (),
        min_similarity=min_similarity,
        rrf_k=rrf_k,
        path_prefix=path_prefix,
        fulltext_weight=fulltext_weight,
        semantic_weight=semantic_weight,
    )


def search_result_from_pb(response: pb.SearchResponse) -> SearchResult:
    search_type = pb.SearchType.Name(response.search_type).removeprefix("SEARCH_TYPE_")
    return SearchResult(
        search_type=search_type.lower(),
        took_ms=response.took_ms,
        hits=[hit_from_pb(hit) for hit in response.hits],
    )


def hit_from_pb(hit: pb.Hit) -> SearchHit:
    return SearchHit(
        chunk_id=hit.chunk_id,
        document_path=hit.document_path,
        title=hit.title,
        source_url=hit.source_url,
        heading=hit.heading,
        anchor=hit.anchor,
        snippet=hit.snippet,
        score=hit.score,
        fulltext=_leg(hit, "fulltext"),
        semantic=_leg(hit, "semantic"),
    )


def health_from_pb(response: pb.HealthResponse) -> HealthInfo:
    pool = response.pool
    return HealthInfo(
        status=pb.HealthResponse.Status.Name(response.status),
        database_type=response.database_type,
        schema_version=response.schema_version,
        document_count=response.document_count,
        chunk_count=response.chunk_count,
        click_count=response.click_count,
        embedding_model=response.embedding_model,
        embedding_dimension=response.embedding_dimension,
        timestamp=(
            response.timestamp.ToDatetime(tzinfo=UTC) if response.HasField("timestamp") else None
        ),
        pool=(
            PoolInfo(pool.size, pool.in_use, pool.idle, pool.min_size, pool.max_size, pool.waiting)
            if response.HasField("pool")
            else None
        ),
        database_roundtrip_ms=response.database_roundtrip_ms,
        version=response.version,
        detail=response.detail,
    )


def index_outcome_from_pb(result: pb.IndexDocumentResult) -> IndexOutcome:
    outcome = pb.IndexDocumentResult.Outcome.Name(result.outcome).lower()
    return IndexOutcome(path=result.path, outcome=outcome, chunk_count=result.chunk_count)


def document_to_pb(document: DocumentLike) -> pb.Document:
    if isinstance(document, pb.Document):
        return document
    return pb.Document(
        path=document.path,
        title=document.title,
        source_url=document.source_url,
        content=document.content,
        content_type=document.content_type,
        chunks=[_chunk_to_pb(chunk) for chunk in document.chunks],
    )


def _chunk_to_pb(chunk: ChunkSpec) -> pb.ChunkInput:
    return pb.ChunkInput(
        heading=chunk.heading, anchor=chunk.anchor, text=chunk.text, embedding=chunk.embedding
    )


def _leg(hit: pb.Hit, name: Literal["fulltext", "semantic"]) -> LegScore | None:
    if not hit.HasField(name):
        return None
    leg: pb.LegResult = getattr(hit, name)
    return LegScore(rank=leg.rank, score=leg.score)


def _method_path(service: str, method: str) -> str:
    """`/package.Service/Method`; a KeyError here means the client and proto disagree."""
    descriptor = pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    return f"/{descriptor.containing_service.full_name}/{descriptor.name}"


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


async def _collect(outcomes: AsyncIterator[IndexOutcome]) -> list[IndexOutcome]:
    return [outcome async for outcome in outcomes]
