"""PNG plots of a run: latency and throughput against concurrency, latency against corpus
size. matplotlib is optional; without it the report simply has no plots."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .results import BackendRun, RunResults

RPC_COLOURS = {"Fulltext": "tab:blue", "Semantic": "tab:orange", "Hybrid": "tab:green"}


def plots_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_plots(results: RunResults, folder: Path) -> list[str]:
    """Writes the plots into `folder`; returns their file names (none without matplotlib)."""
    if not plots_available() or not results.runs:
        return []
    import matplotlib

    matplotlib.use("Agg")
    return [
        _by_concurrency(results.runs, folder / "latency_vs_concurrency.png", throughput=False),
        _by_concurrency(results.runs, folder / "throughput_vs_concurrency.png", throughput=True),
        _by_size(results.runs, folder / "latency_vs_size.png"),
    ]


def _by_concurrency(runs: list[BackendRun], path: Path, *, throughput: bool) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    figure, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4), squeeze=False)
    for axis, run in zip(axes[0], runs, strict=True):
        for rpc, colour in RPC_COLOURS.items():
            levels = sorted(
                (lv for lv in run.levels if lv.rpc == rpc), key=lambda lv: lv.concurrency
            )
            xs = [lv.concurrency for lv in levels]
            if throughput:
                axis.plot(xs, [lv.throughput_rps for lv in levels], "o-", color=colour, label=rpc)
            else:
                axis.plot(
                    xs, [lv.latency.p50_ms for lv in levels], "o-", color=colour, label=f"{rpc} p50"
                )
                axis.plot(
                    xs,
                    [lv.latency.p99_ms for lv in levels],
                    "x--",
                    color=colour,
                    label=f"{rpc} p99",
                )
        axis.set_xscale("log", base=2)
        axis.set_xticks(sorted({lv.concurrency for lv in run.levels}))
        axis.get_xaxis().set_major_formatter(ScalarFormatter())
        if not throughput:
            axis.set_yscale("log")
        axis.set_title(f"{run.backend}, {run.size:,} chunks")
        axis.set_xlabel("concurrent callers")
        axis.set_ylabel("requests/s" if throughput else "latency (ms)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name


def _by_size(runs: list[BackendRun], path: Path) -> str:
    import matplotlib.pyplot as plt

    backends = list(dict.fromkeys(run.backend for run in runs))
    figure, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4), squeeze=False)
    floor_of = {"Fulltext": "fulltext", "Semantic": "vector", "Hybrid": "hybrid"}
    for axis, backend in zip(axes[0], backends, strict=True):
        mine = sorted((r for r in runs if r.backend == backend), key=lambda r: r.size)
        sizes = [r.size for r in mine]
        for rpc, colour in RPC_COLOURS.items():
            rpc_p50 = [
                next(
                    (lv.latency.p50_ms for lv in r.levels if lv.rpc == rpc and lv.concurrency == 1),
                    float("nan"),
                )
                for r in mine
            ]
            floor_p50 = [
                next(
                    (f.latency.p50_ms for f in r.floor if f.operation == floor_of[rpc]),
                    float("nan"),
                )
                for r in mine
            ]
            axis.plot(sizes, rpc_p50, "o-", color=colour, label=f"{rpc} RPC p50")
            axis.plot(sizes, floor_p50, "s:", color=colour, label=f"{rpc} storage p50")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(f"{backend}, 1 caller")
        axis.set_xlabel("corpus size (chunks)")
        axis.set_ylabel("latency (ms)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name
