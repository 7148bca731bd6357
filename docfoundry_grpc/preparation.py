"""Text preparation of large documents in a worker process.

Chunking a document and analysing its chunks is pure Python (markdown-it, html.parser,
Snowball): a 2 MB Markdown document takes about a second of CPU. On the event loop that
second delays every other call; in a thread it would still hold the GIL. So documents past
PROCESS_THRESHOLD_CHARS are prepared in one worker process, and smaller ones, which take
about a millisecond, stay on the loop, where a process hop would cost more than it saves.
This module imports only the text modules, so the worker starts without the model.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from .chunking import chunk_content
from .models import ContentType
from .text import chunk_tokens

PROCESS_THRESHOLD_CHARS = 64 * 1024  # characters of content and chunk text

# (heading, anchor, text, index terms) of one chunk.
PreparedText = tuple[str, str, str, tuple[str, ...]]
GivenSection = tuple[str, str, str]  # (heading, anchor, text) a caller sent as a chunk

_pool: ProcessPoolExecutor | None = None


def prepare_text(
    title: str,
    content: str,
    content_type: ContentType,
    max_chars: int,
    given: Sequence[GivenSection] = (),
) -> list[PreparedText]:
    """The chunks of `content` (or the `given` ones) with their index terms."""
    sections: Sequence[GivenSection] = given or [
        (s.heading, s.anchor, s.text)
        for s in chunk_content(content, content_type, max_chars=max_chars)
    ]
    return [(h, a, t, chunk_tokens(title, h, t)) for h, a, t in sections]


async def prepare_text_off_loop(
    title: str,
    content: str,
    content_type: ContentType,
    max_chars: int,
    given: Sequence[GivenSection] = (),
) -> list[PreparedText]:
    """`prepare_text`, in the worker process when the text is large."""
    size = len(content) + sum(len(text) for _, _, text in given)
    if size < PROCESS_THRESHOLD_CHARS:
        return prepare_text(title, content, content_type, max_chars, given)
    loop = asyncio.get_running_loop()
    job = (title, content, content_type, max_chars, list(given))
    return await loop.run_in_executor(_worker(), prepare_text, *job)


def _worker() -> ProcessPoolExecutor:
    """One process for the whole server, started at the first large document: spawned,
    not forked, so it holds neither the model nor the parent's threads."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        atexit.register(_pool.shutdown, wait=False, cancel_futures=True)
    return _pool
