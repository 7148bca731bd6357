"""Property tests of request validation: every check returns or raises InvalidArgumentError,
accepts exactly what the documented limits allow, and accepts its own output unchanged.

The limits below are this test's own copy of what docs/api.md promises, not the product's
constants, so a changed limit shows up here as a failure.
"""

from __future__ import annotations

import functools
import math
import string
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from docfoundry_grpc.config import SearchConfig
from docfoundry_grpc.errors import InvalidArgumentError
from docfoundry_grpc.filters import (
    All,
    AnyOf,
    Equals,
    Exists,
    Filter,
    Not,
    OneOf,
    PathPrefix,
    Range,
    Scalar,
)
from docfoundry_grpc.models import Fusion, MetadataValue, Vector
from docfoundry_grpc.validation import (
    SearchQuery,
    check_collection_name,
    check_dimension,
    check_filter,
    check_k,
    check_metadata,
    check_metadata_key,
    check_page_size,
    check_text,
    check_vector,
    check_vectors,
    search_query,
)

from .properties import property_settings

PROFILE = property_settings(150, HealthCheck.data_too_large)

T = TypeVar("T")

# Documented limits (docs/api.md, README), restated independently of the product.
PATH_CHARS = 1024
METADATA_KEYS = 64
METADATA_STRING_CHARS = 1024
METADATA_LIST_ITEMS = 256
FILTER_CONDITIONS = 256
FILTER_DEPTH = 16
VECTOR_DIMENSION = 2000
PAGE_SIZE = 1000

# Any text: every code point, NUL and lone surrogates included, with NUL and surrogates
# drawn often enough to matter.
ANY_CHAR = st.one_of(
    st.characters(exclude_categories=()), st.sampled_from(["\x00", "\ud800", "\udfff", "é"])
)
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)


def outcome(check: Callable[[], T]) -> T | InvalidArgumentError:
    """The check's result, or the InvalidArgumentError it raised; any other exception
    propagates and fails the test."""
    try:
        return check()
    except InvalidArgumentError as exc:
        return exc


def storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


# Text ---------------------------------------------------------------------------------


@PROFILE
@given(text=ANY_TEXT, slack=st.integers(-2, 3), field=st.sampled_from(["title", "q"]))
@example(text="a\x00b", slack=0, field="title")
@example(text="a\ud800", slack=0, field="title")
def test_check_text_accepts_exactly_storable_bounded_text(
    text: str, slack: int, field: str
) -> None:
    max_chars = max(0, len(text) + slack)
    result = outcome(lambda: check_text(text, field, max_chars=max_chars))
    valid = storable(text) and len(text) <= max_chars
    if isinstance(result, InvalidArgumentError):
        assert not valid, f"rejected valid text: {result}"
        assert result.field == field
    else:
        assert valid and result == text
        assert check_text(result, field, max_chars=max_chars) == result


@PROFILE
@given(name=st.one_of(ANY_TEXT, st.text("abcxyz09_-A. ", max_size=70)))
@example(name="a" * 63)
@example(name="a" * 64)
@example(name="-a")
def test_collection_names_are_checked_against_the_documented_form(name: str) -> None:
    result = outcome(lambda: check_collection_name(name))
    alnum = string.ascii_lowercase + string.digits
    valid = name == "" or (
        len(name) <= 63 and name[0] in alnum and all(c in alnum + "_-" for c in name)
    )
    if isinstance(result, InvalidArgumentError):
        assert not valid
    else:
        assert valid
        assert result == (name or "default")
        assert check_collection_name(result) == result


def valid_metadata_key(key: str) -> bool:
    allowed = string.ascii_letters + string.digits + "_.-"
    return 1 <= len(key) <= 64 and key[0] not in ".-" and all(c in allowed for c in key)


METADATA_KEY = st.one_of(
    st.text(string.ascii_letters + string.digits + "_.-", min_size=1, max_size=8),
    st.text(string.ascii_letters + "_.-", min_size=60, max_size=70),
    ANY_TEXT,
)


@PROFILE
@given(key=METADATA_KEY)
def test_metadata_keys_are_checked_against_the_documented_form(key: str) -> None:
    result = outcome(lambda: check_metadata_key(key, field="metadata"))
    if isinstance(result, InvalidArgumentError):
        assert not valid_metadata_key(key)
    else:
        assert valid_metadata_key(key) and result == key


