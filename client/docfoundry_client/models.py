"""Typed results of the client: frozen dataclasses, never protobuf messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypedDict

from docfoundry.v1 import search_pb2 as pb

from .files import DocumentSpec, MetadataValue

DEFAULT_TARGET = "localhost:50051"
TARGET_ENV = "DOCFOUNDRY_TARGET"  # the target when none is given, before DEFAULT_TARGET
SearchMode = Literal["fulltext", "semantic", "hybrid"]
Fusion = Literal["score", "rrf"]
VectorSource = Literal["model", "caller"]
DocumentLike = pb.Document | DocumentSpec
# A filter: the message, or its JSON form as a dict (e.g. {"equals": {"field": "product",
# "value": {"string_value": "cli"}}}), exactly as grpcurl takes it.
FilterLike = pb.Filter | Mapping[str, Any]


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
    metadata: dict[str, MetadataValue] = field(default_factory=dict)

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
    next_page_token: str = ""
    # Send back with a click on one of the hits (record_click's impression_id).
    impression_id: str = ""


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
    click_model: str = ""
    rankers: dict[str, str] = field(default_factory=dict)

    @property
    def serving(self) -> bool:
        return self.status == "SERVING"


@dataclass(frozen=True)
class TrainedRanker:
    """A learned ranker version: whether it went live, and how it did against plain fusion
    on the clicked queries held out of its fit."""

    version: int
    live: bool
    fitted_queries: int
    validation_queries: int
    validation_ndcg: float
    plain_validation_ndcg: float
    weights: dict[str, float]


@dataclass(frozen=True)
class ClickReceipt:
    """`outcome` is "counted", or why the click does not count: "no_impression",
    "not_shown", "duplicate", "session_cap", "user_cap" or "key_cap"."""

    click_id: int
    outcome: str
    consistency_token: str = ""

    @property
    def counted(self) -> bool:
        return self.outcome == "counted"


@dataclass(frozen=True)
class IndexOutcome:
    """`outcome` is "created", "replaced", "unchanged" or "rejected" (then `error_field`
    and `error` say why; the stream's other documents are unaffected)."""

    path: str
    outcome: str
    chunk_count: int
    error_field: str = ""
    error: str = ""
    # Pass to a search (consistency_token=…) to read this write, on any server or replica.
    consistency_token: str = ""


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document, without its content."""

    collection: str
    path: str
    title: str
    source_url: str
    content_hash: str
    metadata: dict[str, MetadataValue]
    chunk_count: int
    updated_at: datetime | None


@dataclass(frozen=True)
class DocumentPage:
    documents: list[DocumentInfo]
    next_page_token: str = ""


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    vectors: VectorSource
    dimension: int
    description: str
    created_at: datetime | None
    document_count: int
    chunk_count: int


@dataclass(frozen=True)
class DeletedCount:
    """What a delete of many documents (by filter, or a collection) removed."""

    documents_deleted: int
    chunks_deleted: int
    clicks_deleted: int
    consistency_token: str = ""


@dataclass(frozen=True)
class DeleteOutcome:
    path: str
    chunks_deleted: int
    clicks_deleted: int
    consistency_token: str = ""


class SearchOptions(TypedDict, total=False):
    """Optional search parameters; omitted ones take the server's defaults."""

    k: int
    path_prefix: str
    min_similarity: float | None
    rrf_k: int
    query_vector: Sequence[float] | None
    fulltext_weight: float | None
    semantic_weight: float | None
    fusion: Fusion | None
    collection: str
    filter: FilterLike | None
    page_token: str
    # A write's consistency_token: the search sees that write (read replicas).
    consistency_token: str
    # Hybrid: rank by the legs alone, without click feedback or the learned ranker.
    plain_ranking: bool
