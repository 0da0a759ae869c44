"""Guesses sent all at once are limited as strictly as one after another, on both bus engines;
right attempts never count."""

from __future__ import annotations

import asyncio

import pytest

from rooms.bus import Bus
from rooms.errors import RateLimited
from rooms.ratelimit import FailureLimiter


async def test_guesses_at_once_get_no_more_tries_than_one_by_one(bus: Bus) -> None:
    limiter = FailureLimiter(bus, "code", limit=5, window=900)

    async def guess() -> bool:
        try:
            await limiter.attempt("192.0.2.7")
        except RateLimited:
            return False
        return True  # allowed to look the code up (and it was wrong: nothing undone)

    allowed = await asyncio.gather(*(guess() for _ in range(50)))
    assert sum(allowed) == 5
    with pytest.raises(RateLimited) as refused:
        await limiter.attempt("192.0.2.7")
    assert 0 < refused.value.retry_after <= 900
    await limiter.attempt("192.0.2.8")  # another address is not affected


async def test_right_attempts_never_count(bus: Bus) -> None:
    limiter = FailureLimiter(bus, "code", limit=2, window=900)
    for _ in range(10):
        await limiter.attempt("192.0.2.9")
        await limiter.succeeded("192.0.2.9")
    assert await limiter.attempt("192.0.2.9") == 1
