"""Builds the configured embedder."""

from __future__ import annotations

from pathlib import Path

from .base import Embedder
from .cache import CachedEmbedder
from .minilm import MiniLMEmbedder


def build_embedder(
    *,
    batch_size: int = 8,
    cache_path: Path | None = None,
    threads: int = 0,
    precision: str = "float32",
) -> Embedder:
    """The local all-MiniLM-L6-v2, behind a persistent cache when `cache_path` is set.

    `threads` is the thread count of each model call (0: one per core); `precision` is
    "float32" or "int8".
    """
    model = MiniLMEmbedder(batch_size=batch_size, threads=threads, precision=precision)
    return CachedEmbedder(model, cache_path) if cache_path else model
