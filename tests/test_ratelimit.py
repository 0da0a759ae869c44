"""Guesses sent all at once get at most ``in_flight`` more tries than one after another, on both
bus engines, while right attempts at once from one address all go through."""

from __future__ import annotations

import asyncio

import pytest

from rooms.bus import Bus
from rooms.errors import RateLimited
from rooms.ratelimit import FailureLimiter


async def test_guesses_at_once_are_bounded(bus: Bus) -> None:
    limiter = FailureLimiter(bus, "code", limit=5, window=900, in_flight=10)

    async def guess() -> bool:
        try:
            async with limiter.trying("192.0.2.7"):
                await asyncio.sleep(0.01)  # the look-up: every guess is under way at once
                await limiter.failed("192.0.2.7")
        except RateLimited:
            return False
        return True

    allowed = sum(await asyncio.gather(*(guess() for _ in range(100))))
    assert 5 <= allowed <= 10  # without the cap on attempts under way: all 100
    with pytest.raises(RateLimited) as refused:
        async with limiter.trying("192.0.2.7"):
            pass
    assert 0 < refused.value.retry_after <= 900
    async with limiter.trying("192.0.2.8"):  # another address is not affected
        pass


async def test_right_attempts_at_once_all_go_through(bus: Bus) -> None:
    limiter = FailureLimiter(bus, "code", limit=2, window=900, in_flight=50)

    async def right() -> None:
        async with limiter.trying("192.0.2.9"):
            await asyncio.sleep(0.01)

    await asyncio.gather(*(right() for _ in range(40)))
    for _ in range(10):
        await right()  # and never count
