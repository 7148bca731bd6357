"""Pure domain functions: analysis, chunking, fusion, snippets, validation, settings."""

from __future__ import annotations

import math
import random
import re
import string
import unicodedata
from dataclasses import replace

import numpy as np
import pytest

from docfoundry.v1 import search_pb2 as pb
from docfoundry_grpc import text
from docfoundry_grpc.chunking import chunk_content, content_type_for, github_slug, split_section
from docfoundry_grpc.config import SearchConfig, Settings
from docfoundry_grpc.errors import InvalidArgumentError
from docfoundry_grpc.ingest import content_hash
from docfoundry_grpc.models import ContentType, Fusion
from docfoundry_grpc.ranking import FusionParams, fuse
from docfoundry_grpc.service.convert import document_from_pb
from docfoundry_grpc.snippets import SNIPPET_CHARS, snippet
from docfoundry_grpc.text import _fold, analyze, query_terms
from docfoundry_grpc.validation import check_vector, search_query


def test_analyze_folds_stems_and_drops_stop_words() -> None:
    assert analyze("The Running CAFÉS of Zürich!") == ["run", "cafe", "zurich"]
    assert analyze("The Running CAFES of Zurich!") == ["run", "cafe", "zurich"]


def test_the_term_table_stays_within_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "_TERMS", {})
    monkeypatch.setattr(text, "_TERMS_MAX", 8)
    vocabulary = [f"word{n}s" for n in range(30)]
    assert analyze(" ".join(vocabulary)) == [f"word{n}" for n in range(30)]
    assert 0 < len(text._TERMS) <= 8
    assert analyze("the words") == ["word"]


def test_ascii_folding_takes_a_shortcut_to_the_same_result() -> None:
    assert _fold(string.printable) == unicodedata.normalize("NFKD", string.printable.casefold())
    assert query_terms("install installing installs") == ["instal"]
    assert query_terms("the of and to") == []
    assert query_terms('"AND" OR (NOT) NEAR* ^:') == ["near"]
    assert analyze("snake_case create_pool()") == ["snake", "case", "creat", "pool"]
    assert analyze("日本語 текст") == ["日本語", "текст"]


def test_markdown_chunks_by_heading_with_github_anchors() -> None:
    md = (
        "Intro\n\n# Getting Started!\nstep one\n\n```\n# not a heading\n```\n"
        "## Getting Started!\nagain"
    )
    sections = chunk_content(md, ContentType.MARKDOWN)
    assert [(s.heading, s.anchor) for s in sections] == [
        ("", ""),
        ("Getting Started!", "getting-started"),
        ("Getting Started!", "getting-started-1"),
    ]
    assert "# not a heading" in sections[1].text
    assert github_slug("API: v2 & more") == "api-v2--more"


def test_html_chunks_use_ids_and_skip_scripts() -> None:
    html = (
        '<h1 id="top">Top</h1><p>alpha</p><script>var x = 1</script>'
        "<h2>Second Part</h2><p>beta &amp; gamma</p>"
    )
    sections = chunk_content(html, ContentType.HTML)
    assert [(s.heading, s.anchor, s.text.strip()) for s in sections] == [
        ("Top", "top", "alpha"),
        ("Second Part", "second-part", "beta & gamma"),
    ]


def test_long_sections_split_on_paragraphs_then_sentences() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 30 for i in range(10))
    chunks = split_section(text, 400)
    assert all(len(c) <= 400 for c in chunks) and len(chunks) > 1
    assert chunks[0].startswith("Paragraph 0") and chunks[1].startswith("Paragraph")
    sentences = split_section("One sentence here. " * 100, 200)
    assert all(len(c) <= 200 for c in sentences)
    assert all(c.endswith(".") for c in sentences)
    assert chunk_content("", ContentType.PLAIN_TEXT) == []


def test_content_type_from_extension() -> None:
    assert content_type_for("a/B.MD") is ContentType.MARKDOWN
    assert content_type_for("x.htm") is ContentType.HTML
    assert content_type_for("notes") is ContentType.PLAIN_TEXT


def test_rrf_matches_the_formula() -> None:
    fulltext = [(1, 9.0), (2, 5.0), (3, 1.0)]
    semantic = [(3, 0.9), (4, 0.8), (1, 0.1)]
    fused = fuse(fulltext, semantic, FusionParams(Fusion.RRF, rrf_k=60, semantic_weight=2.0))
    expected = {1: 1 / 61 + 2 / 63, 2: 1 / 62, 3: 1 / 63 + 2 / 61, 4: 2 / 62}
    assert [f.chunk_id for f in fused] == sorted(expected, key=lambda c: -expected[c])
    for f in fused:
        assert math.isclose(f.score, expected[f.chunk_id])
    assert fused[0].fulltext and fused[0].fulltext.rank == 3
    assert fused[0].semantic and fused[0].semantic.rank == 1


