"""Python client for the DocFoundry search service (async, with a blocking wrapper)."""

from .client import DocFoundryClient
from .files import ChunkSpec, DocumentSpec, count_files, iter_documents
from .models import (
    DEFAULT_TARGET,
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
    "HealthInfo",
    "IndexOutcome",
    "LegScore",
    "PoolInfo",
    "SearchHit",
    "SearchMode",
    "SearchOptions",
    "SearchResult",
    "SyncDocFoundryClient",
    "count_files",
    "iter_documents",
    "tls_credentials",
]
