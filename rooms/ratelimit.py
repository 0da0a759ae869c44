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
    """Refuse a subject after ``limit`` failures within ``window`` s; successes never count.

    The count on the bus decides, atomically, which attempts are answered: a failure is counted
    first and answered as a failure only while it is within the limit (the rest are refused), and
    a right attempt is acted on only while the failures are within the limit (:class:`Attempt`).
    So however many guesses one subject sends at once, on one node or many, at most ``limit`` of
    them are answered as wrong in a window, and right attempts never wait for each other (a care
    home's tablets behind one address join together).
    """

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
        """Count one failure for ``subject`` and return the failures in the current window; raise
        :class:`RateLimited` instead when this one is beyond the limit (it must not be answered
        as a failure: that would tell a guesser one more wrong guess)."""
        count = await self._bus.incr(self._key(subject), ttl=self.window)
        if count > self.limit:
            await self.check(subject)  # raises, with the time left in the window
            raise RateLimited("too many wrong attempts; please wait", retry_after=self.window)
        return count

    @contextlib.asynccontextmanager
    async def trying(self, subject: str) -> AsyncIterator[Attempt]:
        """Around one attempt: refused at once when the subject has used up its failures, or has
        more than ``in_flight`` attempts under way (which bounds the work one subject makes at
        once, not its guesses: those the count bounds). Say how the attempt went with
        :meth:`Attempt.wrong` or, before acting on a right secret, :meth:`Attempt.right`."""
        await self.check(subject)
        busy_key = self._key(subject) + ":busy"
        busy = await self._bus.incr(busy_key, ttl=BUSY_TTL)
        try:
            if busy > self.in_flight:
                raise RateLimited("too many attempts at once; please wait", retry_after=1.0)
            yield Attempt(self, subject)
        finally:
            with contextlib.suppress(BusError):
                await self._bus.incr(busy_key, ttl=BUSY_TTL, by=-1)


class Attempt:
    """One attempt of a subject under a :class:`FailureLimiter`."""

    def __init__(self, limiter: FailureLimiter, subject: str) -> None:
        self._limiter = limiter
        self._subject = subject

    async def wrong(self) -> int:
        """The attempt failed: counted; :class:`RateLimited` if it is beyond the limit (answer
        that instead of the failure). The failures in the window."""
        return await self._limiter.failed(self._subject)

    async def right(self) -> None:
        """The attempt is right: call before acting on it. :class:`RateLimited` if the subject
        used up its failures meanwhile (guesses sent together with this one), so a right guess
        is found only among the first ``limit`` answered, however many were sent at once."""
        await self._limiter.check(self._subject)


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