# Metadata -----------------------------------------------------------------------------

SHORT_TEXT = st.one_of(ANY_TEXT, st.integers(1020, 1030).map(lambda n: "m" * n))
METADATA_VALUE: st.SearchStrategy[MetadataValue] = st.one_of(
    SHORT_TEXT,
    ANY_FLOAT,
    st.booleans(),
    st.lists(SHORT_TEXT, max_size=4).map(tuple),
    st.integers(250, 262).map(lambda n: ("item",) * n),
)


def valid_metadata_value(value: MetadataValue) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return storable(value) and len(value) <= METADATA_STRING_CHARS
    if isinstance(value, tuple):
        return len(value) <= METADATA_LIST_ITEMS and all(
            storable(v) and len(v) <= METADATA_STRING_CHARS for v in value
        )
    return math.isfinite(value)


METADATA = st.one_of(
    st.dictionaries(METADATA_KEY, METADATA_VALUE, max_size=5),
    st.dictionaries(st.sampled_from(["lang", "a.b", "_x", "v-2"]), METADATA_VALUE, max_size=3),
    st.integers(60, 70).map(lambda n: {f"k{i}": float(i) for i in range(n)}),
)


@PROFILE
@given(metadata=METADATA)
@example(metadata={"n": math.nan})
@example(metadata={"n": -math.inf})
def test_metadata_accepted_is_within_the_documented_limits(
    metadata: dict[str, MetadataValue],
) -> None:
    result = outcome(lambda: check_metadata(metadata, field="document.metadata"))
    valid = len(metadata) <= METADATA_KEYS and all(
        valid_metadata_key(k) and valid_metadata_value(v) for k, v in metadata.items()
    )
    if isinstance(result, InvalidArgumentError):
        assert not valid, f"rejected valid metadata: {result}"
        assert result.field.startswith("document.metadata")
    else:
        assert valid, "accepted metadata outside the limits"
        assert result == metadata
        assert check_metadata(result, field="document.metadata") == result


# Filters ------------------------------------------------------------------------------

VALID_KEY = st.sampled_from(["lang", "a.b", "_x", "v-2"])
FIELD = st.one_of(VALID_KEY, VALID_KEY, METADATA_KEY)
NUMBER = st.one_of(st.floats(-10, 10), st.sampled_from([math.nan, math.inf, -math.inf]), ANY_FLOAT)
SCALAR: st.SearchStrategy[Scalar] = st.one_of(
    st.sampled_from(["en", ""]), SHORT_TEXT, NUMBER, st.booleans()
)
OPTIONAL_BOUND = st.one_of(st.none(), NUMBER)
LEAF: st.SearchStrategy[Filter] = st.one_of(
    st.builds(Equals, FIELD, SCALAR),
    st.builds(
        OneOf,
        FIELD,
        st.one_of(
            st.lists(SCALAR, max_size=4).map(tuple),
            st.integers(250, 262).map(lambda n: ("v",) * n),
        ),
    ),
    st.builds(Range, FIELD, OPTIONAL_BOUND, OPTIONAL_BOUND, OPTIONAL_BOUND, OPTIONAL_BOUND),
    st.builds(Exists, FIELD),
    st.builds(PathPrefix, st.one_of(ANY_TEXT, st.integers(1020, 1030).map(lambda n: "p" * n))),
)


def _nest(leaf: Filter, depth: int) -> Filter:
    node = leaf
    for level in range(depth):
        node = Not(node) if level % 2 else All((node,))
    return node


def _wide(leaf: Filter, width: int) -> Filter:
    return AnyOf((leaf,) * width)


FILTER: st.SearchStrategy[Filter] = st.one_of(
    st.recursive(
        LEAF,
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(lambda fs: All(tuple(fs))),
            st.lists(children, max_size=4).map(lambda fs: AnyOf(tuple(fs))),
            st.builds(Not, children),
        ),
        max_leaves=12,
    ),
    st.builds(_nest, LEAF, st.integers(10, 40)),  # deep
    st.builds(_wide, LEAF, st.integers(200, 300)),  # wide
)


