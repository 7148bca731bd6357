"""An embedded peer on the same texts and vectors: LanceDB's full-text index (BM25, English
stemming and stop words, as the service analyses text), vector search and its hybrid search
(reciprocal rank fusion, one of the service's two fusions), queried in-process one request
at a time.

Below 100,000 rows the vector search is an exact scan (like the SQLite backend); from there
on it uses an IVF-HNSW index with scalar quantisation, the nearest LanceDB has to pgvector's
HNSW. Vectors are unit length, so LanceDB's default L2 distance ranks exactly as cosine
does. LanceDB is optional: without it the comparison is skipped.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .corpus import BenchDocument
from .results import Latency, PeerResult

F32 = npt.NDArray[np.float32]
ANN_FROM_ROWS = 100_000
_WARMUP = 5
_COLUMNS = ["id", "path"]


def lancedb_version() -> str | None:
    try:
        return metadata.version("lancedb")
    except metadata.PackageNotFoundError:
        return None


def _arrow_table(documents: Sequence[BenchDocument], vectors: F32) -> Any:
    # pyarrow ships no type information, so it is used untyped here.
    pa: Any = importlib.import_module("pyarrow")
    paths, texts = [], []
    for document in documents:
        for chunk in document.chunks:
            paths.append(document.path)
            texts.append(f"{document.title}\n{chunk.heading}\n{chunk.text}")
    flat = pa.array(np.ascontiguousarray(vectors[: len(texts)]).ravel())
    return pa.table(
        {
            "id": pa.array(np.arange(len(texts), dtype=np.int64)),
            "path": pa.array(paths),
            "text": pa.array(texts),
            "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
        }
    )


def _time(calls: Sequence[Callable[[], object]]) -> Latency:
    for call in calls[:_WARMUP]:
        call()
    samples = []
    for call in calls:
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return Latency.of(samples)


def measure_lancedb(
    documents: Sequence[BenchDocument],
    vectors: F32,
    queries: Sequence[str],
    query_vectors: F32,
    *,
    k: int,
    folder: Path,
) -> PeerResult | None:
    version = lancedb_version()
    if version is None:
        return None
    os.environ.setdefault("LANCEDB_LOG", "error")  # its deprecation notices go to stderr
    import lancedb
    from lancedb.index import FTS, IvfHnswSq

    data = _arrow_table(documents, vectors)
    started = time.perf_counter()
    table = lancedb.connect(folder).create_table("chunks", data=data, mode="overwrite")
    table.create_index(
        "text",
        config=FTS(stem=True, remove_stop_words=True, ascii_folding=True, with_position=False),
    )
    index = "exact scan"
    if data.num_rows >= ANN_FROM_ROWS:
        table.create_index("vector", config=IvfHnswSq(distance_type="l2"))
        index = "IVF_HNSW_SQ"
    build_seconds = time.perf_counter() - started

    def fulltext(q: str) -> Callable[[], object]:
        return lambda: (
            table.search(q, query_type="fts").select([*_COLUMNS, "_score"]).limit(k).to_list()
        )

    def vector(v: F32) -> Callable[[], object]:
        return lambda: (
            table.search(v, query_type="vector").select([*_COLUMNS, "_distance"]).limit(k).to_list()
        )

    def hybrid(q: str, v: F32) -> Callable[[], object]:
        return lambda: (
            table.search(query_type="hybrid").vector(v).text(q).select(_COLUMNS).limit(k).to_list()
        )

    pairs = list(zip(queries, query_vectors, strict=True))
    operations = {
        "fulltext": _time([fulltext(q) for q in queries]),
        "vector": _time([vector(v) for v in query_vectors]),
        "hybrid": _time([hybrid(q, v) for q, v in pairs]),
    }
    return PeerResult(f"lancedb {version}", len(data), build_seconds, index, operations)
