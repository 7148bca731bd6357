"""Python client for the DocFoundry search service (async, with a blocking wrapper)."""

from .client import (
    DEFAULT_TARGET,
    DeleteOutcome,
    DocFoundryClient,
    HealthInfo,
    IndexOutcome,
    LegScore,
    PoolInfo,
    SearchHit,
    SearchMode,
    SearchOptions,
    SearchResult,
    SyncDocFoundryClient,
)
from .files import ChunkSpec, DocumentSpec, count_files, iter_documents

__all__ = [
    "DEFAULT_TARGET",
    "ChunkSpec",
    "DeleteOutcome",
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
]
