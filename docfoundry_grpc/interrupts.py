"""SIGTERM as Ctrl-C for the long one-shot commands (`docfoundry eval`, `python -m bench`).

Their servers and throwaway PostgreSQL clusters are stopped by `finally` blocks and context
managers, which run when Ctrl-C (KeyboardInterrupt) unwinds the program; Python's default
for SIGTERM ends the process without unwinding, leaving them running. (`docfoundry serve`
handles SIGTERM itself, gracefully.)
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import NoReturn


def stop_on_sigterm() -> None:
    """From now on, SIGTERM unwinds this process as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def exit_interrupted() -> NoReturn:
    """Ends a process that Ctrl-C or SIGTERM interrupted, once the unwinding has stopped its
    servers and clusters: at once, with 130, without the interpreter's shutdown. That
    shutdown joins thread pools after the work still queued on them (the model's embedding
    pool can hold a minute of it) and tears objects down under native threads still running
    (ONNX Runtime's): a stopped `docfoundry eval` hung or died of SIGSEGV about one time in
    ten."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)
