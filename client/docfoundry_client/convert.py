"""Protobuf ↔ client dataclass conversions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Literal

from docfoundry.v1 import search_pb2 as pb

from .files import ChunkSpec
from .models import (
    DocumentLike,
    Fusion,
    HealthInfo,
    IndexOutcome,
    LegScore,
    PoolInfo,
    SearchHit,
    SearchResult,
)


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
    fusion: Fusion | None = None,
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
        fusion=_FUSIONS[fusion],
    )


_FUSIONS = {None: pb.FUSION_UNSPECIFIED, "score": pb.FUSION_SCORE, "rrf": pb.FUSION_RRF}


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
