"""SIGTERM as Ctrl-C for the long one-shot commands (`docfoundry eval`, `python -m bench`).

Their servers and throwaway PostgreSQL clusters are stopped by `finally` blocks and context
managers, which run when Ctrl-C (KeyboardInterrupt) unwinds the program; Python's default
for SIGTERM ends the process without unwinding, leaving them running. (`docfoundry serve`
handles SIGTERM itself, gracefully.)
"""

from __future__ import annotations

import signal
from types import FrameType


def stop_on_sigterm() -> None:
    """From now on, SIGTERM unwinds this process as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
