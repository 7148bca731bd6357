"""`python -m bench.profile FILE`: where a server's CPU went, from a py-spy profile.

Record the server while the bench drives it (py-spy ships on PyPI; it needs ptrace rights,
which root has):

    py-spy record -p SERVER_PID --nonblocking --threads -r 200 -f raw -o server.txt -d 240
    python -m bench.profile server.txt > profile.md

The summary gives each thread's share of the samples, then the functions with the largest
inclusive share (the function and everything it called) and self share (the function
alone) on the busiest thread, which for `docfoundry serve` is the event loop.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_THREAD = re.compile(r"^thread \(\d+\): (?P<name>.+)$")
_LOCATION = re.compile(r" \([^()]*:\d+\)$")
ENTRY_SHARE = 0.8
_ENTRY_DEPTH = 16


@dataclass(frozen=True)
class Profile:
    threads: Counter[str]
    inclusive: dict[str, Counter[str]]
    own: dict[str, Counter[str]]
    outer: dict[str, list[Counter[str]]]  # per thread, the functions at each stack depth


def _function(frame: str) -> str:
    """'top_chunks (docfoundry_grpc/bm25.py:92)' -> 'top_chunks (docfoundry_grpc/bm25.py)'."""
    location = _LOCATION.search(frame)
    if location is None:
        return frame
    path = location.group()[2:-1].rsplit(":", 1)[0]
    return f"{frame[: location.start()]} ({_short(path)})"


def _short(path: str) -> str:
    """The path from the package folder on, so site-packages prefixes do not crowd it."""
    if not path.startswith("/"):
        return path
    parts = path.split("/")
    for i, part in enumerate(parts):
        if part in ("site-packages", "lib") and i + 1 < len(parts):
            tail = parts[i + 1 :]
            if not tail[0].startswith("python"):
                return "/".join(tail)
    return "/".join(parts[-2:])


def read_profile(lines: Iterable[str]) -> Profile:
    """Reads py-spy's raw (collapsed stack) output: 'frame;frame;... count' per line."""
    threads: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    own: dict[str, Counter[str]] = {}
    outer: dict[str, list[Counter[str]]] = {}
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = _THREAD.match(frames[0])
        name = thread.group("name") if thread else "all"
        calls = [_function(f) for f in (frames[1:] if thread else frames)]
        samples = int(count)
        threads[name] += samples
        inclusive.setdefault(name, Counter()).update(dict.fromkeys(calls, samples))
        if calls:
            own.setdefault(name, Counter())[calls[-1]] += samples
        depths = outer.setdefault(name, [Counter() for _ in range(_ENTRY_DEPTH)])
        for depth, call in enumerate(calls[:_ENTRY_DEPTH]):
            depths[depth][call] += samples
    return Profile(threads, inclusive, own, outer)


def entry_frames(profile: Profile, thread: str) -> set[str]:
    """The thread's outermost frames (runner, event loop) that most samples pass through:
    they would top every inclusive table and say nothing."""
    entry: set[str] = set()
    for depth in profile.outer.get(thread, []):
        if not depth:
            break
        call, samples = depth.most_common(1)[0]
        if samples < ENTRY_SHARE * profile.threads[thread]:
            break
        entry.add(call)
    return entry


def summary(profile: Profile, *, top: int = 25) -> str:
    total = sum(profile.threads.values())
    if total == 0:
        return "No samples.\n"
    lines = [f"{total:,} samples (CPU only: idle threads are not sampled).", ""]
    lines += ["| thread | samples | share |", "|---|---|---|"]
    for name, samples in profile.threads.most_common():
        lines.append(f"| {name} | {samples:,} | {samples / total:.1%} |")
    busiest, busiest_samples = profile.threads.most_common(1)[0]
    entry = entry_frames(profile, busiest)
    inclusive = [item for item in profile.inclusive[busiest].most_common() if item[0] not in entry]
    for title, table in (
        ("inclusive", inclusive[:top]),
        ("self", profile.own[busiest].most_common(top)),
    ):
        lines += ["", f"{busiest}, top {top} by {title} share of the thread:", ""]
        lines += ["| function | samples | share |", "|---|---|---|"]
        for function, samples in table:
            lines.append(f"| `{function}` | {samples:,} | {samples / busiest_samples:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("file", type=Path, help="py-spy record -f raw output")
    parser.add_argument("--top", type=int, default=25, help="functions per table")
    args = parser.parse_args(argv)
    with args.file.open() as lines:
        sys.stdout.write(summary(read_profile(lines), top=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
