"""Cancelled tasks end for sure (rooms/tasks.py): on Python 3.11 ``asyncio.wait_for``, which
redis-py uses for every write to its socket, swallows a cancellation that arrives as the write
completes, and a role's task cancelled then ran on: its role never released what it held (a
host's following of the show, a viewer's seat)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
import structlog

from rooms.tasks import cancel_and_wait
from signaling.connection import Connection, Role


class Swallowing:
    """A task looping over ``asyncio.wait_for`` as a presence refresh loops over the bus; while
    :meth:`arm` is in force, the next cancellation lands just as the awaited call completes."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.rounds = 0

    async def run(self) -> None:
        while True:
            self.done.clear()
            await asyncio.wait_for(self.done.wait(), 10)
            self.rounds += 1

    def arm(self) -> None:
        """The awaited call completes now: a cancellation in this same turn of the loop is lost."""
        self.done.set()


async def started(coro: Any) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(coro)
    await asyncio.sleep(0.01)  # into its first wait
    return task


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="asyncio.wait_for keeps cancellations")
async def test_the_premise_wait_for_swallows_a_cancellation_on_3_11() -> None:
    looping = Swallowing()
    task = await started(looping.run())
    looping.arm()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.3)
    assert not done and looping.rounds >= 1, "the cancellation was kept: the premise is gone"
    task.cancel()
    await asyncio.wait([task], timeout=1)
    assert task.cancelled()


async def test_a_swallowed_cancellation_is_repeated_until_the_task_ends() -> None:
    looping = Swallowing()
    task = await started(looping.run())
    looping.arm()
    assert await asyncio.wait_for(cancel_and_wait(task), 3)
    assert task.cancelled()


async def test_tasks_that_end_at_once_are_not_waited_for_longer() -> None:
    tasks = [await started(asyncio.sleep(60)) for _ in range(3)]
    loop = asyncio.get_running_loop()
    begun = loop.time()
    assert await cancel_and_wait(*tasks, again_every=5)
    assert loop.time() - begun < 1
    assert all(task.cancelled() for task in tasks)


async def test_a_cancelled_task_keeps_time_for_its_own_cleanup() -> None:
    cleaned = asyncio.Event()

    async def tidy() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.2)  # e.g. releasing what it held
            cleaned.set()

    task = await started(tidy())
    assert await cancel_and_wait(task)
    assert cleaned.is_set()


async def test_a_task_that_will_not_end_is_given_up_and_said() -> None:
    stop = asyncio.Event()

    async def stubborn() -> None:
        while not stop.is_set():
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                pass

    task = await started(stubborn())
    try:
        with structlog.testing.capture_logs() as logs:
            assert not await cancel_and_wait(task, within=0.3, again_every=0.05)
        assert [e["event"] for e in logs] == ["task.cancel_ignored"]
    finally:
        stop.set()
        task.cancel()
        await asyncio.wait([task], timeout=1)


async def test_failed_tasks_are_ended_quietly() -> None:
    async def failing() -> None:
        raise RuntimeError("the role logs its own tasks' failures")

    task = await started(failing())
    assert await cancel_and_wait(task)
    assert isinstance(task.exception(), RuntimeError)


def connection() -> Connection:
    return Connection(None, "127.0.0.1")  # type: ignore[arg-type]  # no socket needed here


async def test_a_role_whose_task_swallowed_its_cancellation_still_releases() -> None:
    """A host's audience report looping over the bus when the host's socket closed."""
    conn = connection()
    role = await conn.take(Role(conn))
    released = asyncio.Event()

    async def release() -> None:
        released.set()

    await role.hold("events", release)
    looping = Swallowing()
    task = role.spawn(looping.run(), "audience")
    await asyncio.sleep(0.01)
    looping.arm()
    await asyncio.wait_for(conn.release_all(), 3)
    assert released.is_set() and task.cancelled()


async def test_a_media_command_that_swallowed_its_cancellation_still_ends() -> None:
    conn = connection()
    looping = Swallowing()
    assert conn.in_lane("media", looping.run)
    await asyncio.sleep(0.01)
    looping.arm()
    await asyncio.wait_for(conn.release_all(), 3)
    assert looping.rounds >= 1