def reference_check(node: Filter) -> tuple[bool, int, int]:
    """(leaves valid, conditions, deepest nesting) computed from the documented rules."""
    if isinstance(node, All | AnyOf):
        parts = [reference_check(f) for f in node.filters]
        return (
            all(p[0] for p in parts),
            1 + sum(p[1] for p in parts),
            1 + max((p[2] for p in parts), default=0),
        )
    if isinstance(node, Not):
        ok, count, depth = reference_check(node.filter)
        return ok, count + 1, depth + 1
    if isinstance(node, PathPrefix):
        return storable(node.prefix) and len(node.prefix) <= PATH_CHARS, 1, 0
    ok = valid_metadata_key(node.field)
    if isinstance(node, Equals):
        ok = ok and valid_metadata_value(node.value)
    elif isinstance(node, OneOf):
        ok = ok and 1 <= len(node.values) <= METADATA_LIST_ITEMS
        ok = ok and all(valid_metadata_value(v) for v in node.values)
    elif isinstance(node, Range):
        present = [b for b in (node.gt, node.gte, node.lt, node.lte) if b is not None]
        ok = ok and bool(present) and all(math.isfinite(b) for b in present)
    return ok, 1, 0


@PROFILE
@given(node=st.one_of(st.none(), FILTER))
@example(node=_wide(Exists("a"), 255))  # 256 conditions
@example(node=_wide(Exists("a"), 256))
@example(node=_nest(Exists("a"), 16))
@example(node=_nest(Exists("a"), 17))
def test_filters_accepted_are_within_the_documented_size_and_depth(node: Filter | None) -> None:
    result = outcome(lambda: check_filter(node))
    if node is None:
        assert result is None
        return
    leaves_ok, count, depth = reference_check(node)
    valid = leaves_ok and count <= FILTER_CONDITIONS and depth <= FILTER_DEPTH
    if isinstance(result, InvalidArgumentError):
        assert not valid, f"rejected a valid filter: {result}"
        assert result.field.startswith("filter")
    else:
        assert valid, f"accepted an invalid filter ({count} conditions, depth {depth})"
        assert result is node
        assert check_filter(result) is result


# Vectors ------------------------------------------------------------------------------


def _big_vector(n: int, value: float) -> list[float]:
    return [value] * n


def normalisable(values: Sequence[float] | Vector) -> bool:
    """Finite float64 vectors whose largest component is 0 or within 1e-150..1e150:
    test_float64_vectors_of_any_magnitude_normalise_cleanly covers the rest."""
    finite = [abs(float(v)) for v in values if math.isfinite(v)]
    return not finite or max(finite) == 0 or 1e-150 <= max(finite) <= 1e150


VECTOR: st.SearchStrategy[Sequence[float] | Vector] = st.one_of(
    st.lists(ANY_FLOAT, max_size=12),
    st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=12),
    st.builds(_big_vector, st.integers(1995, 2005), st.floats(-1e3, 1e3)),
    st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=8).map(
        lambda v: np.asarray(v, dtype=np.float32)
    ),
).filter(normalisable)


@PROFILE
@given(values=VECTOR, dimension=st.one_of(st.none(), st.integers(0, 2005)), data=st.data())
def test_vectors_accepted_are_finite_unit_length_and_same_direction(
    values: Sequence[float] | Vector, dimension: int | None, data: st.DataObject
) -> None:
    if dimension is not None and data.draw(st.booleans()):
        dimension = len(values)  # the right dimension half the time
    result = outcome(lambda: check_vector(values, dimension, what="query_vector"))
    raw = np.asarray(values, dtype=np.float64)
    if isinstance(result, InvalidArgumentError):
        assert result.field == "query_vector"
        fits = len(raw) <= VECTOR_DIMENSION and dimension in (None, len(raw))
        usable = bool(np.all(np.isfinite(raw))) and bool(raw.any())
        # float32 components (what the protocol carries) of moderate size are never refused
        moderate = bool(np.all(np.abs(raw) <= 1e6)) and np.array_equal(  # no cast overflow
            raw.astype(np.float32).astype(np.float64), raw
        )
        assert not (fits and usable and moderate), f"rejected a usable vector: {result}"
        return
    assert len(result) == len(raw) <= VECTOR_DIMENSION
    assert dimension is None or len(result) == dimension
    assert result.dtype == np.float32
    assert np.all(np.isfinite(result))
    assert abs(float(np.linalg.norm(result.astype(np.float64))) - 1.0) < 1e-5
    scaled = raw / np.max(np.abs(raw))  # no overflow: components at most 1 in size
    direction = scaled / np.linalg.norm(scaled)
    np.testing.assert_allclose(result, direction, atol=1e-6)
    again = check_vector(result, dimension, what="query_vector")
    assert again.dtype == np.float32
    np.testing.assert_allclose(again, result, atol=1e-6)


