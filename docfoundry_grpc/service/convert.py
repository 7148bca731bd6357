"""Protobuf ↔ domain conversions: the only place that knows both shapes."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from docfoundry.v1 import search_pb2 as pb

from ..config import SearchConfig
from ..engine import HealthReport
from ..ingest import ChunkInput, DocumentInput
from ..models import ClickEvent, ContentType, DeleteResult, Hit, LegResult, UpsertResult
from ..ranking import Fusion
from ..validation import SearchQuery, search_query

_CONTENT_TYPES = {
    pb.CONTENT_TYPE_UNSPECIFIED: None,
    pb.CONTENT_TYPE_MARKDOWN: ContentType.MARKDOWN,
    pb.CONTENT_TYPE_HTML: ContentType.HTML,
    pb.CONTENT_TYPE_PLAIN_TEXT: ContentType.PLAIN_TEXT,
}
_FUSIONS = {pb.FUSION_SCORE: Fusion.SCORE, pb.FUSION_RRF: Fusion.RRF}
_OUTCOMES = {
    "created": pb.IndexDocumentResult.CREATED,
    "replaced": pb.IndexDocumentResult.REPLACED,
    "unchanged": pb.IndexDocumentResult.UNCHANGED,
}


def search_query_from_pb(
    request: pb.SearchRequest, config: SearchConfig, dimension: int, *, with_vector: bool
) -> SearchQuery:
    """Validated query; full-text search ignores query_vector and needs text."""
    return search_query(
        q=request.q,
        k=request.k,
        config=config,
        dimension=dimension,
        vector=list(request.query_vector) if with_vector else (),
        min_similarity=(request.min_similarity if request.HasField("min_similarity") else None),
        rrf_k=request.rrf_k,
        path_prefix=request.path_prefix,
        fulltext_weight=(request.fulltext_weight if request.HasField("fulltext_weight") else None),
        semantic_weight=(request.semantic_weight if request.HasField("semantic_weight") else None),
        fusion=_FUSIONS.get(request.fusion),
    )


def _leg_to_pb(leg: LegResult | None) -> pb.LegResult | None:
    return pb.LegResult(rank=leg.rank, score=leg.score) if leg else None


def hit_to_pb(hit: Hit) -> pb.Hit:
    c = hit.chunk
    return pb.Hit(
        chunk_id=c.chunk_id,
        document_path=c.document_path,
        title=c.title,
        source_url=c.source_url,
        heading=c.heading,
        anchor=c.anchor,
        snippet=hit.snippet,
        score=hit.score,
        fulltext=_leg_to_pb(hit.fulltext),
        semantic=_leg_to_pb(hit.semantic),
    )


def search_response_to_pb(
    search_type: pb.SearchType, hits: list[Hit], took_ms: float
) -> pb.SearchResponse:
    return pb.SearchResponse(
        search_type=search_type, hits=[hit_to_pb(h) for h in hits], took_ms=took_ms
    )


def click_from_pb(request: pb.RecordClickRequest) -> ClickEvent:
    return ClickEvent(
        query=request.query,
        chunk_id=request.chunk_id,
        position=request.position,
        session_id=request.session_id,
        user_id=request.user_id,
        dwell_time=request.dwell_time,
    )


def document_from_pb(document: pb.Document) -> DocumentInput:
    return DocumentInput(
        path=document.path,
        title=document.title,
        source_url=document.source_url,
        content=document.content,
        content_type=_CONTENT_TYPES.get(document.content_type),
        chunks=tuple(
            ChunkInput(c.heading, c.anchor, c.text, tuple(c.embedding)) for c in document.chunks
        ),
    )


def index_result_to_pb(result: UpsertResult) -> pb.IndexDocumentResult:
    return pb.IndexDocumentResult(
        path=result.path, outcome=_OUTCOMES[result.outcome.value], chunk_count=result.chunk_count
    )


def delete_result_to_pb(result: DeleteResult) -> pb.DeleteDocumentResponse:
    return pb.DeleteDocumentResponse(
        path=result.path,
        chunks_deleted=result.chunks_deleted,
        clicks_deleted=result.clicks_deleted,
    )


def health_to_pb(report: HealthReport) -> pb.HealthResponse:
    timestamp = Timestamp()
    timestamp.GetCurrentTime()
    response = pb.HealthResponse(
        status=pb.HealthResponse.SERVING if report.serving else pb.HealthResponse.NOT_SERVING,
        database_type=report.backend,
        embedding_model=report.embedding_model,
        embedding_dimension=report.embedding_dimension,
        timestamp=timestamp,
        database_roundtrip_ms=report.roundtrip_ms,
        version=report.version,
        detail=report.detail,
    )
    if report.stats is not None:
        s = report.stats
        response.schema_version = s.schema_version
        response.document_count = s.documents
        response.chunk_count = s.chunks
        response.click_count = s.clicks
        if s.pool is not None:
            response.pool.CopyFrom(
                pb.PoolStats(
                    size=s.pool.size,
                    in_use=s.pool.in_use,
                    idle=s.pool.idle,
                    min_size=s.pool.min_size,
                    max_size=s.pool.max_size,
                    waiting=s.pool.waiting,
                )
            )
    return response
