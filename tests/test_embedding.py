"""MiniLM on ONNX Runtime must reproduce sentence-transformers: search quality and any stored
vectors depend on it being the same vector space, not merely a similar one.

tests/data/minilm_reference.json holds vectors from sentence-transformers (torch) on the
same model files; its "source" field says which versions produced them.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from docfoundry_grpc.embedding import Embedder, MiniLMEmbedder
from docfoundry_grpc.embedding.cache import CachedEmbedder

REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8")
)
ITEMS: list[dict[str, Any]] = REFERENCE["items"]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_is_an_embedder(minilm: MiniLMEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    assert minilm.model_name == REFERENCE["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert minilm.dimension == 384


@pytest.mark.parametrize("item", ITEMS, ids=[repr(i["text"][:24]) for i in ITEMS])
def test_matches_sentence_transformers(minilm: MiniLMEmbedder, item: dict[str, Any]) -> None:
    expected = np.array(item["vector"], dtype=np.float64)
    got = minilm.embed([item["text"]])[0].astype(np.float64)
    assert _cos(got, expected) > 0.9999
    assert np.abs(got - expected).max() < 1e-4  # observed ~3e-7; rounding alone is 5e-7


def test_reference_texts_in_one_batch(minilm: MiniLMEmbedder) -> None:
    got = minilm.embed([i["text"] for i in ITEMS])
    for row, item in zip(got, ITEMS, strict=True):
        assert _cos(row.astype(np.float64), np.array(item["vector"])) > 0.9999


def test_shape_dtype_and_unit_norm(minilm: MiniLMEmbedder) -> None:
    out = minilm.embed(["one", "two words", "", "x" * 5000])
    assert out.shape == (4, 384)
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_empty_input(minilm: MiniLMEmbedder) -> None:
    empties: list[Sequence[str]] = [[], ()]
    for empty in empties:
        out = minilm.embed(empty)
        assert out.shape == (0, 384)
        assert out.dtype == np.float32


def test_a_bare_string_is_rejected(minilm: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError):
        minilm.embed("hello")


def test_order_is_kept_across_length_sorted_batches(minilm: MiniLMEmbedder) -> None:
    rng = random.Random(7)
    words = "grpc index query chunk vector token stream deadline schema cache".split()
    # 75 texts over three internal batches of 32, lengths from 1 to 300 words (the longest
    # are truncated), shuffled so that sorting by length really reorders them.
    texts = [" ".join(rng.choices(words, k=rng.choice([1, 3, 10, 40, 300]))) for _ in range(75)]
    together = minilm.embed(texts)
    one_by_one = np.vstack([minilm.embed([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=2e-6)


def test_truncates_at_256_tokens(minilm: MiniLMEmbedder) -> None:
    long = "documentation search over gRPC services " * 100  # ~600 tokens
    a, b = minilm.embed([long, long + " and a tail that falls past the limit"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_close_meaning_scores_higher_than_unrelated(minilm: MiniLMEmbedder) -> None:
    query, close, unrelated = minilm.embed(
        [
            "How do I configure TLS for a gRPC server?",
            "Enable transport security on the RPC server with certificates.",
            "My cat likes to sleep in the sun all afternoon.",
        ]
    )
    # Rows are unit length, so the dot product is the cosine.
    assert float(query @ close) > float(query @ unrelated) + 0.2


def test_concurrent_calls_agree_with_sequential(minilm: MiniLMEmbedder) -> None:
    batches = [[f"request {i} about topic {j}" for j in range(i % 5 + 1)] for i in range(12)]
    expected = [minilm.embed(b) for b in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(minilm.embed, batches))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, atol=2e-6)


def test_thread_count_does_not_change_vectors(minilm: MiniLMEmbedder) -> None:
    texts = [i["text"] for i in ITEMS]
    two_threads = MiniLMEmbedder(threads=2)
    np.testing.assert_allclose(two_threads.embed(texts), minilm.embed(texts), atol=2e-6)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        MiniLMEmbedder(threads=-1)
    with pytest.raises(ValueError, match="precision"):
        MiniLMEmbedder(precision="fp16")


@pytest.fixture(scope="module")
def minilm_int8() -> MiniLMEmbedder:
    return MiniLMEmbedder(precision="int8")


def test_int8_stays_in_the_sentence_transformers_space(minilm_int8: MiniLMEmbedder) -> None:
    """Close enough to store and search beside float32 vectors: the same model, in int8."""
    assert (minilm_int8.model_name, minilm_int8.precision) == (REFERENCE["model"], "int8")
    got = minilm_int8.embed([i["text"] for i in ITEMS])
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    expected = np.array([i["vector"] for i in ITEMS])
    similarity = np.array(
        [_cos(g.astype(np.float64), e) for g, e in zip(got, expected, strict=True)]
    )
    assert similarity.min() > 0.95, similarity  # observed 0.974 and up, 0.99 typical
    assert np.abs(got - expected).max() > 1e-3  # not the float32 graph: the weights changed
    # Each text stays nearest to its own reference vector among all of them.
    nearest = np.argmax(got.astype(np.float64) @ expected.T, axis=1)
    assert nearest.tolist() == list(range(len(ITEMS)))


def test_int8_load_keeps_the_quantizer_out_of_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        MiniLMEmbedder(precision="int8")
    assert not [r.getMessage() for r in caplog.records if "onnxruntime" in r.pathname]


def test_the_cache_keeps_each_precision_apart(
    tmp_path: Path, minilm: MiniLMEmbedder, minilm_int8: MiniLMEmbedder
) -> None:
    text = [ITEMS[0]["text"]]
    exact = CachedEmbedder(minilm, tmp_path / "cache.sqlite").embed(text)
    quantized = CachedEmbedder(minilm_int8, tmp_path / "cache.sqlite").embed(text)
    np.testing.assert_array_equal(quantized, minilm_int8.embed(text))
    np.testing.assert_array_equal(exact, minilm.embed(text))
    assert not np.array_equal(exact, quantized)


def test_the_built_graph_is_valid_onnx() -> None:
    """The server skips this check at start (ONNX Runtime refuses a broken graph anyway);
    here it names the fault if a change to the graph builder breaks the format."""
    import onnx
    from safetensors.numpy import load_file

    from docfoundry_grpc.embedding.bert_graph import WORD_EMBEDDINGS, BertShape, build_bert_graph
    from docfoundry_grpc.embedding.minilm import default_model_dir

    model_dir = default_model_dir()
    weights = load_file(str(model_dir / "model.safetensors"))
    weights.pop(WORD_EMBEDDINGS)
    shape = BertShape.from_config(json.loads((model_dir / "config.json").read_text()))
    onnx.checker.check_model(onnx.load_from_string(build_bert_graph(weights, shape)))
