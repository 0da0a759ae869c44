"""Rate limits kept on the bus, so every node of a deployment counts the same attempts."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

from rooms.bus import Bus, BusError
from rooms.errors import RateLimited

IN_FLIGHT = 50  # attempts of one subject under way at once before more are refused
BUSY_TTL = 60.0  # the count of attempts under way forgets a node that died mid-attempt


class FailureLimiter:
    """Refuse a subject after ``limit`` failures within ``window`` s; successes never count."""

    def __init__(
        self, bus: Bus, name: str, *, limit: int, window: float, in_flight: int = IN_FLIGHT
    ) -> None:
        self._bus = bus
        self._name = name
        self.limit = limit
        self.window = window
        self.in_flight = in_flight

    def _key(self, subject: str) -> str:
        return f"ratelimit:{self._name}:{subject}"

    async def check(self, subject: str) -> None:
        """Raise :class:`RateLimited` if ``subject`` has used up its failures."""
        count, remaining = await self._bus.counter(self._key(subject))
        if count >= self.limit:
            raise RateLimited(
                "too many wrong attempts; please wait", retry_after=remaining or self.window
            )

    async def failed(self, subject: str) -> int:
        """Count one failure for ``subject``; return the failures in the current window."""
        return await self._bus.incr(self._key(subject), ttl=self.window)

    @contextlib.asynccontextmanager
    async def trying(self, subject: str) -> AsyncIterator[None]:
        """Around one attempt (count a wrong one with :meth:`failed`): refused when the subject
        has used up its failures, or has more than ``in_flight`` attempts under way at once.

        Checking before and counting after lets any number of right attempts through together
        (a care home's tablets behind one address), but a guesser sending many at once would
        have them all checked before any failure is counted: the cap on attempts under way bounds
        that to ``in_flight`` extra guesses a window.
        """
        await self.check(subject)
        busy_key = self._key(subject) + ":busy"
        busy = await self._bus.incr(busy_key, ttl=BUSY_TTL)
        try:
            if busy > self.in_flight:
                raise RateLimited("too many attempts at once; please wait", retry_after=1.0)
            yield
        finally:
            with contextlib.suppress(BusError):
                await self._bus.incr(busy_key, ttl=BUSY_TTL, by=-1)


class TokenBucket:
    """An in-process token bucket: ``rate`` per second with bursts of up to ``burst``."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> float:
        """Take a token: 0.0 if allowed, else the seconds until one is available."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate
