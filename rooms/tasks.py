"""Ending tasks for sure: cancelled, and cancelled again for as long as they go on.

On Python 3.11 ``asyncio.wait_for`` swallows a cancellation that arrives just as the operation it
waits for completes (it returns the result instead; fixed in 3.12). redis-py waits for every write
to its socket that way, our in-process bus for each message, so a task cancelled at that moment
carries on: a loop (a seat's presence, the performer's audience report) runs on for good, and
whoever awaits its end to release what it held (a viewer's seat, a host's role, the bus at
shutdown) waits for ever. :func:`cancel_and_wait` repeats the cancellation until the task ends,
within a bounded time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

log = structlog.get_logger(__name__)

WITHIN = 5.0  # seconds a task gets to end once cancelled
AGAIN_EVERY = 0.5  # seconds between cancellations: time for a cancelled task's own cleanup


async def cancel_and_wait(
    *tasks: asyncio.Task[Any], within: float = WITHIN, again_every: float = AGAIN_EVERY
) -> bool:
    """Cancel ``tasks`` and wait until each has ended, cancelling again those that go on; True
    once all ended, False (logged) if some still run after ``within`` seconds. Their results
    and errors are left unread, as ``gather(..., return_exceptions=True)`` leaves them. The
    caller's own cancellation stops the wait, not the cancelling already done."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    running = {task for task in tasks if not task.done()}
    while running:
        for task in running:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            names = sorted(task.get_name() for task in running)
            log.warning("task.cancel_ignored", tasks=names, seconds=within)
            return False
        _, pending = await asyncio.wait(running, timeout=min(again_every, left))
        running = pending
    for task in tasks:
        if not task.cancelled():
            task.exception()  # read, so that asyncio does not report it as never retrieved
    return True
