"""Request validation shared by every RPC: turns raw request fields into checked values.

Everything here raises InvalidArgumentError with a message meant for the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import SearchConfig
from .errors import InvalidArgumentError
from .models import Vector
from .ranking import DEFAULT_RRF_K, Fusion

MAX_PATH_CHARS = 1024
MAX_CONTENT_CHARS = 20_000_000


@dataclass(frozen=True)
class SearchQuery:
    q: str
    k: int
    vector: Vector | None = None
    min_similarity: float | None = None
    rrf_k: int = DEFAULT_RRF_K
    path_prefix: str = ""
    fulltext_weight: float = 1.0
    semantic_weight: float = 1.0
    fusion: Fusion | None = None


def check_query_text(q: str, config: SearchConfig, *, required: bool) -> str:
    if "\x00" in q:
        raise InvalidArgumentError("query must not contain NUL characters")
    if len(q) > config.max_query_chars:
        raise InvalidArgumentError(
            f"query is {len(q)} characters; the maximum is {config.max_query_chars}"
        )
    if required and not q.strip():
        raise InvalidArgumentError("query text is empty")
    return q


def check_k(k: int, config: SearchConfig) -> int:
    if k == 0:
        return config.default_k
    if not 1 <= k <= config.max_k:
        raise InvalidArgumentError(f"k must be between 1 and {config.max_k}, got {k}")
    return k


def check_vector(values: Sequence[float], dimension: int, *, what: str) -> Vector:
    """A unit-length float32 copy of `values`; rejects wrong dimension, NaN, inf and zero."""
    if len(values) != dimension:
        raise InvalidArgumentError(
            f"{what} has {len(values)} dimensions; the embedding model makes {dimension}"
        )
    vector = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(vector)):
        raise InvalidArgumentError(f"{what} contains NaN or infinite values")
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise InvalidArgumentError(f"{what} is all zeros")
    return vector / norm


def _check_weight(value: float | None, name: str) -> float:
    if value is None:
        return 1.0
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(f"{name} must be a finite number ≥ 0, got {value}")
    return value


def search_query(
    *,
    q: str,
    k: int,
    config: SearchConfig,
    dimension: int,
    vector: Sequence[float] = (),
    min_similarity: float | None = None,
    rrf_k: int = 0,
    path_prefix: str = "",
    fulltext_weight: float | None = None,
    semantic_weight: float | None = None,
    text_required: bool = True,
    fusion: Fusion | None = None,
) -> SearchQuery:
    if min_similarity is not None and not -1.0 <= min_similarity <= 1.0:
        raise InvalidArgumentError(f"min_similarity must be in [-1, 1], got {min_similarity}")
    if rrf_k < 0:
        raise InvalidArgumentError(f"rrf_k must be ≥ 0, got {rrf_k}")
    if len(path_prefix) > MAX_PATH_CHARS or "\x00" in path_prefix:
        raise InvalidArgumentError("path_prefix is too long or contains NUL")
    weights = (
        _check_weight(fulltext_weight, "fulltext_weight"),
        _check_weight(semantic_weight, "semantic_weight"),
    )
    if weights == (0.0, 0.0):
        raise InvalidArgumentError("at least one of the hybrid weights must be above 0")
    return SearchQuery(
        q=check_query_text(q, config, required=text_required and not vector),
        k=check_k(k, config),
        vector=check_vector(vector, dimension, what="query_vector") if vector else None,
        min_similarity=min_similarity,
        rrf_k=rrf_k or DEFAULT_RRF_K,
        path_prefix=path_prefix,
        fulltext_weight=weights[0],
        semantic_weight=weights[1],
        fusion=fusion,
    )


def check_document_path(path: str) -> str:
    if not path.strip():
        raise InvalidArgumentError("document path is empty")
    if len(path) > MAX_PATH_CHARS or "\x00" in path:
        raise InvalidArgumentError(f"document path is over {MAX_PATH_CHARS} characters or has NUL")
    return path
