"""Plain data passed between the engine and the storage adapters."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .errors import InvalidArgumentError

Vector = npt.NDArray[np.float32]

DEFAULT_COLLECTION = "default"

# Metadata values: strings, numbers, booleans or lists of strings (numbers as float, the
# one number type every backend's JSON and the API's double agree on).
MetadataValue = str | float | bool | tuple[str, ...]
Metadata = Mapping[str, MetadataValue]


class VectorSource(enum.Enum):
    """Where a collection's vectors come from."""

    MODEL = "model"  # the server's embedding model; callers may still send vectors
    CALLER = "caller"  # callers send every vector; the server never embeds


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    vectors: VectorSource
    dimension: int
    description: str = ""


@dataclass(frozen=True)
class Collection:
    """A named set of documents with its own vectors and full-text statistics."""

    id: int
    name: str
    vectors: VectorSource
    dimension: int
    description: str = ""
    created_at: str = ""
    documents: int = 0
    chunks: int = 0


class Fusion(enum.Enum):
    """How Hybrid combines its legs (see `ranking`)."""

    SCORE = "score"
    RRF = "rrf"


class ContentType(enum.Enum):
    MARKDOWN = "markdown"
    HTML = "html"
    PLAIN_TEXT = "text"


@dataclass(frozen=True)
class Chunk:
    """A searchable piece of a document; `tokens` is the analysed title + heading + text."""

    heading: str
    anchor: str
    text: str
    tokens: tuple[str, ...] = ()
    embedding: Vector | None = None


@dataclass(frozen=True)
class Document:
    path: str
    title: str
    source_url: str
    content_hash: str
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class StoredDocument:
    """A document as GetDocument and ListDocuments show it."""

    collection: str
    path: str
    title: str
    source_url: str
    content_hash: str
    metadata: Metadata
    chunks: int
    updated_at: str


@dataclass(frozen=True)
class DocumentChunks:
    """A document with the chunks that replace its stored ones: what a write stores."""

    document: Document
    chunks: Sequence[Chunk]


class UpsertOutcome(enum.Enum):
    CREATED = "created"
    REPLACED = "replaced"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


