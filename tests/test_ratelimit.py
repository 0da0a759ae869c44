"""Guesses sent all at once are answered no further than the limit, on both bus engines (Redis
being a real redis-server) and through the HTTP API, while right attempts at once from one address
all go through."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from rooms.bus import Bus
from rooms.errors import RateLimited
from rooms.ratelimit import FailureLimiter
from tests.nodes import Node

BURST = 200


class Gate:
    """Holds every attempt of a burst in its look-up until all of them are under way."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.waiting = 0
        self._open = asyncio.Event()

    async def arrive(self) -> None:
        self.waiting += 1
        if self.waiting == self.size:
            self._open.set()
        await asyncio.wait_for(self._open.wait(), 10)


async def wrong_code() -> bool:
    return False


async def right_code() -> bool:
    return True


async def attempt(
    limiter: FailureLimiter, subject: str, lookup: Callable[[], Awaitable[bool]]
) -> str:
    """One attempt as the endpoints make it: "right", "wrong" (answered as such) or "refused"."""
    try:
        async with limiter.trying(subject) as tried:
            if not await lookup():
                await tried.wrong()
                return "wrong"
            await tried.right()
            return "right"
    except RateLimited:
        return "refused"


async def test_wrong_guesses_at_once_are_answered_no_further_than_the_limit(bus: Bus) -> None:
    # no cap on attempts under way: the count alone must hold the limit
    limiter = FailureLimiter(bus, "code", limit=10, window=900, in_flight=10_000)
    gate = Gate(BURST)

    async def wrong() -> bool:
        await gate.arrive()  # every guess is under way before any is counted
        return False

    outcomes = await asyncio.gather(*(attempt(limiter, "192.0.2.7", wrong) for _ in range(BURST)))
    assert outcomes.count("wrong") == 10  # checking first and counting after answered all 200
    assert outcomes.count("refused") == BURST - 10
    with pytest.raises(RateLimited) as refused:
        async with limiter.trying("192.0.2.7"):
            pass
    assert 0 < refused.value.retry_after <= 900
    assert await attempt(limiter, "192.0.2.8", wrong_code) == "wrong"  # another address


async def test_a_right_guess_under_way_while_a_burst_uses_up_the_limit_is_refused(
    bus: Bus,
) -> None:
    """A right code sent with a burst of wrong ones is not found once the wrong ones used up the
    limit: otherwise a burst would try every code in it, counted or not."""
    limiter = FailureLimiter(bus, "code", limit=10, window=900, in_flight=10_000)
    looked_up = asyncio.Event()
    burst_done = asyncio.Event()

    async def right() -> bool:
        looked_up.set()
        await asyncio.wait_for(burst_done.wait(), 10)  # the look-up ends after the burst's
        return True

    guess = asyncio.ensure_future(attempt(limiter, "192.0.2.7", right))
    await asyncio.wait_for(looked_up.wait(), 10)
    outcomes = await asyncio.gather(
        *(attempt(limiter, "192.0.2.7", wrong_code) for _ in range(BURST))
    )
    burst_done.set()
    assert outcomes.count("wrong") == 10
    assert await guess == "refused"


async def test_right_attempts_at_once_all_go_through(bus: Bus) -> None:
    limiter = FailureLimiter(bus, "code", limit=5, window=900)
    for _ in range(4):  # someone mistyped four times: one failure left
        assert await attempt(limiter, "192.0.2.9", wrong_code) == "wrong"
    gate = Gate(40)

    async def right() -> bool:
        await gate.arrive()  # a care home's 40 tablets, all under way at once
        return True

    outcomes = await asyncio.gather(*(attempt(limiter, "192.0.2.9", right) for _ in range(40)))
    assert outcomes == ["right"] * 40
    for _ in range(10):
        assert await attempt(limiter, "192.0.2.9", right_code) == "right"  # and never count
    assert await attempt(limiter, "192.0.2.9", wrong_code) == "wrong"  # the fifth


async def test_a_burst_of_wrong_codes_over_http_gets_no_more_answers_than_the_limit(
    node: Node,
) -> None:
    """200 wrong codes at once from one address (on both engines): five are answered 404, the
    rest 429, and then the right code too answers 429; another address still finds the show."""
    show = await node.create_show()
    wrong = "000000" if show["code"] != "000000" else "000001"
    connector = aiohttp.TCPConnector(limit=0, local_addr=("127.0.0.7", 0))
    async with aiohttp.ClientSession(connector=connector) as http:

        async def look_up(code: str) -> int:
            async with http.get(f"{node.url}/api/shows/by-code/{code}") as response:
                return response.status

        statuses = await asyncio.gather(*(look_up(wrong) for _ in range(BURST)))
        assert statuses.count(404) == 5, sorted(set(statuses))
        assert statuses.count(429) == BURST - 5
        assert await look_up(show["code"]) == 429
    other = aiohttp.TCPConnector(local_addr=("127.0.0.8", 0))
    async with aiohttp.ClientSession(connector=other) as http:
        async with http.get(f"{node.url}/api/shows/by-code/{show['code']}") as response:
            assert response.status == 200
