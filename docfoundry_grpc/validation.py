"""Request validation shared by every RPC: turns raw request fields into checked values.

Everything here raises InvalidArgumentError with a message meant for the caller.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .config import SearchConfig
from .errors import InvalidArgumentError
from .filters import All, AnyOf, Equals, Exists, Filter, Not, OneOf, PathPrefix, Range, combine
from .models import DEFAULT_COLLECTION, ClickEvent, Fusion, Metadata, MetadataValue, Vector
from .ranking import DEFAULT_RRF_K

MAX_PATH_CHARS = 1024
MAX_CONTENT_CHARS = 20_000_000
MAX_TEXT_FIELD_CHARS = 65_536  # titles, URLs, headings, anchors
MAX_METADATA_KEYS = 64
MAX_METADATA_STRING_CHARS = 1024
MAX_METADATA_LIST_ITEMS = 256
MAX_FILTER_NODES = 256
MAX_FILTER_DEPTH = 16
MAX_VECTOR_DIMENSION = 2000  # pgvector's limit for an indexed `vector`
MAX_PAGE_SIZE = 1000
COLLECTION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
METADATA_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class SearchQuery:
    q: str
    k: int
    vector: Vector | None = None
    min_similarity: float | None = None
    rrf_k: int = DEFAULT_RRF_K
    fulltext_weight: float = 1.0
    semantic_weight: float = 1.0
    fusion: Fusion | None = None
    collection: str = DEFAULT_COLLECTION
    where: Filter | None = None
    page_token: str = ""
    plain_ranking: bool = False  # Hybrid without click feedback or the learned ranker


def check_text(value: str, field: str, *, max_chars: int = MAX_TEXT_FIELD_CHARS) -> str:
    """Text any backend can store: no NUL (PostgreSQL's text cannot hold one), no lone
    surrogates (not UTF-8), and a bounded length."""
    if "\x00" in value:
        raise InvalidArgumentError(f"{field} must not contain NUL characters", field=field)
    if len(value) > max_chars:
        raise InvalidArgumentError(
            f"{field} is {len(value)} characters; the maximum is {max_chars}", field=field
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{field} is not valid UTF-8", field=field) from None
    return value


def check_collection_name(name: str, *, field: str = "collection") -> str:
    """The collection a request names; empty means the default one."""
    if not name:
        return DEFAULT_COLLECTION
    if not COLLECTION_NAME.fullmatch(name):
        raise InvalidArgumentError(
            f"{field} {name[:80]!r} is not a valid name: 1-63 lower-case letters, digits, "
            "'_' or '-', starting with a letter or digit",
            field=field,
        )
    return name


def check_dimension(dimension: int, *, field: str = "dimension") -> int:
    if not 1 <= dimension <= MAX_VECTOR_DIMENSION:
        raise InvalidArgumentError(
            f"{field} must be between 1 and {MAX_VECTOR_DIMENSION}, got {dimension}", field=field
        )
    return dimension


def check_page_size(size: int, *, default: int, field: str = "page_size") -> int:
    if size == 0:
        return default
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidArgumentError(
            f"{field} must be between 1 and {MAX_PAGE_SIZE}, got {size}", field=field
        )
    return size


def check_metadata(metadata: Mapping[str, MetadataValue], *, field: str = "metadata") -> Metadata:
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidArgumentError(
            f"{field} has {len(metadata)} keys; the maximum is {MAX_METADATA_KEYS}", field=field
        )
    for key, value in metadata.items():
        at = f"{field}[{key[:80]!r}]"
        check_metadata_key(key, field=field)
        if isinstance(value, tuple):
            if len(value) > MAX_METADATA_LIST_ITEMS:
                raise InvalidArgumentError(
                    f"{at} has {len(value)} items; the maximum is {MAX_METADATA_LIST_ITEMS}",
                    field=at,
                )
            for item in value:
                check_text(item, at, max_chars=MAX_METADATA_STRING_CHARS)
        elif isinstance(value, str):
            check_text(value, at, max_chars=MAX_METADATA_STRING_CHARS)
        elif not isinstance(value, bool):
            _check_finite(value, at)
    return dict(metadata)


def check_metadata_key(key: str, *, field: str) -> str:
    if not METADATA_KEY.fullmatch(key):
        raise InvalidArgumentError(
            f"{field} key {key[:80]!r} is not valid: 1-64 letters, digits, '_', '-' or '.', "
            "not starting with '-' or '.'",
            field=field,
        )
    return key


def _check_finite(value: float, field: str) -> float:
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        finite = False
    if not finite:
        raise InvalidArgumentError(f"{field} must be a finite number, got {value}", field=field)
    return value


def check_filter(node: Filter | None, *, field: str = "filter") -> Filter | None:
    """Rejects filters that are malformed, too large or too deep to run safely."""
    if node is None:
        return None
    count = _check_node(node, field, depth=0)
    if count > MAX_FILTER_NODES:
        raise InvalidArgumentError(
            f"{field} has {count} conditions; the maximum is {MAX_FILTER_NODES}", field=field
        )
    return node


def _check_node(node: Filter, field: str, *, depth: int) -> int:
    if depth > MAX_FILTER_DEPTH:
        raise InvalidArgumentError(
            f"{field} nests deeper than {MAX_FILTER_DEPTH} levels", field=field
        )
    if isinstance(node, All | AnyOf):
        return 1 + sum(_check_node(child, field, depth=depth + 1) for child in node.filters)
    if isinstance(node, Not):
        return 1 + _check_node(node.filter, field, depth=depth + 1)
    if isinstance(node, PathPrefix):
        check_text(node.prefix, f"{field}.path_prefix", max_chars=MAX_PATH_CHARS)
        return 1
    check_metadata_key(node.field, field=field)
    if isinstance(node, Equals):
        _check_scalar(node.value, field)
    elif isinstance(node, OneOf):
        if not node.values:
            raise InvalidArgumentError(f"{field}: any_of needs at least one value", field=field)
        if len(node.values) > MAX_METADATA_LIST_ITEMS:
            raise InvalidArgumentError(
                f"{field}: any_of takes at most {MAX_METADATA_LIST_ITEMS} values", field=field
            )
        for value in node.values:
            _check_scalar(value, field)
    elif isinstance(node, Range):
        bounds = [b for b in (node.gt, node.gte, node.lt, node.lte) if b is not None]
        if not bounds:
            raise InvalidArgumentError(f"{field}: a range needs at least one bound", field=field)
        for bound in bounds:
            _check_finite(bound, field)
    else:
        assert isinstance(node, Exists)
    return 1


def _check_scalar(value: str | float | bool, field: str) -> None:
    if isinstance(value, str):
        check_text(value, field, max_chars=MAX_METADATA_STRING_CHARS)
    elif not isinstance(value, bool):
        _check_finite(value, field)


def check_query_text(q: str, config: SearchConfig, *, required: bool) -> str:
    check_text(q, "q", max_chars=config.max_query_chars)
    if required and not q.strip():
        raise InvalidArgumentError("query text is empty", field="q")
    return q


def check_k(k: int, config: SearchConfig) -> int:
    if k == 0:
        return config.default_k
    if not 1 <= k <= config.max_k:
        raise InvalidArgumentError(f"k must be between 1 and {config.max_k}, got {k}", field="k")
    return k


def check_vector(values: Sequence[float] | Vector, dimension: int | None, *, what: str) -> Vector:
    """A unit-length float32 copy of `values`; rejects a wrong dimension (None: any up to
    the limit), NaN, inf, zero, and values too large to normalise in float32."""
    if dimension is not None and len(values) != dimension:
        raise InvalidArgumentError(
            f"{what} has {len(values)} dimensions; the collection's vectors have {dimension}",
            field=what,
        )
    if len(values) > MAX_VECTOR_DIMENSION:
        raise InvalidArgumentError(
            f"{what} has {len(values)} dimensions; the maximum is {MAX_VECTOR_DIMENSION}",
            field=what,
        )
    try:
        vector = np.asarray(values, dtype=np.float64)
    except OverflowError:  # ints beyond float's range
        raise InvalidArgumentError(f"{what} has values too large to use", field=what) from None
    if not np.all(np.isfinite(vector)):
        raise InvalidArgumentError(f"{what} contains NaN or infinite values", field=what)
    # Scaled by its largest component first, so squaring neither overflows nor vanishes
    # at float64's extremes: only the direction counts.
    largest = float(np.max(np.abs(vector))) if len(vector) else 0.0
    if largest == 0.0:
        raise InvalidArgumentError(f"{what} is all zeros", field=what)
    if largest > 1e30:
        raise InvalidArgumentError(f"{what} has values too large to use", field=what)
    scaled = vector / largest
    return (scaled / float(np.linalg.norm(scaled))).astype(np.float32)


def check_vectors(
    rows: Sequence[Sequence[float] | Vector], dimension: int | None, *, names: Sequence[str]
) -> Vector:
    """`check_vector` of each row at once, as a matrix of unit rows: one numpy pass where a
    loop of per-row calls cost a document of caller vectors about 10 µs a chunk. A batch
    with a bad row goes row by row, so the error names the first bad one (by `names`)
    exactly as `check_vector` would. Rows share one width: with `dimension` None, the
    first row's."""
    if dimension is None and rows:
        dimension = len(rows[0])
    if rows and len({len(row) for row in rows}) == 1:
        width = len(rows[0])
        if width == dimension and 0 < width <= MAX_VECTOR_DIMENSION:
            with np.errstate(all="ignore"):
                try:
                    matrix = np.asarray(rows, dtype=np.float64)
                except OverflowError:
                    matrix = np.full((1, 1), np.nan)
                largest = np.max(np.abs(matrix), axis=1)
                if np.all(np.isfinite(matrix)) and np.all((largest > 0) & (largest <= 1e30)):
                    scaled = matrix / largest[:, None]
                    norms = np.linalg.norm(scaled, axis=1)
                    unit: Vector = (scaled / norms[:, None]).astype(np.float32)
                    return unit
    checked = [
        check_vector(row, dimension, what=name) for row, name in zip(rows, names, strict=True)
    ]
    return np.stack(checked) if checked else np.zeros((0, dimension or 0), dtype=np.float32)


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
    dimension: int | None,
    vector: Sequence[float] = (),
    min_similarity: float | None = None,
    rrf_k: int = 0,
    path_prefix: str = "",
    fulltext_weight: float | None = None,
    semantic_weight: float | None = None,
    text_required: bool = True,
    fusion: Fusion | None = None,
    collection: str = "",
    where: Filter | None = None,
    page_token: str = "",
    plain_ranking: bool = False,
) -> SearchQuery:
    """A checked query. `dimension` None leaves the vector's dimension to be checked
    against its collection's; `path_prefix` joins `where` as one more condition."""
    if min_similarity is not None and not -1.0 <= min_similarity <= 1.0:
        raise InvalidArgumentError(
            f"min_similarity must be in [-1, 1], got {min_similarity}", field="min_similarity"
        )
    if rrf_k < 0:
        raise InvalidArgumentError(f"rrf_k must be ≥ 0, got {rrf_k}", field="rrf_k")
    check_text(path_prefix, "path_prefix", max_chars=MAX_PATH_CHARS)
    weights = (
        _check_weight(fulltext_weight, "fulltext_weight"),
        _check_weight(semantic_weight, "semantic_weight"),
    )
    if weights == (0.0, 0.0):
        raise InvalidArgumentError(
            "at least one of the hybrid weights must be above 0", field="fulltext_weight"
        )
    return SearchQuery(
        q=check_query_text(q, config, required=text_required and not vector),
        k=check_k(k, config),
        vector=check_vector(vector, dimension, what="query_vector") if vector else None,
        min_similarity=min_similarity,
        rrf_k=rrf_k or DEFAULT_RRF_K,
        fulltext_weight=weights[0],
        semantic_weight=weights[1],
        fusion=fusion,
        collection=check_collection_name(collection),
        where=combine(PathPrefix(path_prefix) if path_prefix else None, check_filter(where)),
        page_token=page_token,
        plain_ranking=plain_ranking,
    )


