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

class VectorSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VECTOR_SOURCE_UNSPECIFIED: _ClassVar[VectorSource]
    VECTOR_SOURCE_MODEL: _ClassVar[VectorSource]
    VECTOR_SOURCE_CALLER: _ClassVar[VectorSource]
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
VECTOR_SOURCE_UNSPECIFIED: VectorSource
VECTOR_SOURCE_MODEL: VectorSource
VECTOR_SOURCE_CALLER: VectorSource

class FulltextRequest(_message.Message):
    __slots__ = ("q", "k", "path_prefix", "collection", "filter", "page_token")
    Q_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PATH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    q: str
    k: int
    path_prefix: str
    collection: str
    filter: Filter
    page_token: str
    def __init__(self, q: _Optional[str] = ..., k: _Optional[int] = ..., path_prefix: _Optional[str] = ..., collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., page_token: _Optional[str] = ...) -> None: ...

class SemanticRequest(_message.Message):
    __slots__ = ("q", "k", "query_vector", "min_similarity", "path_prefix", "collection", "filter", "page_token")
    Q_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    QUERY_VECTOR_FIELD_NUMBER: _ClassVar[int]
    MIN_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    PATH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    q: str
    k: int
    query_vector: _containers.RepeatedScalarFieldContainer[float]
    min_similarity: float
    path_prefix: str
    collection: str
    filter: Filter
    page_token: str
    def __init__(self, q: _Optional[str] = ..., k: _Optional[int] = ..., query_vector: _Optional[_Iterable[float]] = ..., min_similarity: _Optional[float] = ..., path_prefix: _Optional[str] = ..., collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., page_token: _Optional[str] = ...) -> None: ...

class HybridRequest(_message.Message):
    __slots__ = ("q", "k", "query_vector", "min_similarity", "rrf_k", "path_prefix", "fulltext_weight", "semantic_weight", "fusion", "collection", "filter", "page_token")
    Q_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    QUERY_VECTOR_FIELD_NUMBER: _ClassVar[int]
    MIN_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    PATH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    FULLTEXT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    SEMANTIC_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    q: str
    k: int
    query_vector: _containers.RepeatedScalarFieldContainer[float]
    min_similarity: float
    rrf_k: int
    path_prefix: str
    fulltext_weight: float
    semantic_weight: float
    fusion: Fusion
    collection: str
    filter: Filter
    page_token: str
    def __init__(self, q: _Optional[str] = ..., k: _Optional[int] = ..., query_vector: _Optional[_Iterable[float]] = ..., min_similarity: _Optional[float] = ..., rrf_k: _Optional[int] = ..., path_prefix: _Optional[str] = ..., fulltext_weight: _Optional[float] = ..., semantic_weight: _Optional[float] = ..., fusion: _Optional[_Union[Fusion, str]] = ..., collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., page_token: _Optional[str] = ...) -> None: ...

class MetadataValue(_message.Message):
    __slots__ = ("string_value", "number_value", "bool_value", "string_list")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_LIST_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    number_value: float
    bool_value: bool
    string_list: StringList
    def __init__(self, string_value: _Optional[str] = ..., number_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., string_list: _Optional[_Union[StringList, _Mapping]] = ...) -> None: ...

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("equals", "one_of", "range", "exists", "path_prefix", "all", "any", "negate")
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    ONE_OF_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    PATH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    NEGATE_FIELD_NUMBER: _ClassVar[int]
    equals: FieldEquals
    one_of: FieldOneOf
    range: FieldRange
    exists: FieldExists
    path_prefix: str
    all: FilterList
    any: FilterList
    negate: Filter
    def __init__(self, equals: _Optional[_Union[FieldEquals, _Mapping]] = ..., one_of: _Optional[_Union[FieldOneOf, _Mapping]] = ..., range: _Optional[_Union[FieldRange, _Mapping]] = ..., exists: _Optional[_Union[FieldExists, _Mapping]] = ..., path_prefix: _Optional[str] = ..., all: _Optional[_Union[FilterList, _Mapping]] = ..., any: _Optional[_Union[FilterList, _Mapping]] = ..., negate: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class FilterList(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedCompositeFieldContainer[Filter]
    def __init__(self, filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ...) -> None: ...

class FieldEquals(_message.Message):
    __slots__ = ("field", "value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    value: MetadataValue
    def __init__(self, field: _Optional[str] = ..., value: _Optional[_Union[MetadataValue, _Mapping]] = ...) -> None: ...

class FieldOneOf(_message.Message):
    __slots__ = ("field", "values")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedCompositeFieldContainer[MetadataValue]
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[_Union[MetadataValue, _Mapping]]] = ...) -> None: ...

class FieldRange(_message.Message):
    __slots__ = ("field", "gt", "gte", "lt", "lte")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    field: str
    gt: float
    gte: float
    lt: float
    lte: float
    def __init__(self, field: _Optional[str] = ..., gt: _Optional[float] = ..., gte: _Optional[float] = ..., lt: _Optional[float] = ..., lte: _Optional[float] = ...) -> None: ...

class FieldExists(_message.Message):
    __slots__ = ("field",)
    FIELD_FIELD_NUMBER: _ClassVar[int]
    field: str
    def __init__(self, field: _Optional[str] = ...) -> None: ...

class LegResult(_message.Message):
    __slots__ = ("rank", "score")
    RANK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    rank: int
    score: float
    def __init__(self, rank: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("chunk_id", "document_path", "title", "source_url", "heading", "anchor", "snippet", "score", "fulltext", "semantic", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetadataValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetadataValue, _Mapping]] = ...) -> None: ...
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
    METADATA_FIELD_NUMBER: _ClassVar[int]
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
    metadata: _containers.MessageMap[str, MetadataValue]
    def __init__(self, chunk_id: _Optional[int] = ..., document_path: _Optional[str] = ..., title: _Optional[str] = ..., source_url: _Optional[str] = ..., heading: _Optional[str] = ..., anchor: _Optional[str] = ..., snippet: _Optional[str] = ..., score: _Optional[float] = ..., fulltext: _Optional[_Union[LegResult, _Mapping]] = ..., semantic: _Optional[_Union[LegResult, _Mapping]] = ..., metadata: _Optional[_Mapping[str, MetadataValue]] = ...) -> None: ...