@PROFILE
@given(
    rows=st.lists(st.lists(ANY_FLOAT, min_size=0, max_size=6), min_size=0, max_size=5),
    dimension=st.one_of(st.none(), st.integers(0, 6)),
)
def test_a_batch_of_vectors_is_checked_as_each_one_alone(
    rows: list[list[float]], dimension: int | None
) -> None:
    """The batched check accepts exactly what the one-by-one check accepts (rows of the
    first row's width when no dimension is given), to the same unit rows, and refuses with
    the first bad row's own error."""
    names = [f"document.chunks[{n}].embedding" for n in range(len(rows))]
    width = dimension if dimension is not None or not rows else len(rows[0])
    alone = [
        outcome(functools.partial(check_vector, r, width, what=n))
        for r, n in zip(rows, names, strict=True)
    ]
    batch = outcome(lambda: check_vectors(rows, dimension, names=names))
    refused = [r for r in alone if isinstance(r, InvalidArgumentError)]
    if refused:
        assert isinstance(batch, InvalidArgumentError)
        assert (batch.field, str(batch)) == (refused[0].field, str(refused[0]))
        return
    assert not isinstance(batch, InvalidArgumentError)
    assert batch.dtype == np.float32 and len(batch) == len(rows)
    for got, want in zip(batch, alone, strict=True):
        assert not isinstance(want, InvalidArgumentError)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)


@PROFILE
@given(values=st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=VECTOR_DIMENSION))
def test_every_finite_nonzero_float32_vector_is_accepted(values: list[float]) -> None:
    if not any(values):
        with pytest.raises(InvalidArgumentError, match="zeros"):
            check_vector(values, None, what="v")
        return
    assert len(check_vector(values, len(values), what="v")) == len(values)


# Integer arguments --------------------------------------------------------------------


@PROFILE
@given(
    value=st.one_of(st.integers(), st.integers(-3, 110), st.integers(990, 2010)),
    default=st.integers(1, 50),
)
@example(value=101, default=1)
@example(value=PAGE_SIZE + 1, default=1)
@example(value=VECTOR_DIMENSION + 1, default=1)
def test_integer_arguments_are_in_range_or_rejected(value: int, default: int) -> None:
    config = SearchConfig(default_k=default, max_k=100)
    k = outcome(lambda: check_k(value, config))
    assert isinstance(k, InvalidArgumentError) or k == (default if value == 0 else value)
    assert isinstance(k, InvalidArgumentError) or 1 <= k <= 100
    assert isinstance(k, InvalidArgumentError) == (value < 0 or value > 100)
    size = outcome(lambda: check_page_size(value, default=default))
    assert isinstance(size, InvalidArgumentError) == (value < 0 or value > PAGE_SIZE)
    assert isinstance(size, InvalidArgumentError) or size == (value or default)
    dim = outcome(lambda: check_dimension(value))
    assert isinstance(dim, InvalidArgumentError) == (not 1 <= value <= VECTOR_DIMENSION)


# Whole queries ------------------------------------------------------------------------

MAX_QUERY_CHARS = 30
CONFIG = SearchConfig(default_k=7, max_k=50, max_query_chars=MAX_QUERY_CHARS)
WEIGHT = st.one_of(st.none(), st.floats(-1, 2), ANY_FLOAT)