class RejectionCode(enum.Enum):
    """The gRPC status a rejected document would have had on its own."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"  # the collection it names does not exist


@dataclass(frozen=True)
class Rejection:
    """Why one document of a batch was not stored: the request field at fault and a
    message for the caller (the batch's other documents are stored)."""

    field: str
    message: str
    code: RejectionCode = RejectionCode.INVALID_ARGUMENT

    @classmethod
    def invalid(cls, error: InvalidArgumentError) -> Rejection:
        """The rejection of a document that failed validation."""
        return cls(error.field or "document", str(error))


@dataclass(frozen=True)
class UpsertResult:
    path: str
    outcome: UpsertOutcome
    chunk_count: int
    rejection: Rejection | None = None


@dataclass(frozen=True)
class DeleteResult:
    path: str
    chunks_deleted: int
    clicks_deleted: int


@dataclass(frozen=True)
class DeleteManyResult:
    """What a delete of many documents (by filter, or a whole collection) removed."""

    documents_deleted: int
    chunks_deleted: int
    clicks_deleted: int


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as a search returns it, with its document's fields."""

    chunk_id: int
    document_id: int
    document_path: str
    title: str
    source_url: str
    heading: str
    anchor: str
    text: str
    score: float
    metadata: Metadata = field(default_factory=dict)


# A chunk id with its score from one ranking, before any row is read: hybrid search fuses
# these and reads rows only for the results it returns.
ScoredId = tuple[int, float]


@dataclass(frozen=True)
class LegResult:
    rank: int
    score: float


@dataclass(frozen=True)
class Hit:
    chunk: StoredChunk
    score: float
    snippet: str
    fulltext: LegResult | None = None
    semantic: LegResult | None = None


@dataclass(frozen=True)
class ClickEvent:
    query: str
    chunk_id: int
    position: int
    session_id: str = ""
    user_id: str = ""
    dwell_time: float = 0.0
    key_id: str = ""  # the API key that recorded it, when keys are on
    impression_id: str = ""  # the search response's impression_id, when the caller sent it


class ClickOutcome(enum.Enum):
    """Whether a stored click counts as feedback, and if not, why (see docs/clicks.md)."""

    COUNTED = "counted"
    NO_IMPRESSION = "no_impression"
    NOT_SHOWN = "not_shown"
    DUPLICATE = "duplicate"
    SESSION_CAP = "session_cap"
    USER_CAP = "user_cap"
    KEY_CAP = "key_cap"


@dataclass(frozen=True)
class ClickRecord:
    """A click as stored: the event, and what the click model made of it. `outcome` None
    leaves the decision to the caps, taken in the store's transaction (`ClickCounts`)."""

    event: ClickEvent
    query_key: str
    position: int  # where the server showed it (from the impression), else the caller's
    impression: str  # the impression's nonce, "" without one
    source: str  # who the click speaks for: "user:…", "session:…", "key:…" or "impression:…"
    weight: float  # its vote: dwell weight / examination propensity
    outcome: ClickOutcome | None = None


@dataclass(frozen=True)
class ClickCounts:
    """Counted clicks already stored for the click's query, read in its transaction."""

    duplicate: bool  # the same session or impression already clicked this document
    session: int
    user: int
    key: int


@dataclass(frozen=True)
class ClickedQuery:
    """A query's counted clicks in one collection, for training: its text (as one user
    typed it), how many sources clicked, and each clicked document's per-source votes."""

    query_key: str
    query: str
    sources: int
    votes: dict[int, list[float]]


@dataclass(frozen=True)
class ClickEvidence:
    """Counted clicks of one query: how many sources sent any, and per candidate chunk the
    summed vote of each source that clicked its document, that document, and how many of the
    counted clicks were on that very chunk."""

    sources: int
    votes: dict[int, list[float]]
    documents: dict[int, int] = field(default_factory=dict)
    own_clicks: dict[int, int] = field(default_factory=dict)


class Scope(enum.Enum):
    """What an API key may do: `search` reads, `write` indexes and deletes documents,
    `admin` does both and manages collections."""

    SEARCH = "search"
    WRITE = "write"
    ADMIN = "admin"


@dataclass(frozen=True)
class ApiKey:
    """A stored API key: never the secret itself, only its SHA-256."""

    key_id: str
    name: str
    secret_hash: str = field(repr=False)
    scopes: frozenset[Scope]
    collections: tuple[str, ...] = ()  # empty: every collection
    created_at: str = ""
    revoked_at: str = ""

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes

    def allows_collection(self, name: str) -> bool:
        return not self.collections or name in self.collections


@dataclass(frozen=True)
class StoredClick:
    """A click as migrations move it: by document path and chunk position, not by ids,
    which differ between databases."""

    id: int
    query: str
    query_key: str
    collection: str
    document_path: str
    chunk_ordinal: int | None
    position: int
    session_id: str
    user_id: str
    dwell_time: float
    created_at: str
    outcome: str = ClickOutcome.NO_IMPRESSION.value
    source: str = ""
    weight: float = 0.0
    impression: str = ""
    key_id: str = ""  # the caps count per key, so a migration keeps it


@dataclass(frozen=True)
class PoolStats:
    size: int
    in_use: int
    idle: int
    min_size: int
    max_size: int
    waiting: int


@dataclass(frozen=True)
class CacheStats:
    """Lookups and size of a server-side cache of decoded index data."""

    hits: int
    misses: int
    bytes: int
    capacity: int


@dataclass(frozen=True)
class VectorGraphStats:
    chunks: int
    backlog: int
    building: int


@dataclass(frozen=True)
class StoreStats:
    documents: int
    chunks: int
    clicks: int
    schema_version: int
    embedding_dimension: int
    pool: PoolStats | None = None
    extra: dict[str, float] = field(default_factory=dict)
    # Chunks written or deleted since the full-text postings were last packed: queries
    # read these from a slower tail until the next compaction.
    fulltext_backlog: int = 0
    # PostgreSQL's packed postings decoded in the server (None where nothing is cached).
    fulltext_cache: CacheStats | None = None
    # Connections taken for reads, by where they went ("primary", or a replica's host:port),
    # and whether each read replica is in use (see storage/postgres/replicas.py).
    reads: dict[str, int] = field(default_factory=dict)
    replicas_healthy: dict[str, bool] = field(default_factory=dict)
    # SQLite's approximate vector graphs (storage/vector_index.py), None where there are
    # none: chunks the graphs hold, chunks waiting for the next build (searched exactly
    # meanwhile), and builds running.
    vector_graph: VectorGraphStats | None = None
