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
    """From now on, SIGTERM unwinds this process as Ctrl-C does: it raises SIGINT, so
    whatever handles Ctrl-C at that moment handles it. Inside `asyncio.run` that is
    asyncio's own handler, which cancels the main task at its await and has `asyncio.run`
    raise KeyboardInterrupt once the task has unwound; elsewhere it is Python's, which
    raises KeyboardInterrupt. A SIGTERM handler raising KeyboardInterrupt itself lands at
    whatever bytecode is running, and inside the event loop a library's callback may
    swallow it: a stopped `docfoundry eval` then went on loading (seen about one stop in
    thirty on a busy machine)."""
    signal.signal(signal.SIGTERM, _as_ctrl_c)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGINT)


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