def test_score_fusion_divides_by_each_legs_best() -> None:
    fulltext = [(1, 8.0), (2, 4.0)]
    semantic = [(2, 0.5), (3, 0.25), (4, -0.1)]
    fused = fuse(fulltext, semantic, FusionParams(Fusion.SCORE, fulltext_weight=0.5))
    expected = {1: 0.5 * 1.0, 2: 0.5 * 0.5 + 1.0, 3: 0.5, 4: 0.0}
    assert {f.chunk_id: f.score for f in fused} == pytest.approx(expected)
    assert [f.chunk_id for f in fused] == [2, 1, 3, 4]  # 1 and 3 tie: better rank first


def test_a_limited_fusion_is_the_head_of_the_full_one() -> None:
    """Ties on score (rounded scores, equal ranks in both legs) and repeated chunk ids
    included: the limit changes how much is built, never the order."""
    rng = random.Random(3)
    for _ in range(300):
        fulltext = [
            (rng.randrange(40), round(rng.uniform(0, 3), 1)) for _ in range(rng.randrange(25))
        ]
        semantic = [
            (rng.randrange(40), round(rng.uniform(-0.2, 1), 1)) for _ in range(rng.randrange(25))
        ]
        params = FusionParams(rng.choice(list(Fusion)))
        full = fuse(fulltext, semantic, params)
        for limit in (1, 3, 10, len(full) + 1):
            assert fuse(fulltext, semantic, params, limit=limit) == full[:limit]


def test_snippet_starts_near_first_match() -> None:
    text = "Lorem ipsum dolor. " * 30 + "The configuration port is 50051. " + "More text. " * 30
    result = snippet(text, frozenset(query_terms("port")))
    assert "port is 50051" in result and result.startswith("…")
    assert len(result) <= 245
    assert snippet("short text", frozenset()) == "short text"
    # "_" parts words, so a query can match the part after it.
    text = "Lorem ipsum dolor. " * 30 + "An x_ray image. " + "More text. " * 30
    assert "x_ray image" in snippet(text, frozenset(query_terms("ray")))


# Words whose stems are not plain prefixes of them: Snowball's exceptions (dying -> die,
# skies -> sky), rewritten endings (sensibility -> sensibl, happy -> happi), and non-ASCII.
TRICKY_WORDS = """sensibility sensible dying lying tying die lie tie skies sky skis early only
gently ugly happily happy relational relate organization organize hopping hoped agreed running
studies study cries conditional possibly generously Zürich zurich café cafe naïve apologies
indices analysis analyses ionization criticism centre 5G IL_6 x_ray rate rat""".split()


def reference_snippet_start(flat: str, terms: frozenset[str]) -> int | None:
    """Where the first word analysing to one of `terms` starts: every word, one by one."""
    for word in re.finditer(r"[^\W_]+", flat):
        if terms & set(analyze(word.group())):
            return word.start()
    return None


@pytest.mark.parametrize(
    "vocabulary",
    [TRICKY_WORDS, [w for w in TRICKY_WORDS if w.isascii()]],
    ids=["any text", "ASCII text"],  # snippets scan ASCII text on a faster path
)
def test_snippets_start_at_the_first_word_with_a_query_term(vocabulary: list[str]) -> None:
    rng = random.Random(5)
    for _ in range(400):
        flat = " ".join(rng.choice(vocabulary) for _ in range(60))
        terms = frozenset(analyze(" ".join(rng.sample(vocabulary, rng.randint(1, 3)))))
        start = reference_snippet_start(flat, terms)
        body = snippet(flat, terms).strip("…")
        if start is None or start < SNIPPET_CHARS // 4:
            assert flat.startswith(body)
        else:
            assert flat.index(body) <= start < flat.index(body) + SNIPPET_CHARS // 4 + 1


