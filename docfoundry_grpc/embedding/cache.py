"""A persistent embedding cache: re-indexing, evaluation and benchmarks embed each distinct
text once per model. Keys are SHA-256 of model name (with its precision) and text; values
are float32 blobs."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .base import Embedder

_LOOKUP_BATCH = 500


class CachedEmbedder:
    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dimension = inner.dimension
        self.precision = inner.precision
        # Float32 keys are those of caches written before precision was a setting.
        self._space = (
            self.model_name
            if self.precision == "float32"
            else f"{self.model_name}@{self.precision}"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, vector BLOB NOT NULL)"
        )
        self._lock = threading.Lock()

    def _key(self, text: str) -> bytes:
        material = f"{self._space}\x00{text}".encode("utf-8", "surrogatepass")
        return hashlib.sha256(material).digest()

    def _lookup(self, keys: list[bytes]) -> dict[bytes, bytes]:
        found: dict[bytes, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), _LOOKUP_BATCH):
                part = keys[start : start + _LOOKUP_BATCH]
                marks = ",".join("?" * len(part))
                query = f"SELECT key, vector FROM embeddings WHERE key IN ({marks})"
                found.update(self._db.execute(query, part).fetchall())
        return found

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        keys = [self._key(t) for t in texts]
        found = self._lookup(keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        if missing:
            fresh = self.inner.embed([texts[i] for i in missing])
            out[missing] = fresh
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO embeddings VALUES (?, ?)",
                    [(keys[i], fresh[n].tobytes()) for n, i in enumerate(missing)],
                )
        for i, key in enumerate(keys):
            if key in found:
                out[i] = np.frombuffer(found[key], dtype=np.float32)
        return out

    def close(self) -> None:
        self._db.close()
