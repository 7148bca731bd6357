import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_TYPE_UNSPECIFIED: _ClassVar[SearchType]
    SEARCH_TYPE_FULLTEXT: _ClassVar[SearchType]
    SEARCH_TYPE_SEMANTIC: _ClassVar[SearchType]
    SEARCH_TYPE_HYBRID: _ClassVar[SearchType]

class Fusion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_UNSPECIFIED: _ClassVar[Fusion]
    FUSION_SCORE: _ClassVar[Fusion]
    FUSION_RRF: _ClassVar[Fusion]

class ContentType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTENT_TYPE_UNSPECIFIED: _ClassVar[ContentType]
    CONTENT_TYPE_MARKDOWN: _ClassVar[ContentType]
    CONTENT_TYPE_HTML: _ClassVar[ContentType]
    CONTENT_TYPE_PLAIN_TEXT: _ClassVar[ContentType]
SEARCH_TYPE_UNSPECIFIED: SearchType
SEARCH_TYPE_FULLTEXT: SearchType
SEARCH_TYPE_SEMANTIC: SearchType
SEARCH_TYPE_HYBRID: SearchType
FUSION_UNSPECIFIED: Fusion
FUSION_SCORE: Fusion
FUSION_RRF: Fusion
CONTENT_TYPE_UNSPECIFIED: ContentType
CONTENT_TYPE_MARKDOWN: ContentType
CONTENT_TYPE_HTML: ContentType
CONTENT_TYPE_PLAIN_TEXT: ContentType

class SearchRequest(_message.Message):
    __slots__ = ("q", "k", "query_vector", "min_similarity", "rrf_k", "path_prefix", "fulltext_weight", "semantic_weight", "fusion")
    Q_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    QUERY_VECTOR_FIELD_NUMBER: _ClassVar[int]
    MIN_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    PATH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    FULLTEXT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    q: str
    k: int
    query_vector: _containers.RepeatedScalarFieldContainer[float]
    min_similarity: float
    rrf_k: int
    path_prefix: str
    fulltext_weight: float
    semantic_weight: float
    fusion: Fusion
    def __init__(self, q: _Optional[str] = ..., k: _Optional[int] = ..., query_vector: _Optional[_Iterable[float]] = ..., min_similarity: _Optional[float] = ..., rrf_k: _Optional[int] = ..., path_prefix: _Optional[str] = ..., fulltext_weight: _Optional[float] = ..., semantic_weight: _Optional[float] = ..., fusion: _Optional[_Union[Fusion, str]] = ...) -> None: ...