def test_validation() -> None:
    config = SearchConfig()
    query = search_query(q="  hi ", k=0, config=config, dimension=3)
    assert (query.k, query.rrf_k) == (10, 60)
    with pytest.raises(InvalidArgumentError, match="between 1 and"):
        search_query(q="hi", k=config.max_k + 1, config=config, dimension=3)
    with pytest.raises(InvalidArgumentError, match="NaN"):
        check_vector([1.0, math.nan, 0.0], 3, what="v")
    with pytest.raises(InvalidArgumentError, match="zeros"):
        check_vector([0.0, 0.0, 0.0], 3, what="v")
    with pytest.raises(InvalidArgumentError, match="weights"):
        search_query(q="hi", k=1, config=config, dimension=3, fulltext_weight=0, semantic_weight=0)
    unit = check_vector([3.0, 4.0, 0.0], 3, what="v")
    assert unit.tolist() == pytest.approx([0.6, 0.8, 0.0])
    by_vector = search_query(q="", k=1, config=config, dimension=3, vector=[1.0, 0, 0])
    assert by_vector.vector is not None


def test_caller_vectors_arrive_as_float32_and_hash_as_before() -> None:
    """The service reads a chunk's vector straight into a float32 array; its content hash
    must stay that of the float values, so documents stored before are still unchanged
    when sent again. The hash below is what the code that kept Python floats computed."""
    sent = pb.Document(
        path="vectors.md",
        title="T",
        chunks=[pb.ChunkInput(text="caller vectors", embedding=[0.1, -0.2, 0.3, 1e-8])],
    )
    doc = document_from_pb(sent)
    embedding = doc.chunks[0].embedding
    assert isinstance(embedding, np.ndarray) and embedding.dtype == np.float32
    as_floats = replace(doc, chunks=[replace(doc.chunks[0], embedding=tuple(embedding.tolist()))])
    expected = "399bb9bb24b7aa4edbbba2d784a91839ec4226e83e358f3c640770b8a09105c8"
    assert content_hash(doc, chunking="markdown-v1") == expected
    assert content_hash(as_floats, chunking="markdown-v1") == expected
    without = document_from_pb(pb.Document(path="plain.md", chunks=[pb.ChunkInput(text="t")]))
    assert not without.chunks[0].has_embedding


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_TYPE": "PostgreSQL",
            "POSTGRES_PASSWORD": "pw",
            "POSTGRES_POOL_MAX_SIZE": "7",
            "GRPC_PORT": "6000",
            "POSTGRES_VECTOR_INDEX": "ivfflat",
            "LOG_FORMAT": "json",
        }
    )
    assert settings.database.type == "postgresql"
    assert settings.database.postgres.pool_max_size == 7
    assert settings.database.postgres.vector_index == "ivfflat"
    assert (settings.grpc_port, settings.log_format) == (6000, "json")
    assert Settings.from_env({}).database.postgres.pool_min_size == 5
    with pytest.raises(InvalidArgumentError, match="GRPC_PORT"):
        Settings.from_env({"GRPC_PORT": "many"})
    with pytest.raises(InvalidArgumentError, match="DATABASE_TYPE"):
        Settings.from_env({"DATABASE_TYPE": "oracle"})


def test_embedding_precision_is_int8_unless_asked_for_float32() -> None:
    assert Settings.from_env({}).embedding_precision == "int8"
    env = {"EMBEDDING_PRECISION": "float32"}
    assert Settings.from_env(env).embedding_precision == "float32"
    with pytest.raises(InvalidArgumentError, match="EMBEDDING_PRECISION"):
        Settings.from_env({"EMBEDDING_PRECISION": "fp16"})


def test_index_build_memory_is_a_postgresql_size() -> None:
    def memory(value: str) -> str:
        env = {"POSTGRES_INDEX_BUILD_MEMORY": value}
        return Settings.from_env(env).database.postgres.index_build_memory

    assert Settings.from_env({}).database.postgres.index_build_memory == "1GB"
    assert memory("4GB") == "4GB"
    assert memory("512 MB") == "512 MB"
    for bad in ("4", "lots", "0GB", "4gb", "1GB; DROP TABLE chunks"):
        with pytest.raises(InvalidArgumentError, match="POSTGRES_INDEX_BUILD_MEMORY"):
            memory(bad)


def test_postings_cache_size_is_zero_or_more_megabytes() -> None:
    def cache_mb(value: str) -> int:
        return Settings.from_env(
            {"POSTGRES_POSTINGS_CACHE_MB": value}
        ).database.postgres.postings_cache_mb

    assert Settings.from_env({}).database.postgres.postings_cache_mb == 256
    assert cache_mb("0") == 0  # off
    assert cache_mb("1024") == 1024
    for bad in ("-1", "lots", "1.5"):
        with pytest.raises(InvalidArgumentError, match="POSTGRES_POSTINGS_CACHE_MB"):
            cache_mb(bad)
