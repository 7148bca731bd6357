"""Python client for the DocFoundry search service (async, with a blocking wrapper)."""

from .client import DocFoundryClient
from .files import ChunkSpec, DocumentSpec, count_files, iter_documents
from .models import (
    DEFAULT_TARGET,
    ClickReceipt,
    CollectionInfo,
    DeletedCount,
    DeleteOutcome,
    DocumentInfo,
    DocumentPage,
    FilterLike,
    HealthInfo,
    IndexOutcome,
    LegScore,
    PoolInfo,
    SearchHit,
    SearchMode,
    SearchOptions,
    SearchResult,
    TrainedRanker,
)
from .security import tls_credentials
from .sync import SyncDocFoundryClient

__all__ = [
    "DEFAULT_TARGET",
    "ChunkSpec",
    "CollectionInfo",
    "DeleteOutcome",
    "DeletedCount",
    "DocumentInfo",
    "DocumentPage",
    "FilterLike",
    "DocFoundryClient",
    "DocumentSpec",
    "ClickReceipt",
    "HealthInfo",
    "IndexOutcome",
    "LegScore",
    "PoolInfo",
    "SearchHit",
    "SearchMode",
    "SearchOptions",
    "SearchResult",
    "TrainedRanker",
    "SyncDocFoundryClient",
    "count_files",
    "iter_documents",
    "tls_credentials",
]