class LegResult(_message.Message):
    __slots__ = ("rank", "score")
    RANK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    rank: int
    score: float
    def __init__(self, rank: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("chunk_id", "document_path", "title", "source_url", "heading", "anchor", "snippet", "score", "fulltext", "semantic")
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_PATH_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    HEADING_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FULLTEXT_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_FIELD_NUMBER: _ClassVar[int]
    chunk_id: int
    document_path: str
    title: str
    source_url: str
    heading: str
    anchor: str
    snippet: str
    score: float
    fulltext: LegResult
    semantic: LegResult
    def __init__(self, chunk_id: _Optional[int] = ..., document_path: _Optional[str] = ..., title: _Optional[str] = ..., source_url: _Optional[str] = ..., heading: _Optional[str] = ..., anchor: _Optional[str] = ..., snippet: _Optional[str] = ..., score: _Optional[float] = ..., fulltext: _Optional[_Union[LegResult, _Mapping]] = ..., semantic: _Optional[_Union[LegResult, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("search_type", "hits", "took_ms")
    SEARCH_TYPE_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    search_type: SearchType
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    took_ms: float
    def __init__(self, search_type: _Optional[_Union[SearchType, str]] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., took_ms: _Optional[float] = ...) -> None: ...

class RecordClickRequest(_message.Message):
    __slots__ = ("query", "chunk_id", "position", "session_id", "user_id", "dwell_time")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DWELL_TIME_FIELD_NUMBER: _ClassVar[int]
    query: str
    chunk_id: int
    position: int
    session_id: str
    user_id: str
    dwell_time: float
    def __init__(self, query: _Optional[str] = ..., chunk_id: _Optional[int] = ..., position: _Optional[int] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., dwell_time: _Optional[float] = ...) -> None: ...

class RecordClickResponse(_message.Message):
    __slots__ = ("click_id",)
    CLICK_ID_FIELD_NUMBER: _ClassVar[int]
    click_id: int
    def __init__(self, click_id: _Optional[int] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PoolStats(_message.Message):
    __slots__ = ("size", "in_use", "idle", "min_size", "max_size", "waiting")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    IN_USE_FIELD_NUMBER: _ClassVar[int]
    IDLE_FIELD_NUMBER: _ClassVar[int]
    MIN_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    size: int
    in_use: int
    idle: int
    min_size: int
    max_size: int
    waiting: int
    def __init__(self, size: _Optional[int] = ..., in_use: _Optional[int] = ..., idle: _Optional[int] = ..., min_size: _Optional[int] = ..., max_size: _Optional[int] = ..., waiting: _Optional[int] = ...) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "database_type", "schema_version", "document_count", "chunk_count", "click_count", "embedding_model", "embedding_dimension", "timestamp", "pool", "database_roundtrip_ms", "version", "detail")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[HealthResponse.Status]
        SERVING: _ClassVar[HealthResponse.Status]
        NOT_SERVING: _ClassVar[HealthResponse.Status]
    STATUS_UNSPECIFIED: HealthResponse.Status
    SERVING: HealthResponse.Status
    NOT_SERVING: HealthResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLICK_COUNT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIMENSION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    DATABASE_ROUNDTRIP_MS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    status: HealthResponse.Status
    database_type: str
    schema_version: int
    document_count: int
    chunk_count: int
    click_count: int
    embedding_model: str
    embedding_dimension: int
    timestamp: _timestamp_pb2.Timestamp
    pool: PoolStats
    database_roundtrip_ms: float
    version: str
    detail: str
    def __init__(self, status: _Optional[_Union[HealthResponse.Status, str]] = ..., database_type: _Optional[str] = ..., schema_version: _Optional[int] = ..., document_count: _Optional[int] = ..., chunk_count: _Optional[int] = ..., click_count: _Optional[int] = ..., embedding_model: _Optional[str] = ..., embedding_dimension: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pool: _Optional[_Union[PoolStats, _Mapping]] = ..., database_roundtrip_ms: _Optional[float] = ..., version: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ChunkInput(_message.Message):
    __slots__ = ("heading", "anchor", "text", "embedding")
    HEADING_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    heading: str
    anchor: str
    text: str
    embedding: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, heading: _Optional[str] = ..., anchor: _Optional[str] = ..., text: _Optional[str] = ..., embedding: _Optional[_Iterable[float]] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("path", "title", "source_url", "content", "content_type", "chunks")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    path: str
    title: str
    source_url: str
    content: str
    content_type: ContentType
    chunks: _containers.RepeatedCompositeFieldContainer[ChunkInput]
    def __init__(self, path: _Optional[str] = ..., title: _Optional[str] = ..., source_url: _Optional[str] = ..., content: _Optional[str] = ..., content_type: _Optional[_Union[ContentType, str]] = ..., chunks: _Optional[_Iterable[_Union[ChunkInput, _Mapping]]] = ...) -> None: ...

class IndexDocumentRequest(_message.Message):
    __slots__ = ("document",)
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    document: Document
    def __init__(self, document: _Optional[_Union[Document, _Mapping]] = ...) -> None: ...

class IndexDocumentResult(_message.Message):
    __slots__ = ("path", "outcome", "chunk_count")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[IndexDocumentResult.Outcome]
        CREATED: _ClassVar[IndexDocumentResult.Outcome]
        REPLACED: _ClassVar[IndexDocumentResult.Outcome]
        UNCHANGED: _ClassVar[IndexDocumentResult.Outcome]
    OUTCOME_UNSPECIFIED: IndexDocumentResult.Outcome
    CREATED: IndexDocumentResult.Outcome
    REPLACED: IndexDocumentResult.Outcome
    UNCHANGED: IndexDocumentResult.Outcome
    PATH_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    path: str
    outcome: IndexDocumentResult.Outcome
    chunk_count: int
    def __init__(self, path: _Optional[str] = ..., outcome: _Optional[_Union[IndexDocumentResult.Outcome, str]] = ..., chunk_count: _Optional[int] = ...) -> None: ...

class DeleteDocumentRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class DeleteDocumentResponse(_message.Message):
    __slots__ = ("path", "chunks_deleted", "clicks_deleted")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    CLICKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    path: str
    chunks_deleted: int
    clicks_deleted: int
    def __init__(self, path: _Optional[str] = ..., chunks_deleted: _Optional[int] = ..., clicks_deleted: _Optional[int] = ...) -> None: ...
