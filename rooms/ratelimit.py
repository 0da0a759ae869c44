"""Rate limits kept on the bus, so every node of a deployment counts the same attempts."""

from __future__ import annotations

import time
from collections.abc import Callable

from rooms.bus import Bus
from rooms.errors import RateLimited


class FailureLimiter:
    """Refuse a subject after ``limit`` failures within ``window`` s; successes never count."""

    def __init__(self, bus: Bus, name: str, *, limit: int, window: float) -> None:
        self._bus = bus
        self._name = name
        self.limit = limit
        self.window = window

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

    async def attempt(self, subject: str) -> int:
        """Count an attempt as a failure before it is made (the count so far, this one included),
        or raise :class:`RateLimited`.

        Counting first (one atomic increment) is what holds when a guesser sends many attempts at
        once: with check-then-count they all pass the check before any count lands. Call
        :meth:`succeeded` when the attempt turns out right.
        """
        count = await self._bus.incr(self._key(subject), ttl=self.window)
        if count > self.limit:
            _, remaining = await self._bus.counter(self._key(subject))
            raise RateLimited(
                "too many wrong attempts; please wait", retry_after=remaining or self.window
            )
        return count

    async def succeeded(self, subject: str) -> None:
        """The attempt counted by :meth:`attempt` was right: successes never count."""
        if await self._bus.incr(self._key(subject), ttl=self.window, by=-1) <= 0:
            # Nothing wrong left to remember: no window runs on for a clean record.
            await self._bus.delete(self._key(subject))


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
