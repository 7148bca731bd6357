"""Protobuf ↔ client dataclass conversions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from docfoundry.v1 import search_pb2 as pb

from .files import ChunkSpec, MetadataValue
from .models import (
    ClickReceipt,
    CollectionInfo,
    DeletedCount,
    DocumentInfo,
    DocumentLike,
    FilterLike,
    Fusion,
    HealthInfo,
    IndexOutcome,
    LegScore,
    PoolInfo,
    SearchHit,
    SearchMode,
    SearchResult,
    TrainedRanker,
)

SearchRequest = pb.FulltextRequest | pb.SemanticRequest | pb.HybridRequest
SearchResponse = pb.FulltextResponse | pb.SemanticResponse | pb.HybridResponse


def search_request(
    mode: SearchMode,
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
    collection: str = "",
    filter: FilterLike | None = None,
    page_token: str = "",
    consistency_token: str = "",
    plain_ranking: bool = False,
) -> SearchRequest:
    """The request of `mode`; options that mode has no field for are left out. None leaves
    an optional field unset, which the server reads as "use the default"."""
    shared: dict[str, Any] = {
        "q": q,
        "k": k,
        "path_prefix": path_prefix,
        "collection": collection,
        "filter": filter_to_pb(filter),
        "page_token": page_token,
        "consistency_token": consistency_token,
    }
    if mode == "fulltext":
        return pb.FulltextRequest(**shared)
    semantic: dict[str, Any] = {
        **shared,
        "query_vector": query_vector or (),
        "min_similarity": min_similarity,
    }
    if mode == "semantic":
        return pb.SemanticRequest(**semantic)
    return pb.HybridRequest(
        **semantic,
        rrf_k=rrf_k,
        fulltext_weight=fulltext_weight,
        semantic_weight=semantic_weight,
        fusion=_FUSIONS[fusion],
        plain_ranking=plain_ranking,
    )


_FUSIONS = {None: pb.FUSION_UNSPECIFIED, "score": pb.FUSION_SCORE, "rrf": pb.FUSION_RRF}


def filter_to_pb(value: FilterLike | None) -> pb.Filter | None:
    """A filter message from itself or from its JSON form (a ValueError if malformed)."""
    if value is None or isinstance(value, pb.Filter):
        return value
    try:
        return json_format.ParseDict(dict(value), pb.Filter())
    except json_format.ParseError as exc:
        raise ValueError(f"not a filter: {exc}") from None


def search_result_from_pb(response: SearchResponse) -> SearchResult:
    search_type = pb.SearchType.Name(response.search_type).removeprefix("SEARCH_TYPE_")
    return SearchResult(
        search_type=search_type.lower(),
        took_ms=response.took_ms,
        hits=[hit_from_pb(hit) for hit in response.hits],
        next_page_token=response.next_page_token,
        impression_id=response.impression_id,
    )


def metadata_value_from_pb(value: pb.MetadataValue) -> MetadataValue:
    kind = value.WhichOneof("kind")
    if kind == "string_list":
        return list(value.string_list.values)
    if kind == "number_value":
        return value.number_value
    if kind == "bool_value":
        return value.bool_value
    return value.string_value


def metadata_value_to_pb(value: MetadataValue) -> pb.MetadataValue:
    if isinstance(value, bool):
        return pb.MetadataValue(bool_value=value)
    if isinstance(value, str):
        return pb.MetadataValue(string_value=value)
    if isinstance(value, int | float):
        return pb.MetadataValue(number_value=float(value))
    return pb.MetadataValue(string_list=pb.StringList(values=list(value)))


def _metadata(values: Mapping[str, pb.MetadataValue]) -> dict[str, MetadataValue]:
    return {key: metadata_value_from_pb(value) for key, value in values.items()}


def _time(value: Timestamp) -> datetime | None:
    return value.ToDatetime(tzinfo=UTC) if value.seconds or value.nanos else None


def document_info_from_pb(info: pb.DocumentInfo) -> DocumentInfo:
    return DocumentInfo(
        collection=info.collection,
        path=info.path,
        title=info.title,
        source_url=info.source_url,
        content_hash=info.content_hash,
        metadata=_metadata(info.metadata),
        chunk_count=info.chunk_count,
        updated_at=_time(info.update_time),
    )


def collection_from_pb(collection: pb.Collection) -> CollectionInfo:
    return CollectionInfo(
        name=collection.name,
        vectors="caller" if collection.vectors == pb.VECTOR_SOURCE_CALLER else "model",
        dimension=collection.dimension,
        description=collection.description,
        created_at=_time(collection.create_time),
        document_count=collection.document_count,
        chunk_count=collection.chunk_count,
    )


def deleted_from_pb(
    response: pb.DeleteDocumentsResponse | pb.DeleteCollectionResponse,
) -> DeletedCount:
    return DeletedCount(
        response.documents_deleted,
        response.chunks_deleted,
        response.clicks_deleted,
        response.consistency_token,
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
        metadata=_metadata(hit.metadata),
    )


def health_from_pb(response: pb.HealthResponse) -> HealthInfo:
    pool = response.pool
    return HealthInfo(
        status=pb.HealthResponse.Status.Name(response.status).removeprefix("STATUS_"),
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
        click_model=response.click_model,
        rankers=dict(response.rankers),
    )


def click_receipt_from_pb(response: pb.RecordClickResponse) -> ClickReceipt:
    try:
        name = pb.ClickOutcome.Name(response.outcome)
    except ValueError:  # an outcome a newer server knows
        name = "unknown"
    outcome = name.removeprefix("CLICK_OUTCOME_").lower()
    return ClickReceipt(response.click_id, outcome, response.consistency_token)


def index_outcome_from_pb(result: pb.IndexDocumentsResponse) -> IndexOutcome:
    name = pb.IndexDocumentsResponse.Outcome.Name(result.outcome)
    return IndexOutcome(
        path=result.path,
        outcome=name.removeprefix("OUTCOME_").lower(),
        chunk_count=result.chunk_count,
        error_field=result.error.field,
        error=result.error.message,
        consistency_token=result.consistency_token,
    )


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
        metadata={key: metadata_value_to_pb(v) for key, v in document.metadata.items()},
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


def trained_ranker_from_pb(result: pb.TrainedRanker) -> TrainedRanker:
    return TrainedRanker(
        version=result.version,
        live=result.live,
        fitted_queries=result.fitted_queries,
        validation_queries=result.validation_queries,
        validation_ndcg=result.validation_ndcg,
        plain_validation_ndcg=result.plain_validation_ndcg,
        weights=dict(result.weights),
    )
