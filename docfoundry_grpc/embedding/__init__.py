"""Text embedders: the protocol the service depends on and its MiniLM implementation."""

from docfoundry_grpc.embedding.base import Embedder
from docfoundry_grpc.embedding.minilm import (
    MODEL_NAME,
    MiniLMEmbedder,
    default_model_dir,
    model_dimension,
)

__all__ = ["MODEL_NAME", "Embedder", "MiniLMEmbedder", "default_model_dir", "model_dimension"]
