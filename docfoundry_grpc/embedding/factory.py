"""Builds the configured embedder."""

from __future__ import annotations

from pathlib import Path

from threadpoolctl import threadpool_limits

from .base import Embedder
from .cache import CachedEmbedder
from .minilm import MiniLMEmbedder


def build_embedder(
    *, batch_size: int = 32, cache_path: Path | None = None, threads: int = 0
) -> Embedder:
    """The local all-MiniLM-L6-v2, behind a persistent cache when `cache_path` is set.

    `threads` caps the BLAS threads of each model call (0 keeps the library's default, one
    per core). One thread per call is faster when the CPU is shared: BLAS threads that
    outnumber free cores spin and stall one another.
    """
    if threads > 0:
        threadpool_limits(limits=threads, user_api="blas")
    model = MiniLMEmbedder(batch_size=batch_size)
    return CachedEmbedder(model, cache_path) if cache_path else model