@PROFILE
@given(
    q=st.one_of(st.text("ab ", max_size=35), ANY_TEXT),
    k=st.integers(-3, 60),
    vector=st.one_of(st.just([]), st.lists(ANY_FLOAT, max_size=4).filter(normalisable)),
    min_similarity=st.one_of(st.none(), st.floats(-3, 3), ANY_FLOAT),
    rrf_k=st.integers(-2, 100),
    path_prefix=st.one_of(st.just(""), st.just("docs/"), ANY_TEXT),
    weights=st.tuples(WEIGHT, WEIGHT),
    text_required=st.booleans(),
    fusion=st.one_of(st.none(), st.sampled_from(Fusion)),
    collection=st.one_of(st.sampled_from(["", "docs", "a-b_1"]), ANY_TEXT),
    where=st.one_of(st.none(), FILTER),
)
@example(
    q="a",
    k=1,
    vector=[],
    min_similarity=-1.5,
    rrf_k=0,
    path_prefix="",
    weights=(None, None),
    text_required=True,
    fusion=None,
    collection="",
    where=None,
)
def test_search_queries_accepted_satisfy_every_limit(
    q: str,
    k: int,
    vector: list[float],
    min_similarity: float | None,
    rrf_k: int,
    path_prefix: str,
    weights: tuple[float | None, float | None],
    text_required: bool,
    fusion: Fusion | None,
    collection: str,
    where: Filter | None,
) -> None:
    def build(q: str, k: int, vector: list[float]) -> SearchQuery:
        return search_query(
            q=q,
            k=k,
            config=CONFIG,
            dimension=None,
            vector=vector,
            min_similarity=min_similarity,
            rrf_k=rrf_k,
            path_prefix=path_prefix,
            fulltext_weight=weights[0],
            semantic_weight=weights[1],
            text_required=text_required,
            fusion=fusion,
            collection=collection,
            where=where,
        )

    result = outcome(lambda: build(q, k, vector))
    if isinstance(result, InvalidArgumentError):
        return
    assert isinstance(result, SearchQuery)
    assert storable(result.q) and len(result.q) <= MAX_QUERY_CHARS
    assert result.q.strip() or result.vector is not None or not text_required
    assert result.k == (k or CONFIG.default_k) and 1 <= result.k <= CONFIG.max_k
    assert result.rrf_k >= 1
    for weight in (result.fulltext_weight, result.semantic_weight):
        assert math.isfinite(weight) and weight >= 0
    assert (result.fulltext_weight, result.semantic_weight) != (0.0, 0.0)
    assert result.min_similarity is None or -1.0 <= result.min_similarity <= 1.0
    assert result.collection == (collection or "default")
    assert storable(path_prefix) and len(path_prefix) <= PATH_CHARS
    if result.vector is not None:
        assert abs(float(np.linalg.norm(result.vector)) - 1.0) < 1e-5
    if path_prefix:
        assert result.where == (
            PathPrefix(path_prefix) if where is None else All((PathPrefix(path_prefix), where))
        )
    else:
        assert result.where is where
    # Checking the accepted values again accepts them unchanged.
    again = build(result.q, result.k, [] if result.vector is None else result.vector.tolist())
    assert (again.q, again.k, again.rrf_k, again.where) == (
        result.q,
        result.k,
        result.rrf_k,
        result.where,
    )
    if result.vector is not None:
        assert again.vector is not None
        np.testing.assert_allclose(again.vector, result.vector, atol=1e-6)


# Extremes ---------------------------------------------------------------------------------


@PROFILE
@given(value=st.integers())
@example(value=10**400)
def test_integer_numbers_are_checked_like_floats(value: int) -> None:
    for check in (
        lambda: check_metadata({"n": value}),
        lambda: check_filter(Range("n", gt=value)),
        lambda: check_filter(Equals("n", value)),
        lambda: check_vector([value, 1.0], None, what="v"),
    ):
        outcome(check)


@PROFILE
@given(
    values=st.lists(
        st.one_of(st.floats(-1e-150, 1e-150), st.floats(-1e300, 1e300)), min_size=1, max_size=4
    )
)
@example(values=[3e-162])
@example(values=[1e-170])
@example(values=[1.35e154])
def test_float64_vectors_of_any_magnitude_normalise_cleanly(values: list[float]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = outcome(lambda: check_vector(values, None, what="v"))
    if isinstance(result, InvalidArgumentError):
        scale = max(abs(v) for v in values)
        size = scale * math.sqrt(sum((v / scale) ** 2 for v in values)) if scale else 0.0
        assert size == 0 or size > 1e30, f"rejected a vector of norm {size}: {result}"
    else:
        assert abs(float(np.linalg.norm(result.astype(np.float64))) - 1.0) < 1e-5
