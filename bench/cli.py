"""`python -m bench`: parse options, run, print where the report is."""

from __future__ import annotations

from collections.abc import Sequence

from .options import parse_options
from .runner import main_run


def main(argv: Sequence[str] | None = None) -> int:
    return main_run(parse_options(argv))
