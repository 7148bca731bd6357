"""One thin method per RPC: convert → engine → convert back. Errors are mapped by the
interceptor, so nothing here catches exceptions."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from docfoundry.v1 import search_pb2 as pb
from docfoundry.v1 import search_pb2_grpc as pb_grpc

from ..engine import SearchEngine
from ..ingest import DocumentInput
from ..validation import SearchQuery
from . import convert

INDEX_BATCH_DOCUMENTS = 16
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class SearchServicer(pb_grpc.SearchServiceServicer):
    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine

    def _query(self, request: pb.SearchRequest, *, with_vector: bool = True) -> SearchQuery:
        return convert.search_query_from_pb(
            request, self.engine.config, self.engine.embedder.dimension, with_vector=with_vector
        )

    async def Fulltext(self, request: pb.SearchRequest, context: Context) -> pb.SearchResponse:
        started = time.perf_counter()
        hits = await self.engine.fulltext(self._query(request, with_vector=False))
        return convert.search_response_to_pb(pb.SEARCH_TYPE_FULLTEXT, hits, _ms(started))

    async def Semantic(self, request: pb.SearchRequest, context: Context) -> pb.SearchResponse:
        started = time.perf_counter()
        hits = await self.engine.semantic(self._query(request))
        return convert.search_response_to_pb(pb.SEARCH_TYPE_SEMANTIC, hits, _ms(started))

    async def Hybrid(self, request: pb.SearchRequest, context: Context) -> pb.SearchResponse:
        started = time.perf_counter()
        hits = await self.engine.hybrid(self._query(request))
        return convert.search_response_to_pb(pb.SEARCH_TYPE_HYBRID, hits, _ms(started))

    async def RecordClick(
        self, request: pb.RecordClickRequest, context: Context
    ) -> pb.RecordClickResponse:
        click_id = await self.engine.record_click(convert.click_from_pb(request))
        return pb.RecordClickResponse(click_id=click_id)

    async def Health(self, request: pb.HealthRequest, context: Context) -> pb.HealthResponse:
        return convert.health_to_pb(await self.engine.health())


class IndexServicer(pb_grpc.IndexServiceServicer):
    def __init__(self, engine: SearchEngine) -> None:
        self.engine = engine

    async def IndexDocuments(
        self,
        request_iterator: AsyncIterator[pb.IndexDocumentRequest],
        context: Context,
    ) -> AsyncIterator[pb.IndexDocumentResult]:
        """Groups the stream into small batches so the model embeds many chunks per call."""
        batch: list[DocumentInput] = []
        async for request in request_iterator:
            batch.append(convert.document_from_pb(request.document))
            if len(batch) >= INDEX_BATCH_DOCUMENTS:
                for result in await self.engine.index(batch):
                    yield convert.index_result_to_pb(result)
                batch = []
        if batch:
            for result in await self.engine.index(batch):
                yield convert.index_result_to_pb(result)

    async def DeleteDocument(
        self, request: pb.DeleteDocumentRequest, context: Context
    ) -> pb.DeleteDocumentResponse:
        return convert.delete_result_to_pb(await self.engine.delete(request.path))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
