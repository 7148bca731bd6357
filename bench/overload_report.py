"""What one scenario of `python -m bench.overload` measured, judged against the targets the
project's overload work is held to, printed and written as JSON.

The targets are the clients' view of overload: under a deadline, a call is only worth
something if it is answered in time (goodput), and a call the server cannot serve in time
should be refused at once (RESOURCE_EXHAUSTED within 50 ms), so the caller can go
elsewhere; without deadlines, the calls a server takes on must still come back quickly,
and its memory must not grow with the queue.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .overload_callers import DEADLINE_EXCEEDED, REFUSED, UNFINISHED, Call
from .results import Latency

REFUSAL_TARGET_SECONDS = 0.05
GOODPUT_TARGET_SHARE = 0.8
ADMITTED_P99_TARGET_SECONDS = 1.0
_NAMED = ("OK", REFUSED, DEADLINE_EXCEEDED, UNFINISHED)  # what other_errors leaves out


@dataclass(frozen=True)
class Capacity:
    """One caller sending back to back: what the server does for a caller it serves alone."""

    rpc: str
    seconds: float
    calls: int
    ok: int
    requests_per_second: float
    latency: Latency


def capacity_of(rpc: str, calls: Sequence[Call], *, seconds: float) -> Capacity:
    ok = [c for c in calls if c.code == "OK" and c.started + c.seconds <= seconds]
    return Capacity(
        rpc, seconds, len(calls), len(ok), len(ok) / seconds, _latency(c.seconds for c in ok)
    )


@dataclass(frozen=True)
class Memory:
    """The server's resident memory (VmRSS) sampled through a scenario, in MB."""

    start_mb: float
    peak_mb: float
    samples: int

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.start_mb


@dataclass(frozen=True)
class Check:
    """One target: its value as printed, and PASS (True), MISS (False) or nothing to
    judge (None, e.g. a refusal target when nothing was refused)."""

    target: str
    value: str
    passed: bool | None


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    callers: int
    deadline_seconds: float | None
    seconds: float
    calls_sent: int
    ok: int
    ok_within_deadline: int
    goodput_rps: float  # OK within the deadline and finished inside the window, per second
    goodput_percent_of_capacity: float
    status_counts: dict[str, int]
    refused: int  # RESOURCE_EXHAUSTED
    deadline_exceeded: int
    other_errors: int
    unfinished: int  # cancelled by the bench after the drain
    refused_within_50ms: int
    neither: int  # neither OK within the deadline nor refused within 50 ms
    admitted_latency: Latency  # OK calls, ms
    time_to_refusal: Latency  # RESOURCE_EXHAUSTED calls, ms
    refusals_with_retry_info: int
    retry_delay_p50_ms: float | None
    server_rss: Memory
    server_rss_growth_mb: float
    server_cpu_share: float  # server CPU seconds per wall second (2.0 = both cores)
    checks: list[Check] = field(default_factory=list)


def summarize(
    name: str,
    calls: Sequence[Call],
    *,
    callers: int,
    deadline: float | None,
    seconds: float,
    capacity_rps: float,
    memory: Memory,
    server_cpu_share: float,
) -> ScenarioResult:
    """The scenario's figures from its calls; `seconds` is the window callers sent in."""
    codes = Counter(c.code for c in calls)
    in_time = [c for c in calls if c.code == "OK" and (deadline is None or c.seconds <= deadline)]
    goodput = sum(c.started + c.seconds <= seconds for c in in_time) / seconds
    refusals = [c for c in calls if c.code == REFUSED]
    on_time = sum(c.seconds <= REFUSAL_TARGET_SECONDS for c in refusals)
    delays = [c.retry_delay * 1000 for c in refusals if c.retry_delay is not None]
    return ScenarioResult(
        name=name,
        callers=callers,
        deadline_seconds=deadline,
        seconds=seconds,
        calls_sent=len(calls),
        ok=codes["OK"],
        ok_within_deadline=len(in_time),
        goodput_rps=goodput,
        goodput_percent_of_capacity=100 * goodput / capacity_rps if capacity_rps else math.nan,
        status_counts=dict(codes.most_common()),
        refused=codes[REFUSED],
        deadline_exceeded=codes[DEADLINE_EXCEEDED],
        other_errors=sum(n for code, n in codes.items() if code not in _NAMED),
        unfinished=codes[UNFINISHED],
        refused_within_50ms=on_time,
        neither=len(calls) - len(in_time) - on_time,
        admitted_latency=_latency(c.seconds for c in calls if c.code == "OK"),
        time_to_refusal=_latency(c.seconds for c in refusals),
        refusals_with_retry_info=len(delays),
        retry_delay_p50_ms=Latency.of(delays).p50_ms if delays else None,
        server_rss=memory,
        server_rss_growth_mb=memory.growth_mb,
        server_cpu_share=server_cpu_share,
    )


