"""Steps of one call run side by side, which fail together.

`asyncio.gather` raises the first failure and leaves the other steps running, orphaned
from the call: a Hybrid whose semantic leg is refused would go on ranking its full-text
leg after the caller has its error, holding a pooled connection, and the leg's spans would
end after the call's own (or after the server stopped, where they are lost). `gather`
here cancels the siblings of a failed step and waits for them before raising. The
standard library's TaskGroup does the same but wraps the failure in an ExceptionGroup,
which would hide the step's own error from the servicer's status mapping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar, overload

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


@overload
async def gather(first: Awaitable[A], second: Awaitable[B], /) -> tuple[A, B]: ...


@overload
async def gather(
    first: Awaitable[A], second: Awaitable[B], third: Awaitable[C], /
) -> tuple[A, B, C]: ...


async def gather(*steps: Awaitable[object]) -> tuple[object, ...]:
    """The steps' results in order, or the first failure once every sibling has ended."""
    return tuple(await gather_all(steps))


async def gather_all(steps: Iterable[Awaitable[A]]) -> list[A]:
    """`gather` over any number of steps of one kind."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