def check_document_path(path: str, *, field: str = "path") -> str:
    if not path.strip():
        raise InvalidArgumentError("document path is empty", field=field)
    return check_text(path, field, max_chars=MAX_PATH_CHARS)


MAX_ID_CHARS = 256  # session and user ids
MAX_IMPRESSION_CHARS = 65_536  # an impression names up to SEARCH_MAX_K chunk ids
MAX_DWELL_SECONDS = 86_400.0


def check_click(click: ClickEvent, config: SearchConfig) -> ClickEvent:
    """A click that can have happened: a query, a chunk id, a 1-based position within the
    deepest ranking the server returns, and a finite, non-negative dwell of at most a day.
    With an impression, which carries the query and the position, both may be left out."""
    shown = bool(click.impression_id)
    check_text(click.impression_id, "impression_id", max_chars=MAX_IMPRESSION_CHARS)
    check_query_text(click.query, config, required=not shown)
    if click.chunk_id < 1:
        raise InvalidArgumentError(f"chunk_id must be ≥ 1, got {click.chunk_id}", field="chunk_id")
    if not (shown and click.position == 0) and not 1 <= click.position <= config.max_k:
        raise InvalidArgumentError(
            f"position is 1-based and at most {config.max_k}, got {click.position}",
            field="position",
        )
    if not math.isfinite(click.dwell_time) or not 0 <= click.dwell_time <= MAX_DWELL_SECONDS:
        raise InvalidArgumentError(
            f"dwell_time must be seconds in [0, {MAX_DWELL_SECONDS:g}], got {click.dwell_time}",
            field="dwell_time",
        )
    check_text(click.session_id, "session_id", max_chars=MAX_ID_CHARS)
    check_text(click.user_id, "user_id", max_chars=MAX_ID_CHARS)
    return click
