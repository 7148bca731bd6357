"""Python client for the DocFoundry gRPC API.

Results come back as frozen dataclasses so callers never handle protobuf messages. Failed
calls raise `grpc.aio.AioRpcError` unchanged: its `code()` and `details()` are the server's
contract (NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE…) and a wrapper would only hide them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar, Unpack

import grpc
import grpc.aio
from google.protobuf.message import Message

from docfoundry.v1 import search_pb2 as pb

from .convert import (
    SearchResponse,
    _method_path,
    click_receipt_from_pb,
    collection_from_pb,
    deleted_from_pb,
    document_info_from_pb,
    document_to_pb,
    filter_to_pb,
    health_from_pb,
    index_outcome_from_pb,
    search_request,
    search_result_from_pb,
    trained_ranker_from_pb,
)
from .models import (
    DEFAULT_TARGET,
    TARGET_ENV,
    ClickReceipt,
    CollectionInfo,
    DeletedCount,
    DeleteOutcome,
    DocumentInfo,
    DocumentLike,
    DocumentPage,
    FilterLike,
    HealthInfo,
    IndexOutcome,
    SearchMode,
    SearchOptions,
    SearchResult,
    TrainedRanker,
    VectorSource,
)
from .security import ApiKeyInterceptor, api_key_from_env
from .service_config import ChannelOption, channel_options

_T = TypeVar("_T")
_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)


Unary = grpc.aio.UnaryUnaryMultiCallable


@dataclass(frozen=True)
class _Rpcs:
    """Typed callables for every RPC, built from the proto descriptor.

    The generated `search_pb2_grpc` stubs carry no type information; binding the methods
    here keeps request and response types checked without a second copy of the paths.
    """

    fulltext: Unary[pb.FulltextRequest, pb.FulltextResponse]
    semantic: Unary[pb.SemanticRequest, pb.SemanticResponse]
    hybrid: Unary[pb.HybridRequest, pb.HybridResponse]
    record_click: Unary[pb.RecordClickRequest, pb.RecordClickResponse]
    health: Unary[pb.HealthRequest, pb.HealthResponse]
    index_documents: grpc.aio.StreamStreamMultiCallable[
        pb.IndexDocumentsRequest, pb.IndexDocumentsResponse
    ]
    delete_document: Unary[pb.DeleteDocumentRequest, pb.DeleteDocumentResponse]
    delete_documents: Unary[pb.DeleteDocumentsRequest, pb.DeleteDocumentsResponse]
    get_document: Unary[pb.GetDocumentRequest, pb.GetDocumentResponse]
    list_documents: Unary[pb.ListDocumentsRequest, pb.ListDocumentsResponse]
    create_collection: Unary[pb.CreateCollectionRequest, pb.CreateCollectionResponse]
    get_collection: Unary[pb.GetCollectionRequest, pb.GetCollectionResponse]
    list_collections: Unary[pb.ListCollectionsRequest, pb.ListCollectionsResponse]
    delete_collection: Unary[pb.DeleteCollectionRequest, pb.DeleteCollectionResponse]
    train_ranker: grpc.aio.UnaryStreamMultiCallable[pb.TrainRankerRequest, pb.TrainRankerResponse]

    @classmethod
    def bind(cls, channel: grpc.aio.Channel) -> _Rpcs:
        def unary(
            service: str, method: str, request: type[_Req], response: type[_Resp]
        ) -> Unary[_Req, _Resp]:
            return channel.unary_unary(
                _method_path(service, method),
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )

        search, index, collections = "SearchService", "IndexService", "CollectionService"
        return cls(
            fulltext=unary(search, "Fulltext", pb.FulltextRequest, pb.FulltextResponse),
            semantic=unary(search, "Semantic", pb.SemanticRequest, pb.SemanticResponse),
            hybrid=unary(search, "Hybrid", pb.HybridRequest, pb.HybridResponse),
            record_click=unary(
                search, "RecordClick", pb.RecordClickRequest, pb.RecordClickResponse
            ),
            health=unary(search, "Health", pb.HealthRequest, pb.HealthResponse),
            index_documents=channel.stream_stream(
                _method_path(index, "IndexDocuments"),
                request_serializer=pb.IndexDocumentsRequest.SerializeToString,
                response_deserializer=pb.IndexDocumentsResponse.FromString,
            ),
            delete_document=unary(
                index, "DeleteDocument", pb.DeleteDocumentRequest, pb.DeleteDocumentResponse
            ),
            delete_documents=unary(
                index, "DeleteDocuments", pb.DeleteDocumentsRequest, pb.DeleteDocumentsResponse
            ),
            get_document=unary(index, "GetDocument", pb.GetDocumentRequest, pb.GetDocumentResponse),
            list_documents=unary(
                index, "ListDocuments", pb.ListDocumentsRequest, pb.ListDocumentsResponse
            ),
            create_collection=unary(
                collections,
                "CreateCollection",
                pb.CreateCollectionRequest,
                pb.CreateCollectionResponse,
            ),
            get_collection=unary(
                collections, "GetCollection", pb.GetCollectionRequest, pb.GetCollectionResponse
            ),
            list_collections=unary(
                collections,
                "ListCollections",
                pb.ListCollectionsRequest,
                pb.ListCollectionsResponse,
            ),
            delete_collection=unary(
                collections,
                "DeleteCollection",
                pb.DeleteCollectionRequest,
                pb.DeleteCollectionResponse,
            ),
            train_ranker=channel.unary_stream(
                _method_path(collections, "TrainRanker"),
                request_serializer=pb.TrainRankerRequest.SerializeToString,
                response_deserializer=pb.TrainRankerResponse.FromString,
            ),
        )


class DocFoundryClient:
    """Async client; use as `async with DocFoundryClient(target) as client:`.

    The channel is opened on first use rather than in `__init__` because a grpc.aio channel
    belongs to the event loop that is running when it is created. `timeout` is the deadline
    of each unary call; index streams have their own (see `index_documents`).

    `target`: host:port (default: $DOCFOUNDRY_TARGET, else localhost:50051).
    `credentials`: TLS (see `tls_credentials`); None is plaintext, for loopback.
    `api_key`: sent as `authorization: Bearer …` (default: $DOCFOUNDRY_API_KEY, if set).
    `options`: gRPC channel options, over the defaults of `service_config` (retries of
    the reads on UNAVAILABLE, round_robin over every address of the target); pass your own
    ("grpc.service_config", json) to replace that.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        timeout: float = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
        api_key: str | None = None,
        options: Sequence[ChannelOption] = (),
    ) -> None:
        self.target = target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET
        self.timeout = timeout
        self._credentials = credentials
        self._api_key = api_key if api_key is not None else api_key_from_env()
        self._options = channel_options(options)
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
        """BM25 search; the vector and fusion options do not apply and are left out."""
        return await self.search(q, "fulltext", **options)

    async def semantic(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        """Embedding search; `query_vector` skips the server-side embedding of `q`."""
        return await self.search(q, "semantic", **options)

    async def hybrid(self, q: str, **options: Unpack[SearchOptions]) -> SearchResult:
        """Fusion of both legs; hits carry each leg's rank and score."""
        return await self.search(q, "hybrid", **options)

    async def search(
        self, q: str, mode: SearchMode = "hybrid", **options: Unpack[SearchOptions]
    ) -> SearchResult:
        """One page of hits (`k` of them; pass the result's `next_page_token` as
        `page_token` for the next). Any mode but the three: ValueError."""
        rpcs = self._bound()
        if mode not in ("fulltext", "semantic", "hybrid"):
            raise ValueError(f"unknown search mode {mode!r}; expected fulltext, semantic or hybrid")
        request = search_request(mode, q, **options)
        if isinstance(request, pb.FulltextRequest):
            response: SearchResponse = await rpcs.fulltext(request, timeout=self.timeout)
        elif isinstance(request, pb.SemanticRequest):
            response = await rpcs.semantic(request, timeout=self.timeout)
        else:
            response = await rpcs.hybrid(request, timeout=self.timeout)
        return search_result_from_pb(response)

    async def record_click(
        self,
        query: str,
        chunk_id: int,
        *,
        impression_id: str = "",
        position: int = 0,
        session_id: str = "",
        user_id: str = "",
        dwell_time: float = 0.0,
    ) -> ClickReceipt:
        """Stores a click on a hit of the search whose `impression_id` is given (its
        SearchResult's); only such a click counts as feedback. `position` (1-based) is
        needed only without one. The receipt says whether the click counts, and why not."""
        request = pb.RecordClickRequest(
            query=query,
            chunk_id=chunk_id,
            position=position,
            session_id=session_id,
            user_id=user_id,
            dwell_time=dwell_time,
            impression_id=impression_id,
        )
        response = await self._bound().record_click(request, timeout=self.timeout)
        return click_receipt_from_pb(response)

    async def health(self) -> HealthInfo:
        response = await self._bound().health(pb.HealthRequest(), timeout=self.timeout)
        return health_from_pb(response)

    async def delete_document(self, path: str, *, collection: str = "") -> DeleteOutcome:
        """Removes a document with its chunks and clicks; unknown path raises NOT_FOUND."""
        request = pb.DeleteDocumentRequest(path=path, collection=collection)
        response = await self._bound().delete_document(request, timeout=self.timeout)
        return DeleteOutcome(
            response.path,
            response.chunks_deleted,
            response.clicks_deleted,
            response.consistency_token,
        )

    async def delete_documents(self, filter: FilterLike, *, collection: str = "") -> DeletedCount:
        """Removes every document matching `filter` ({"all": {}} matches them all)."""
        request = pb.DeleteDocumentsRequest(collection=collection, filter=filter_to_pb(filter))
        return deleted_from_pb(await self._bound().delete_documents(request, timeout=self.timeout))

    async def get_document(self, path: str, *, collection: str = "") -> DocumentInfo:
        request = pb.GetDocumentRequest(path=path, collection=collection)
        response = await self._bound().get_document(request, timeout=self.timeout)
        return document_info_from_pb(response.document)

    async def list_documents(
        self,
        *,
        collection: str = "",
        filter: FilterLike | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> DocumentPage:
        """One page of documents by path; follow `next_page_token` for the rest."""
        request = pb.ListDocumentsRequest(
            collection=collection,
            filter=filter_to_pb(filter),
            page_size=page_size,
            page_token=page_token,
        )
        response = await self._bound().list_documents(request, timeout=self.timeout)
        return DocumentPage(
            [document_info_from_pb(d) for d in response.documents], response.next_page_token
        )

    async def create_collection(
        self,
        name: str,
        *,
        vectors: VectorSource = "model",
        dimension: int = 0,
        description: str = "",
    ) -> CollectionInfo:
        """A new collection: the server's model, or caller vectors of `dimension`."""
        request = pb.CreateCollectionRequest(
            name=name,
            vectors=pb.VECTOR_SOURCE_CALLER if vectors == "caller" else pb.VECTOR_SOURCE_MODEL,
            dimension=dimension,
            description=description,
        )
        response = await self._bound().create_collection(request, timeout=self.timeout)
        return collection_from_pb(response.collection)

    async def get_collection(self, name: str) -> CollectionInfo:
        request = pb.GetCollectionRequest(name=name)
        response = await self._bound().get_collection(request, timeout=self.timeout)
        return collection_from_pb(response.collection)

    async def list_collections(self) -> list[CollectionInfo]:
        request = pb.ListCollectionsRequest()
        response = await self._bound().list_collections(request, timeout=self.timeout)
        return [collection_from_pb(c) for c in response.collections]

    async def delete_collection(self, name: str) -> DeletedCount:
        request = pb.DeleteCollectionRequest(name=name)
        return deleted_from_pb(await self._bound().delete_collection(request, timeout=self.timeout))

    async def train_ranker(
        self,
        collection: str = "",
        *,
        progress: Callable[[int, int], None] | None = None,
        timeout: float | None = None,
    ) -> TrainedRanker:
        """Trains the collection's learned ranker from its clicks (admin keys); calls
        `progress(done, total)` as clicked queries are scored. No deadline unless `timeout`:
        the work grows with the click history."""
        request = pb.TrainRankerRequest(collection=collection)
        async for step in self._bound().train_ranker(request, timeout=timeout):
            if step.HasField("result"):
                return trained_ranker_from_pb(step.result)
            if progress is not None:
                progress(step.queries_done, step.queries_total)
        raise RuntimeError("TrainRanker ended without a result")

    async def index_documents(
        self,
        documents: AsyncIterable[DocumentLike] | Iterable[DocumentLike],
        *,
        collection: str = "",
        timeout: float | None = None,
    ) -> AsyncIterator[IndexOutcome]:
        """Streams documents to IndexDocuments and yields one outcome per document, in order.

        The stream has no deadline unless `timeout` is given, because its length depends on
        the input. Documents are sent while outcomes are read, so a large input never sits
        in memory. An error raised by `documents` itself (say, an unreadable file) cancels
        the stream and is re-raised here instead of surfacing as a bare cancellation.
        """
        call = self._bound().index_documents(timeout=timeout)
        writer = asyncio.create_task(_send_documents(call, documents, collection))
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
            interceptors = [ApiKeyInterceptor(self._api_key)] if self._api_key else None
            self._channel = (
                grpc.aio.secure_channel(
                    self.target, self._credentials, self._options, interceptors=interceptors
                )
                if self._credentials is not None
                else grpc.aio.insecure_channel(
                    self.target, self._options, interceptors=interceptors
                )
            )
            self._rpcs = _Rpcs.bind(self._channel)
        return self._rpcs


async def _send_documents(
    call: grpc.aio.StreamStreamCall[pb.IndexDocumentsRequest, pb.IndexDocumentsResponse],
    documents: AsyncIterable[DocumentLike] | Iterable[DocumentLike],
    collection: str,
) -> None:
    """Writes every document then half-closes; stops quietly once the call has failed,
    since the reader reports that status."""
    try:
        if isinstance(documents, AsyncIterable):
            async for document in documents:
                await call.write(_index_request(document, collection))
        else:
            for document in documents:
                await call.write(_index_request(document, collection))
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return  # the call has ended (InvalidStateError: "RPC already finished")
    except BaseException:
        call.cancel()
        raise


def _index_request(document: DocumentLike, collection: str) -> pb.IndexDocumentsRequest:
    return pb.IndexDocumentsRequest(document=document_to_pb(document), collection=collection)


def _writer_failure(writer: asyncio.Task[None]) -> BaseException | None:
    """The input's own error, when that is what ended the call."""
    if writer.done() and not writer.cancelled():
        return writer.exception()
    return None
