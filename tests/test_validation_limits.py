"""Every limit of request validation at its edge: the last value accepted and the first
refused. The limits are written out here, as the API documents them, not imported from
`validation`, so a changed limit fails a test instead of moving the test with it."""

from __future__ import annotations

import math
from contextlib import AbstractContextManager

import numpy as np
import pytest

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
)
from docfoundry_grpc.models import ClickEvent, Fusion, MetadataValue
from docfoundry_grpc.validation import (
    check_click,
    check_collection_name,
    check_dimension,
    check_document_path,
    check_filter,
    check_k,
    check_metadata,
    check_metadata_key,
    check_page_size,
    check_query_text,
    check_text,
    check_vector,
    search_query,
)

CONFIG = SearchConfig(default_k=7, max_k=50, max_query_chars=30)


def refused(field: str | None = None) -> AbstractContextManager[object]:
    return pytest.raises(InvalidArgumentError, match=field)


def test_text_refuses_nul_lone_surrogates_and_length_past_the_limit() -> None:
    assert check_text("a" * 65_536, "title") == "a" * 65_536
    with refused("title is 65537 characters"):
        check_text("a" * 65_537, "title")
    assert check_text("abcde", "f", max_chars=5) == "abcde"
    with refused("maximum is 5"):
        check_text("abcdef", "f", max_chars=5)
    with refused("NUL"):
        check_text("a\x00b", "f")
    with refused("UTF-8"):
        check_text("a\ud800b", "f")


def test_collection_names() -> None:
    assert check_collection_name("") == "default"
    for good in ("a", "0", "a" * 63, "docs_v2-en"):
        assert check_collection_name(good) == good
    for bad in ("a" * 64, "-a", "_a", "Docs", "a b", "a.b"):
        with refused("not a valid name"):
            check_collection_name(bad)


def test_dimension_page_size_and_k_bounds() -> None:
    assert [check_dimension(d) for d in (1, 2000)] == [1, 2000]
    for bad in (0, -1, 2001):
        with refused("between 1 and 2000"):
            check_dimension(bad)
    assert check_page_size(0, default=25) == 25
    assert [check_page_size(s, default=25) for s in (1, 1000)] == [1, 1000]
    for bad in (-1, 1001):
        with refused("between 1 and 1000"):
            check_page_size(bad, default=25)
    assert [check_k(k, CONFIG) for k in (0, 1, 50)] == [7, 1, 50]
    for bad in (-1, 51):
        with refused("between 1 and 50"):
            check_k(bad, CONFIG)


def test_metadata_limits() -> None:
    keys = {f"k{i}": i for i in range(64)}
    assert check_metadata(keys) == keys
    with refused("65 keys"):
        check_metadata({**keys, "one_more": 1})
    fitting: dict[str, MetadataValue] = {
        "s": "x" * 1024,
        "l": tuple("x" for _ in range(256)),
        "b": True,
        "n": -1.5,
    }
    assert check_metadata(fitting) == fitting
    bad_values: list[dict[str, MetadataValue]] = [
        {"s": "x" * 1025},
        {"l": tuple("x" for _ in range(257))},
        {"l": ("x" * 1025,)},
        {"n": math.inf},
        {"n": math.nan},
        {"n": 10**400},
    ]
    for bad in bad_values:
        with refused("metadata"):
            check_metadata(bad)


def test_metadata_keys() -> None:
    for good in ("a", "_a", "0", "a.b-c_d", "k" * 64):
        assert check_metadata_key(good, field="f") == good
    for bad in ("", ".a", "-a", "k" * 65, "a b", "a/b", 'a"b'):
        with refused("is not valid"):
            check_metadata_key(bad, field="f")


def nested_nots(levels: int) -> Filter:
    node: Filter = Exists("x")
    for _ in range(levels):
        node = Not(node)
    return node


def test_filters_up_to_sixteen_levels_and_256_conditions() -> None:
    assert check_filter(None) is None
    assert check_filter(nested_nots(16)) == nested_nots(16)
    with refused("deeper than 16"):
        check_filter(nested_nots(17))
    wide = All(tuple(Exists(f"f{i}") for i in range(255)))  # 256 conditions with the All
    assert check_filter(wide) == wide
    with refused("257 conditions"):
        check_filter(AnyOf((*wide.filters, Exists("one_more"))))
    negations = AnyOf(tuple(Not(Exists(f"f{i}")) for i in range(128)))  # a Not counts too
    with refused("257 conditions"):
        check_filter(negations)


def test_filter_leaves_are_checked() -> None:
    fine: list[Filter] = [
        Equals("k", "x" * 1024),
        OneOf("k", tuple(range(256))),
        Range("k", gte=0),
        Range("k", lt=1e300),
        PathPrefix("p" * 1024),
        Exists("a.b"),
    ]
    for node in fine:
        assert check_filter(node) == node
    bad: list[Filter] = [
        Equals("k", "x" * 1025),
        Equals("k", math.inf),
        Equals("bad key", 1),
        OneOf("k", ()),
        OneOf("k", tuple(range(257))),
        OneOf("k", (1, math.nan)),
        Range("k"),
        Range("k", gt=math.nan),
        PathPrefix("p" * 1025),
        Not(Exists("-bad")),
    ]
    for node in bad:
        with refused("filter"):
            check_filter(node)