def _latency(seconds: Any) -> Latency:
    return Latency.of([s * 1000 for s in seconds])


def deadline_checks(result: ScenarioResult) -> ScenarioResult:
    """Target (a): goodput near what one caller gets alone, and no call left hanging."""
    share = result.goodput_percent_of_capacity
    return replace(
        result,
        checks=[
            Check(
                f"goodput >= {GOODPUT_TARGET_SHARE:.0%} of single-caller capacity",
                f"{share:.0f}% ({result.goodput_rps:.1f}/s)",
                share >= 100 * GOODPUT_TARGET_SHARE,
            ),
            Check(
                "every call OK within its deadline or RESOURCE_EXHAUSTED within 50 ms",
                f"{result.neither} of {result.calls_sent} calls were neither",
                result.neither == 0,
            ),
            _refusal_check(result),
        ],
    )


def unbounded_checks(result: ScenarioResult, *, max_rss_growth_mb: float) -> ScenarioResult:
    """Target (b): the calls a server takes on come back within a second, the others are
    not left waiting forever, and its memory does not grow with the callers."""
    p99 = result.admitted_latency.p99_ms
    return replace(
        result,
        checks=[
            Check(
                f"p99 of admitted (OK) calls <= {ADMITTED_P99_TARGET_SECONDS:g} s",
                _ms(p99),
                p99 <= ADMITTED_P99_TARGET_SECONDS * 1000,  # NaN (nothing admitted): MISS
            ),
            Check(
                "no call still unanswered when the bench gave up on it",
                f"{result.unfinished} unanswered",
                result.unfinished == 0,
            ),
            Check(
                f"server memory bounded: peak RSS growth <= {max_rss_growth_mb:g} MB",
                f"{result.server_rss_growth_mb:+.0f} MB (peak {result.server_rss.peak_mb:.0f} MB)",
                result.server_rss_growth_mb <= max_rss_growth_mb,
            ),
            _refusal_check(result),
        ],
    )


def _refusal_check(result: ScenarioResult) -> Check:
    p99 = result.time_to_refusal.p99_ms
    if not result.refused:
        return Check("p99 time to refusal <= 50 ms", "no refusals", None)
    return Check("p99 time to refusal <= 50 ms", _ms(p99), p99 <= REFUSAL_TARGET_SECONDS * 1000)


def _ms(value: float) -> str:
    if math.isnan(value):
        return "none"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def format_capacity(capacity: Capacity) -> str:
    return (
        f"single-caller capacity, {capacity.rpc}: {capacity.requests_per_second:.1f} req/s "
        f"({capacity.ok} OK of {capacity.calls} in {capacity.seconds:g} s, "
        f"p50 {_ms(capacity.latency.p50_ms)}, p99 {_ms(capacity.latency.p99_ms)})"
    )


def format_scenario(result: ScenarioResult) -> str:
    deadline = (
        f"deadline {result.deadline_seconds:g} s" if result.deadline_seconds else "no deadline"
    )
    statuses = ", ".join(f"{code} {n}" for code, n in result.status_counts.items()) or "none"
    retry = f"RetryInfo on {result.refusals_with_retry_info} of {result.refused} refusals" + (
        f" (delay p50 {result.retry_delay_p50_ms:.0f} ms)" if result.retry_delay_p50_ms else ""
    )
    memory = result.server_rss
    lines = [
        f"scenario {result.name}: {result.callers} callers, {deadline}, {result.seconds:g} s",
        f"  calls sent {result.calls_sent}, OK {result.ok} "
        f"({result.ok_within_deadline} within deadline), goodput {result.goodput_rps:.1f}/s "
        f"= {result.goodput_percent_of_capacity:.0f}% of single-caller capacity",
        f"  status: {statuses}",
        f"  admitted (OK) latency p50 {_ms(result.admitted_latency.p50_ms)}, "
        f"p99 {_ms(result.admitted_latency.p99_ms)}; time to refusal p99 "
        f"{_ms(result.time_to_refusal.p99_ms)}; {retry}",
        f"  server RSS {memory.start_mb:.0f} MB at start, peak {memory.peak_mb:.0f} MB "
        f"({result.server_rss_growth_mb:+.0f} MB); server CPU {result.server_cpu_share:.2f} "
        "cores",
    ]
    for check in result.checks:
        verdict = {True: "PASS", False: "MISS", None: "n/a "}[check.passed]
        lines.append(f"  [{verdict}] {check.target}: {check.value}")
    return "\n".join(lines)


def to_json(report: dict[str, Any]) -> str:
    """Strict JSON: a figure with no samples (NaN) becomes null."""
    return json.dumps(_finite(report), indent=2)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return _finite(asdict(value))
    return value
