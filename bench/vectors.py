"""Chunk and query vectors: real MiniLM embeddings, cached on disk, and vectors derived from
them where embedding every chunk would take hours on a small CPU.

A derived vector is normalise(w·a + (1 − w)·b + 0.1·u): a and b two real embeddings of the
pool, w uniform in [0.5, 0.9], u Gaussian noise scaled to unit expected norm. It stays near
a real vector, so the derived rows cluster the way real ones do, which is what an ANN index
and an exact scan are sensitive to; its text and its vector are no longer related, so
semantic hits on derived rows measure speed, not relevance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from docfoundry_grpc.config import Settings
from docfoundry_grpc.embedding import Embedder, MiniLMEmbedder
from docfoundry_grpc.embedding.cache import CachedEmbedder

F32 = npt.NDArray[np.float32]
_EMBED_STEP = 256  # texts per cached call: an interrupted run keeps what it embedded
_DERIVE_BLOCK = 4096  # rows per seeded block, so row i is the same whatever the corpus size
_NOISE = 0.1


@dataclass(frozen=True)
class CorpusVectors:
    vectors: F32
    real: int  # rows [0, real) are model embeddings; the rest are derived

    @property
    def derived(self) -> int:
        return len(self.vectors) - self.real


def open_cached_model(cache_path: Path) -> CachedEmbedder:
    """The float32 model, cached on disk, for the vectors a caller sends with its chunks."""
    threads = Settings.from_env().embedding_threads
    return CachedEmbedder(MiniLMEmbedder(threads=threads), cache_path)


def server_model() -> MiniLMEmbedder:
    """The model as the server runs it (EMBEDDING_THREADS, EMBEDDING_PRECISION), so the
    model's own figures and the server's compare like with like."""
    settings = Settings.from_env()
    return MiniLMEmbedder(
        threads=settings.embedding_threads, precision=settings.embedding_precision
    )


def embed_all(embedder: Embedder, texts: Sequence[str], *, label: str) -> F32:
    out = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    with tqdm(total=len(texts), unit="text", desc=label, leave=False) as bar:
        for start in range(0, len(texts), _EMBED_STEP):
            part = texts[start : start + _EMBED_STEP]
            out[start : start + len(part)] = embedder.embed(part)
            bar.update(len(part))
    return out


def _derived_block(pool: F32, block: int, *, seed: int) -> F32:
    rng = np.random.default_rng([seed, block])
    pairs = rng.integers(0, len(pool), size=(_DERIVE_BLOCK, 2))
    weights = rng.uniform(0.5, 0.9, size=(_DERIVE_BLOCK, 1)).astype(np.float32)
    noise = rng.standard_normal((_DERIVE_BLOCK, pool.shape[1]), dtype=np.float32)
    noise *= np.float32(_NOISE / np.sqrt(pool.shape[1]))
    mixed: F32 = weights * pool[pairs[:, 0]] + (1 - weights) * pool[pairs[:, 1]] + noise
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    return mixed


def derive(pool: F32, count: int, *, seed: int, start_row: int) -> F32:
    """`count` vectors derived from `pool`, for corpus rows start_row, start_row + 1, …"""
    out = np.empty((count, pool.shape[1]), dtype=np.float32)
    end = start_row + count
    for block in range(start_row // _DERIVE_BLOCK, (end - 1) // _DERIVE_BLOCK + 1):
        first = block * _DERIVE_BLOCK
        rows = slice(max(first, start_row), min(first + _DERIVE_BLOCK, end))
        values = _derived_block(pool, block, seed=seed)
        out[rows.start - start_row : rows.stop - start_row] = values[
            rows.start - first : rows.stop - first
        ]
    return out


def corpus_vectors(
    embedder: Embedder, texts: Sequence[str], *, pool_size: int, seed: int
) -> CorpusVectors:
    """Embeds the first `pool_size` texts and derives vectors for the rest."""
    real = min(len(texts), pool_size)
    pool = embed_all(embedder, texts[:real], label="embedding corpus pool")
    if real == len(texts):
        return CorpusVectors(pool, real)
    rest = derive(pool, len(texts) - real, seed=seed, start_row=real)
    return CorpusVectors(np.ascontiguousarray(np.vstack([pool, rest])), real)
