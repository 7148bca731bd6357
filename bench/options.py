"""Command-line options of `python -m bench`, with the full and the smoke presets.

Every option left unset takes its value from the preset (`--smoke` or the full run), so a
preset can still be adjusted one option at a time, e.g. `--smoke --backends sqlite,postgresql`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = (PROJECT_ROOT / ".." / "shared" / "datasets" / "scifact").resolve()
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "docfoundry"
BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class BenchOptions:
    sizes: tuple[int, ...] = (10_000,)
    backends: tuple[str, ...] = BACKENDS
    concurrency: tuple[int, ...] = (1, 4, 16, 64)
    requests: int = 500
    seconds: float = 20.0
    warmup: int = 2
    k: int = 10
    output: Path = PROJECT_ROOT / "bench" / "results"
    source: Path = DEFAULT_SOURCE
    seed: int = 1
    embed_pool: int = 20_000
    embed_sample: int = 500
    floor_queries: int = 300
    chunks_per_document: int = 8
    cache_dir: Path = DEFAULT_CACHE_DIR
    dsn: str | None = None
    client_processes: int = 2
    peer: bool = True
    smoke: bool = False
    index_after_load_from: int = 500_000

    @property
    def corpus_path(self) -> Path:
        return self.source / "corpus.jsonl"

    @property
    def queries_path(self) -> Path:
        return self.source / "queries.jsonl"

    @property
    def cache_path(self) -> Path:
        return self.cache_dir / "bench-embeddings.sqlite"


FULL = BenchOptions()
# A few seconds end to end: vectors derived from a handful of real embeddings, so the
# model runs only for those, the embedding sample and the query-embedding timing.
SMOKE = replace(
    FULL,
    sizes=(2000,),
    backends=("sqlite",),
    concurrency=(1, 4),
    requests=50,
    seconds=10.0,
    warmup=1,
    embed_pool=8,
    embed_sample=8,
    floor_queries=20,
    smoke=True,
)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _backends(text: str) -> tuple[str, ...]:
    values = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [v for v in values if v not in BACKENDS]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"backends are {', '.join(BACKENDS)}, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark DocFoundry: ingest, search latency and throughput through "
        "gRPC against in-process floors and LanceDB. Defaults are the full run; "
        "--smoke is a few-second end-to-end check.",
    )
    add = parser.add_argument
    add("--smoke", action="store_true", help="tiny preset (2000 chunks, sqlite, 1 and 4 callers)")
    add("--sizes", type=_ints, help=f"corpus sizes in chunks (default {FULL.sizes[0]})")
    add("--backends", type=_backends, help="sqlite,postgresql (default both)")
    add("--concurrency", type=_ints, help="closed-loop callers per level (default 1,4,16,64)")
    add("--requests", type=int, help=f"timed requests per level (default {FULL.requests})")
    add("--seconds", type=float, help=f"time cap per level (default {FULL.seconds:g})")
    add("--warmup", type=int, help=f"untimed requests per caller (default {FULL.warmup})")
    add("-k", type=int, dest="k", help=f"hits per search (default {FULL.k})")
    add("--output", type=Path, help="results folder; a timestamped run folder goes inside")
    add(
        "--source",
        type=Path,
        help=f"BEIR folder with corpus.jsonl, queries.jsonl (default {DEFAULT_SOURCE})",
    )
    add("--seed", type=int, help=f"corpus and vector seed (default {FULL.seed})")
    add(
        "--embed-pool",
        type=int,
        help=f"texts embedded by the model; vectors of the other "
        f"chunks are derived from them (default {FULL.embed_pool})",
    )
    add(
        "--embed-sample",
        type=int,
        help=f"chunks for the server-side embedding measurement (default {FULL.embed_sample})",
    )
    add(
        "--floor-queries",
        type=int,
        help=f"queries for the in-process storage floor (default {FULL.floor_queries})",
    )
    add("--chunks-per-document", type=int, help="chunks per indexed document (default 8)")
    add("--cache-dir", type=Path, help=f"embedding cache folder (default {DEFAULT_CACHE_DIR})")
    add(
        "--dsn",
        help="PostgreSQL (with pgvector) where the run may create and drop "
        "databases; default: a throwaway local cluster",
    )
    add(
        "--client-processes",
        type=int,
        help=f"client processes sharing the callers of a level (default {FULL.client_processes})",
    )
    add(
        "--index-after-load-from",
        type=int,
        help="PostgreSQL corpora of at least this many chunks load without a vector index, "
        "which the server then builds over the stored rows, as a bulk load should "
        f"(default {FULL.index_after_load_from:,})",
    )
    add(
        "--no-peer",
        action="store_false",
        dest="peer",
        default=None,
        help="skip the LanceDB comparison",
    )
    return parser


def parse_options(argv: Sequence[str] | None = None) -> BenchOptions:
    args = build_parser().parse_args(argv)
    preset = SMOKE if args.smoke else FULL
    given = {
        name: value for name, value in vars(args).items() if value is not None and name != "smoke"
    }
    if "source" in given and given["source"].suffix == ".jsonl":
        given["source"] = given["source"].parent
    options = replace(preset, **given)
    for name in (
        "requests",
        "embed_sample",
        "floor_queries",
        "chunks_per_document",
        "client_processes",
        "k",
    ):
        if getattr(options, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    if options.embed_pool < 2 or options.warmup < 0 or options.seconds <= 0:
        raise SystemExit("--embed-pool must be at least 2, --warmup >= 0, --seconds > 0")
    return options