class FulltextResponse(_message.Message):
    __slots__ = ("search_type", "hits", "took_ms", "next_page_token")
    SEARCH_TYPE_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    search_type: SearchType
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    took_ms: float
    next_page_token: str
    def __init__(self, search_type: _Optional[_Union[SearchType, str]] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., took_ms: _Optional[float] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SemanticResponse(_message.Message):
    __slots__ = ("search_type", "hits", "took_ms", "next_page_token")
    SEARCH_TYPE_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    search_type: SearchType
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    took_ms: float
    next_page_token: str
    def __init__(self, search_type: _Optional[_Union[SearchType, str]] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., took_ms: _Optional[float] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class HybridResponse(_message.Message):
    __slots__ = ("search_type", "hits", "took_ms", "next_page_token")
    SEARCH_TYPE_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    search_type: SearchType
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    took_ms: float
    next_page_token: str
    def __init__(self, search_type: _Optional[_Union[SearchType, str]] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., took_ms: _Optional[float] = ..., next_page_token: _Optional[str] = ...) -> None: ...

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
        STATUS_SERVING: _ClassVar[HealthResponse.Status]
        STATUS_NOT_SERVING: _ClassVar[HealthResponse.Status]
    STATUS_UNSPECIFIED: HealthResponse.Status
    STATUS_SERVING: HealthResponse.Status
    STATUS_NOT_SERVING: HealthResponse.Status
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
    __slots__ = ("path", "title", "source_url", "content", "content_type", "chunks", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetadataValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetadataValue, _Mapping]] = ...) -> None: ...
    PATH_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    path: str
    title: str
    source_url: str
    content: str
    content_type: ContentType
    chunks: _containers.RepeatedCompositeFieldContainer[ChunkInput]
    metadata: _containers.MessageMap[str, MetadataValue]
    def __init__(self, path: _Optional[str] = ..., title: _Optional[str] = ..., source_url: _Optional[str] = ..., content: _Optional[str] = ..., content_type: _Optional[_Union[ContentType, str]] = ..., chunks: _Optional[_Iterable[_Union[ChunkInput, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, MetadataValue]] = ...) -> None: ...

class IndexDocumentsRequest(_message.Message):
    __slots__ = ("document", "collection")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    document: Document
    collection: str
    def __init__(self, document: _Optional[_Union[Document, _Mapping]] = ..., collection: _Optional[str] = ...) -> None: ...

class IndexDocumentsResponse(_message.Message):
    __slots__ = ("path", "outcome", "chunk_count", "error")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[IndexDocumentsResponse.Outcome]
        OUTCOME_CREATED: _ClassVar[IndexDocumentsResponse.Outcome]
        OUTCOME_REPLACED: _ClassVar[IndexDocumentsResponse.Outcome]
        OUTCOME_UNCHANGED: _ClassVar[IndexDocumentsResponse.Outcome]
        OUTCOME_REJECTED: _ClassVar[IndexDocumentsResponse.Outcome]
    OUTCOME_UNSPECIFIED: IndexDocumentsResponse.Outcome
    OUTCOME_CREATED: IndexDocumentsResponse.Outcome
    OUTCOME_REPLACED: IndexDocumentsResponse.Outcome
    OUTCOME_UNCHANGED: IndexDocumentsResponse.Outcome
    OUTCOME_REJECTED: IndexDocumentsResponse.Outcome
    PATH_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    path: str
    outcome: IndexDocumentsResponse.Outcome
    chunk_count: int
    error: DocumentError
    def __init__(self, path: _Optional[str] = ..., outcome: _Optional[_Union[IndexDocumentsResponse.Outcome, str]] = ..., chunk_count: _Optional[int] = ..., error: _Optional[_Union[DocumentError, _Mapping]] = ...) -> None: ...

class DocumentError(_message.Message):
    __slots__ = ("code", "field", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    field: str
    message: str
    def __init__(self, code: _Optional[int] = ..., field: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class DeleteDocumentRequest(_message.Message):
    __slots__ = ("path", "collection")
    PATH_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    path: str
    collection: str
    def __init__(self, path: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class DeleteDocumentResponse(_message.Message):
    __slots__ = ("path", "chunks_deleted", "clicks_deleted")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    CLICKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    path: str
    chunks_deleted: int
    clicks_deleted: int
    def __init__(self, path: _Optional[str] = ..., chunks_deleted: _Optional[int] = ..., clicks_deleted: _Optional[int] = ...) -> None: ...

class DeleteDocumentsRequest(_message.Message):
    __slots__ = ("collection", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: Filter
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class DeleteDocumentsResponse(_message.Message):
    __slots__ = ("documents_deleted", "chunks_deleted", "clicks_deleted")
    DOCUMENTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    CLICKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    documents_deleted: int
    chunks_deleted: int
    clicks_deleted: int
    def __init__(self, documents_deleted: _Optional[int] = ..., chunks_deleted: _Optional[int] = ..., clicks_deleted: _Optional[int] = ...) -> None: ...

class DocumentInfo(_message.Message):
    __slots__ = ("collection", "path", "title", "source_url", "content_hash", "metadata", "chunk_count", "update_time")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetadataValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetadataValue, _Mapping]] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    collection: str
    path: str
    title: str
    source_url: str
    content_hash: str
    metadata: _containers.MessageMap[str, MetadataValue]
    chunk_count: int
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, collection: _Optional[str] = ..., path: _Optional[str] = ..., title: _Optional[str] = ..., source_url: _Optional[str] = ..., content_hash: _Optional[str] = ..., metadata: _Optional[_Mapping[str, MetadataValue]] = ..., chunk_count: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetDocumentRequest(_message.Message):
    __slots__ = ("collection", "path")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    collection: str
    path: str
    def __init__(self, collection: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class GetDocumentResponse(_message.Message):
    __slots__ = ("document",)
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    document: DocumentInfo
    def __init__(self, document: _Optional[_Union[DocumentInfo, _Mapping]] = ...) -> None: ...

class ListDocumentsRequest(_message.Message):
    __slots__ = ("collection", "filter", "page_size", "page_token")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: Filter
    page_size: int
    page_token: str
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDocumentsResponse(_message.Message):
    __slots__ = ("documents", "next_page_token")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[DocumentInfo]
    next_page_token: str
    def __init__(self, documents: _Optional[_Iterable[_Union[DocumentInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Collection(_message.Message):
    __slots__ = ("name", "vectors", "dimension", "description", "create_time", "document_count", "chunk_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    vectors: VectorSource
    dimension: int
    description: str
    create_time: _timestamp_pb2.Timestamp
    document_count: int
    chunk_count: int
    def __init__(self, name: _Optional[str] = ..., vectors: _Optional[_Union[VectorSource, str]] = ..., dimension: _Optional[int] = ..., description: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., document_count: _Optional[int] = ..., chunk_count: _Optional[int] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "vectors", "dimension", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    vectors: VectorSource
    dimension: int
    description: str
    def __init__(self, name: _Optional[str] = ..., vectors: _Optional[_Union[VectorSource, str]] = ..., dimension: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: Collection
    def __init__(self, collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: Collection
    def __init__(self, collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    def __init__(self, collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ...) -> None: ...

class DeleteCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteCollectionResponse(_message.Message):
    __slots__ = ("documents_deleted", "chunks_deleted", "clicks_deleted")
    DOCUMENTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    CLICKS_DELETED_FIELD_NUMBER: _ClassVar[int]
    documents_deleted: int
    chunks_deleted: int
    clicks_deleted: int
    def __init__(self, documents_deleted: _Optional[int] = ..., chunks_deleted: _Optional[int] = ..., clicks_deleted: _Optional[int] = ...) -> None: ...
