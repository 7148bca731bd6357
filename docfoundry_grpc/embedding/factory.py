"""Builds the configured embedder."""

from __future__ import annotations

from pathlib import Path

from .base import Embedder
from .cache import CachedEmbedder
from .minilm import MiniLMEmbedder


def build_embedder(*, batch_size: int = 32, cache_path: Path | None = None) -> Embedder:
    """The local all-MiniLM-L6-v2, behind a persistent cache when `cache_path` is set."""
    model = MiniLMEmbedder(batch_size=batch_size)
    return CachedEmbedder(model, cache_path) if cache_path else model