def test_query_text() -> None:
    assert check_query_text("q" * 30, CONFIG, required=True) == "q" * 30
    with refused("maximum is 30"):
        check_query_text("q" * 31, CONFIG, required=False)
    with refused("empty"):
        check_query_text(" \t", CONFIG, required=True)
    assert check_query_text("", CONFIG, required=False) == ""


def test_vectors_are_unit_float32_of_the_expected_dimension() -> None:
    wide = check_vector([1.0] * 384, 384, what="v")  # not a small, cached int
    assert wide.dtype == np.float32 and len(wide) == 384
    assert float(np.linalg.norm(wide)) == pytest.approx(1.0, rel=1e-6)
    assert len(check_vector([1.0] * 2000, None, what="v")) == 2000
    with refused("the maximum is 2000"):
        check_vector([1.0] * 2001, None, what="v")
    with refused("collection's vectors have 3"):
        check_vector([1.0, 2.0], 3, what="v")
    assert check_vector([1e30, 0.0], 2, what="v").tolist() == [1.0, 0.0]
    assert check_vector([1e-300, -1e-300], 2, what="v").tolist() == pytest.approx(
        [math.sqrt(0.5), -math.sqrt(0.5)]
    )
    for bad in ([1.1e30, 0.0], [-1.1e30, 0.0], [10**400, 0], [math.inf, 0.0], [0.0, 0.0]):
        with refused("v "):
            check_vector(bad, 2, what="v")


def test_search_query_defaults_and_bounds() -> None:
    query = search_query(q="hi", k=0, config=CONFIG, dimension=3)
    assert (query.k, query.rrf_k, query.fulltext_weight, query.semantic_weight) == (7, 60, 1, 1)
    assert (query.collection, query.where, query.fusion, query.vector) == (
        "default",
        None,
        None,
        None,
    )
    tuned = search_query(
        q="hi",
        k=3,
        config=CONFIG,
        dimension=None,
        rrf_k=5,
        fulltext_weight=0.0,
        semantic_weight=2.5,
        min_similarity=-1.0,
        fusion=Fusion.RRF,
        collection="docs",
        path_prefix="guides/",
        where=Exists("lang"),
        page_token="t",
    )
    assert (tuned.rrf_k, tuned.fulltext_weight, tuned.semantic_weight) == (5, 0.0, 2.5)
    assert (tuned.min_similarity, tuned.fusion, tuned.collection, tuned.page_token) == (
        -1.0,
        Fusion.RRF,
        "docs",
        "t",
    )
    assert tuned.where == All((PathPrefix("guides/"), Exists("lang")))
    assert search_query(q="hi", k=1, config=CONFIG, dimension=3, path_prefix="a/").where == (
        PathPrefix("a/")
    )
    assert search_query(q="hi", k=1, config=CONFIG, dimension=3, min_similarity=1.0)
    for bad in (
        {"min_similarity": 1.01},
        {"min_similarity": -1.01},
        {"rrf_k": -1},
        {"fulltext_weight": -0.1},
        {"semantic_weight": math.inf},
        {"semantic_weight": math.nan},
        {"fulltext_weight": 0.0, "semantic_weight": 0.0},
        {"path_prefix": "p" * 1025},
        {"collection": "Bad"},
    ):
        with refused():
            search_query(q="hi", k=1, config=CONFIG, dimension=3, **bad)


def test_query_text_is_required_unless_a_vector_is_sent_or_it_is_optional() -> None:
    with refused("empty"):
        search_query(q=" ", k=1, config=CONFIG, dimension=2)
    by_vector = search_query(q="", k=1, config=CONFIG, dimension=2, vector=[0.0, 2.0])
    assert by_vector.vector is not None and by_vector.vector.tolist() == [0.0, 1.0]
    assert search_query(q="", k=1, config=CONFIG, dimension=2, text_required=False).q == ""
    with refused("collection's vectors have 2"):
        search_query(q="", k=1, config=CONFIG, dimension=2, vector=[1.0, 2.0, 3.0])


def test_document_paths() -> None:
    assert check_document_path("p" * 1024) == "p" * 1024
    for bad in ("", "  ", "p" * 1025, "a\x00b"):
        with refused("path"):
            check_document_path(bad)


def click(**fields: object) -> ClickEvent:
    values: dict[str, object] = {"query": "q", "chunk_id": 1, "position": 1, **fields}
    return ClickEvent(**values)  # type: ignore[arg-type]


def test_clicks_within_the_ranking_and_a_day() -> None:
    for good in (
        click(),
        click(position=50, dwell_time=86_400.0),
        click(dwell_time=0.0, session_id="s" * 256, user_id="u" * 256),
    ):
        assert check_click(good, CONFIG) == good
    for bad, field in (
        (click(query=" "), "empty"),
        (click(chunk_id=0), "chunk_id"),
        (click(position=0), "position"),
        (click(position=51), "position"),
        (click(dwell_time=-0.5), "dwell_time"),
        (click(dwell_time=86_400.5), "dwell_time"),
        (click(dwell_time=math.nan), "dwell_time"),
        (click(dwell_time=math.inf), "dwell_time"),
        (click(session_id="s" * 257), "session_id"),
        (click(user_id="u" * 257), "user_id"),
    ):
        with refused(field):
            check_click(bad, CONFIG)
