"""The steps of one call fail together: a failed step's siblings end before its error."""

from __future__ import annotations

import asyncio

import pytest

from docfoundry_grpc import sibling_tasks
from docfoundry_grpc.errors import InvalidArgumentError


async def test_results_come_in_order() -> None:
    async def after(seconds: float, value: int) -> int:
        await asyncio.sleep(seconds)
        return value

    assert await sibling_tasks.gather(after(0.02, 1), after(0.0, 2)) == (1, 2)
    assert await sibling_tasks.gather_all(after(0.01 * (3 - i), i) for i in range(3)) == [0, 1, 2]


async def test_a_failure_ends_its_siblings_before_it_is_raised() -> None:
    ended: list[str] = []

    async def slow() -> int:
        try:
            await asyncio.sleep(30)
        finally:
            ended.append("slow")
        return 1

    async def refused() -> int:
        await asyncio.sleep(0)
        raise InvalidArgumentError("no vector")

    with pytest.raises(InvalidArgumentError, match="no vector"):
        await asyncio.wait_for(sibling_tasks.gather(slow(), refused()), timeout=5)
    assert ended == ["slow"]


async def test_a_cancelled_call_cancels_every_step() -> None:
    started = asyncio.Event()
    ended: list[int] = []

    async def step(i: int) -> int:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            ended.append(i)
        return i

    call = asyncio.create_task(sibling_tasks.gather_all(step(i) for i in range(3)))
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert sorted(ended) == [0, 1, 2]
