"""Large documents are chunked and analysed in a worker process, with the same result as
on the event loop; small ones stay on the loop."""

from __future__ import annotations

import os

from docfoundry_grpc import preparation
from docfoundry_grpc.models import ContentType
from docfoundry_grpc.preparation import PROCESS_THRESHOLD_CHARS, prepare_text, prepare_text_off_loop


def markdown(size: int) -> str:
    sections: list[str] = []
    length = 0
    while length < size:
        sections.append(
            f"## Part {len(sections)}\n\nCats purr and dogs bark, {len(sections)} times.\n"
        )
        length += len(sections[-1])
    return "\n".join(sections)


async def test_a_large_document_is_prepared_in_the_worker_process() -> None:
    content = markdown(PROCESS_THRESHOLD_CHARS * 2)
    inline = prepare_text("Title", content, ContentType.MARKDOWN, 1200)
    off_loop = await prepare_text_off_loop("Title", content, ContentType.MARKDOWN, 1200)
    assert off_loop == inline and len(inline) > 10
    pool = preparation._pool
    assert pool is not None
    workers = list(pool._processes)  # the worker that did it is another process
    assert workers and os.getpid() not in workers


async def test_given_chunks_are_analysed_not_rechunked() -> None:
    given = [("Head", "head", "word " * 20_000), ("Other", "other", "cats purr")]
    prepared = await prepare_text_off_loop("T", "", ContentType.PLAIN_TEXT, 1200, given)
    assert [(h, a, t) for h, a, t, _ in prepared] == given
    assert prepared[1][3] == ("t", "other", "cat", "purr")  # title, heading and text
