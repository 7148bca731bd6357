"""One thin method per RPC: convert → engine → convert back. Errors are mapped by the
interceptor, so nothing here catches exceptions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc

from ..config import SearchConfig
from ..consistency import READ_AFTER, check_consistency_token
from ..engine import SearchEngine, SearchPage
from ..errors import InvalidArgumentError
from ..ingest import DocumentInput
from ..training import train_ranker
from ..validation import (
    check_collection_name,
    check_page_size,
)
from . import convert
from .auth import caller_key_id

INDEX_BATCH_DOCUMENTS = 16
DEFAULT_PAGE_SIZE = 100
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class SearchServicer(pb_grpc.SearchServiceServicer):
    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine

    async def Fulltext(self, request: pb.FulltextRequest, context: Context) -> pb.FulltextResponse:
        started = time.perf_counter()
        _read_after(request.consistency_token)
        page = await self.engine.fulltext(convert.fulltext_query_from_pb(request, self._config))
        return pb.FulltextResponse(**_response(pb.SEARCH_TYPE_FULLTEXT, page, started))

    async def Semantic(self, request: pb.SemanticRequest, context: Context) -> pb.SemanticResponse:
        started = time.perf_counter()
        _read_after(request.consistency_token)
        page = await self.engine.semantic(convert.semantic_query_from_pb(request, self._config))
        return pb.SemanticResponse(**_response(pb.SEARCH_TYPE_SEMANTIC, page, started))

    async def Hybrid(self, request: pb.HybridRequest, context: Context) -> pb.HybridResponse:
        started = time.perf_counter()
        _read_after(request.consistency_token)
        page = await self.engine.hybrid(convert.hybrid_query_from_pb(request, self._config))
        return pb.HybridResponse(**_response(pb.SEARCH_TYPE_HYBRID, page, started))

    @property
    def _config(self) -> SearchConfig:
        return self.engine.config

    async def RecordClick(
        self, request: pb.RecordClickRequest, context: Context
    ) -> pb.RecordClickResponse:
        click_id, outcome = await self.engine.record_click(
            convert.click_from_pb(request, key_id=caller_key_id())
        )
        token = await self.engine.write_position()
        return pb.RecordClickResponse(
            click_id=click_id,
            consistency_token=token,
            outcome=convert.click_outcome_to_pb(outcome),
        )

    async def Health(self, request: pb.HealthRequest, context: Context) -> pb.HealthResponse:
        return convert.health_to_pb(await self.engine.health())


class IndexServicer(pb_grpc.IndexServiceServicer):
    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine

    async def IndexDocuments(
        self,
        request_iterator: AsyncIterator[pb.IndexDocumentsRequest],
        context: Context,
    ) -> AsyncIterator[pb.IndexDocumentsResponse]:
        """Groups the stream into small batches of one collection each, so the model embeds
        many chunks per call. A document that cannot be read is rejected on its own."""
        batch: list[DocumentInput] = []
        collection = ""
        async for request in request_iterator:
            try:
                name = check_collection_name(request.collection)
                document = convert.document_from_pb(request.document)
            except InvalidArgumentError as exc:
                for result in await self._flush(batch, collection):
                    yield result
                batch = []
                yield convert.rejected_to_pb(request.document.path, exc)
                continue
            if batch and (name != collection or len(batch) >= INDEX_BATCH_DOCUMENTS):
                for result in await self._flush(batch, collection):
                    yield result
                batch = []
            batch.append(document)
            collection = name
        for result in await self._flush(batch, collection):
            yield result

    async def _flush(
        self, batch: list[DocumentInput], collection: str
    ) -> list[pb.IndexDocumentsResponse]:
        if not batch:
            return []
        results = await self.engine.index(batch, collection=collection)
        token = await self.engine.write_position()
        responses = [convert.index_result_to_pb(result) for result in results]
        for response in responses:
            if response.outcome != pb.IndexDocumentsResponse.OUTCOME_REJECTED:
                response.consistency_token = token
        return responses

    async def DeleteDocument(
        self, request: pb.DeleteDocumentRequest, context: Context
    ) -> pb.DeleteDocumentResponse:
        collection = check_collection_name(request.collection)
        result = await self.engine.delete(request.path, collection=collection)
        response = convert.delete_result_to_pb(result)
        response.consistency_token = await self.engine.write_position()
        return response

    async def DeleteDocuments(
        self, request: pb.DeleteDocumentsRequest, context: Context
    ) -> pb.DeleteDocumentsResponse:
        collection = check_collection_name(request.collection)
        where = convert.delete_filter_from_pb(request)
        result = await self.engine.delete_documents(where, collection=collection)
        return pb.DeleteDocumentsResponse(
            **convert.delete_many_fields(result),
            consistency_token=await self.engine.write_position(),
        )

    async def GetDocument(
        self, request: pb.GetDocumentRequest, context: Context
    ) -> pb.GetDocumentResponse:
        collection = check_collection_name(request.collection)
        _read_after(request.consistency_token)
        document = await self.engine.get_document(request.path, collection=collection)
        return pb.GetDocumentResponse(document=convert.document_info_to_pb(document))

    async def ListDocuments(
        self, request: pb.ListDocumentsRequest, context: Context
    ) -> pb.ListDocumentsResponse:
        _read_after(request.consistency_token)
        page = await self.engine.list_documents(
            collection=check_collection_name(request.collection),
            where=convert.request_filter(request),
            page_size=check_page_size(request.page_size, default=DEFAULT_PAGE_SIZE),
            page_token=request.page_token,
        )
        return pb.ListDocumentsResponse(
            documents=[convert.document_info_to_pb(d) for d in page.documents],
            next_page_token=page.next_page_token,
        )


class CollectionServicer(pb_grpc.CollectionServiceServicer):
    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine

    async def CreateCollection(
        self, request: pb.CreateCollectionRequest, context: Context
    ) -> pb.CreateCollectionResponse:
        created = await self.engine.create_collection(convert.collection_spec_from_pb(request))
        return pb.CreateCollectionResponse(
            collection=convert.collection_to_pb(created),
            consistency_token=await self.engine.write_position(),
        )

    async def GetCollection(
        self, request: pb.GetCollectionRequest, context: Context
    ) -> pb.GetCollectionResponse:
        _read_after(request.consistency_token)
        found = await self.engine.get_collection(check_collection_name(request.name, field="name"))
        return pb.GetCollectionResponse(collection=convert.collection_to_pb(found))

    async def ListCollections(
        self, request: pb.ListCollectionsRequest, context: Context
    ) -> pb.ListCollectionsResponse:
        found = await self.engine.list_collections()
        return pb.ListCollectionsResponse(collections=[convert.collection_to_pb(c) for c in found])

    async def DeleteCollection(
        self, request: pb.DeleteCollectionRequest, context: Context
    ) -> pb.DeleteCollectionResponse:
        name = check_collection_name(request.name, field="name")
        result = await self.engine.delete_collection(name)
        return pb.DeleteCollectionResponse(
            **convert.delete_many_fields(result),
            consistency_token=await self.engine.write_position(),
        )

    async def TrainRanker(
        self, request: pb.TrainRankerRequest, context: Context
    ) -> AsyncIterator[pb.TrainRankerResponse]:
        collection = check_collection_name(request.collection)
        async for step in train_ranker(self.engine, collection):
            yield convert.training_to_pb(step)


def _read_after(token: str) -> None:
    """The call reads what the write that returned `token` wrote (see `consistency`). gRPC
    runs each call in a task of its own, so the setting ends with the call."""
    READ_AFTER.set(check_consistency_token(token))


def _response(
    search_type: pb.SearchType.ValueType, page: SearchPage, started: float
) -> dict[str, Any]:
    """The fields every search response shares."""
    return {
        "search_type": search_type,
        "hits": [convert.hit_to_pb(h) for h in page.hits],
        "took_ms": _ms(started),
        "next_page_token": page.next_page_token,
        "impression_id": page.impression_id,
    }


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
