"""`docfoundry eval`: load a BEIR data set through IndexDocuments, run its judged queries
through Fulltext / Semantic / Hybrid, score the runs, and time everything."""

from __future__ import annotations

import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from docfoundry.v1 import search_pb2 as pb

from ..config import DatabaseConfig, Settings
from ..models import ContentType
from .beir import BeirDataset
from .scoring import score_run

MODES = ("fulltext", "semantic", "hybrid", "hybrid:rrf")
DOC_DEPTH = 100  # documents per query: enough for Recall@100
CHUNK_DEPTH = 300  # chunks asked for, so that DOC_DEPTH distinct documents remain


@dataclass(frozen=True)
class ModeResult:
    mode: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    p50_ms: float
    p95_ms: float
    top10: dict[str, list[str]] = field(default_factory=dict, repr=False)


@dataclass
class EvalReport:
    dataset: str
    backend: str
    queries: int
    documents: int
    chunks: int
    load_seconds: float
    modes: list[ModeResult] = field(default_factory=list)

    def table(self) -> str:
        head = (
            f"{self.dataset} on {self.backend}: {self.queries} queries, {self.documents} "
            f"documents ({self.chunks} chunks) loaded in {self.load_seconds:.1f} s"
        )
        rows = [f"{'mode':<10}{'nDCG@10':>9}{'R@100':>8}{'MRR@10':>8}{'p50 ms':>9}{'p95 ms':>9}"]
        rows += [
            f"{m.mode:<10}{m.ndcg_at_10:>9.4f}{m.recall_at_100:>8.4f}{m.mrr_at_10:>8.4f}"
            f"{m.p50_ms:>9.2f}{m.p95_ms:>9.2f}"
            for m in self.modes
        ]
        return "\n".join([head, *rows])

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def _requests(dataset: BeirDataset) -> Iterator[pb.Document]:
    """Each document as a client would send it: with the type its row declares, else
    unspecified, so the server infers the type from the path as it does for any client
    (Markdown keeps its headings, plain text stays plain)."""
    for doc in dataset.documents():
        yield pb.Document(
            path=doc.id,
            title=doc.title,
            content=doc.text,
            content_type=_content_type_to_pb(doc.content_type),
        )


def _content_type_to_pb(content_type: ContentType | None) -> pb.ContentType.ValueType:
    if content_type is None:
        return pb.CONTENT_TYPE_UNSPECIFIED
    return pb.ContentType.Value(f"CONTENT_TYPE_{content_type.name}")


async def load(client: object, dataset: BeirDataset) -> tuple[int, float]:
    """Indexes the corpus; returns (chunks, seconds). Unchanged documents cost nothing."""
    started = time.perf_counter()
    chunks = 0
    with tqdm(total=dataset.count_documents(), unit="doc", desc="indexing") as bar:
        async for outcome in client.index_documents(_requests(dataset)):  # type: ignore[attr-defined]
            chunks += outcome.chunk_count
            bar.update(1)
    return chunks, time.perf_counter() - started


async def run_mode(client: object, dataset: BeirDataset, mode: str) -> ModeResult:
    """`mode` is a search mode, or `hybrid:score` / `hybrid:rrf` to pick the fusion."""
    search_mode, _, fusion = mode.partition(":")
    run: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    for qid, text in tqdm(dataset.queries.items(), desc=mode, unit="q", leave=False):
        started = time.perf_counter()
        result = await client.search(  # type: ignore[attr-defined]
            text, search_mode, k=CHUNK_DEPTH, fusion=fusion or None
        )
        latencies.append((time.perf_counter() - started) * 1000)
        ranked = list(dict.fromkeys(hit.document_path for hit in result.hits))[:DOC_DEPTH]
        run[qid] = {doc: float(len(ranked) - rank) for rank, doc in enumerate(ranked)}
    scores = score_run(dataset.qrels, run)
    return ModeResult(
        mode=mode,
        ndcg_at_10=scores["ndcg@10"],
        recall_at_100=scores["recall@100"],
        mrr_at_10=scores["mrr@10"],
        top10={qid: list(ranked)[:10] for qid, ranked in run.items()},
        p50_ms=statistics.median(latencies),
        p95_ms=statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0],
    )


async def evaluate(target: str, dataset: BeirDataset, modes: Sequence[str]) -> EvalReport:
    from docfoundry_client import DocFoundryClient

    async with DocFoundryClient(target, timeout=120) as client:
        backend = (await client.health()).database_type
        _, load_seconds = await load(client, dataset)
        health = await client.health()
        report = EvalReport(
            dataset.name,
            backend,
            len(dataset.queries),
            health.document_count,
            health.chunk_count,
            load_seconds,
        )
        for mode in modes:
            report.modes.append(await run_mode(client, dataset, mode))
    return report


def postgres_database(url: str, env: Settings, *, throwaway: bool) -> DatabaseConfig:
    """The environment's POSTGRES_* settings (index type, ef_search, pool…) on the database
    at `url`: they are what an evaluation of PostgreSQL measures, so only the URL changes.
    A throwaway database has no replicas: POSTGRES_READ_URLS, copies of another database,
    would answer its searches with that database's documents."""
    postgres = replace(env.database.postgres, url=url)
    if throwaway:
        postgres = replace(postgres, read_urls=())
    return DatabaseConfig(type="postgresql", postgres=postgres)


@contextlib.asynccontextmanager
async def local_server(
    backend: str, dsn: str | None, *, cache_path: Path | None
) -> AsyncIterator[str]:
    """An in-process server on a fresh database of `backend`, or on the PostgreSQL at
    `dsn`, configured otherwise by the environment; yields its address.

    Embeddings are cached on disk, so evaluating the second backend, or again after a
    ranking change, does not pay for the model a second time."""
    from ..devdb import LocalPostgres
    from ..embedding.factory import build_embedder
    from ..service.app import build_app

    env = Settings.from_env()
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="df-eval-")))
            database = DatabaseConfig(type="sqlite", sqlite_path=folder / "eval.db")
        elif dsn is None:
            database = postgres_database(
                stack.enter_context(LocalPostgres()).dsn, env, throwaway=True
            )
        else:
            database = postgres_database(dsn, env, throwaway=False)
        settings = replace(env, database=database, grpc_port=0, metrics_port=0)
        embedder = build_embedder(
            cache_path=cache_path,
            threads=settings.embedding_threads,
            precision=settings.embedding_precision,
        )
        app = build_app(settings, embedder=embedder)
        await app.start()
        try:
            yield app.address
        finally:
            await app.stop(grace=1)
