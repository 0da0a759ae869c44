"""Long-lived tasks that ride out failures: retried with growing pauses, each run of failures said
once in the log.

The bus may go away for a while (Redis restarting, a stalled host). A task that ended at its first
error would leave a seat unrefreshed, an audience figure or a show's state stale for good; these
helpers keep such tasks going instead. The first failure of a run is logged (a warning when the bus
is away; with its traceback when it is anything else, so that a bug does not hide behind the
retries), each new kind of failure in the same run once more, and the end of the run once: with
how many attempts failed and for how long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import structlog

from rooms.bus import BusError

log = structlog.get_logger(__name__)

T = TypeVar("T")

FIRST_PAUSE = 0.5  # seconds before the first retry
LONGEST_PAUSE = 5.0  # the pauses double up to this


class Failures:
    """One task's current run of failures, and the pause before its next attempt.

    Logs ``{what}_failed`` when a run begins (and for each new kind of error in it: a warning for
    the ``expected`` kinds, the bus being away by default, else an error with its traceback) and
    ``{what}_back`` when it ends, with ``context`` on both."""

    def __init__(
        self,
        what: str,
        *,
        first: float = FIRST_PAUSE,
        longest: float = LONGEST_PAUSE,
        expected: tuple[type[Exception], ...] = (BusError,),
        **context: Any,
    ) -> None:
        if not 0 < first <= longest:
            raise ValueError("pauses must be positive, the first no longer than the longest")
        self.what = what
        self.first, self.longest = first, longest
        self.expected = expected  # logged as warnings, without a traceback
        self.count = 0  # failures in the current run
        self.pause = first
        self._context = context
        self._since = 0.0
        self._kinds: set[type[BaseException]] = set()

    @property
    def failing(self) -> bool:
        """Whether the last attempt failed."""
        return self.count > 0

    def failed(self, exc: Exception) -> float:
        """Note a failed attempt; the seconds to pause before the next one."""
        if self.count == 0:
            self._since = time.monotonic()
            self.pause = self.first
        else:
            self.pause = min(self.longest, self.pause * 2)
        self.count += 1
        if type(exc) not in self._kinds:
            self._kinds.add(type(exc))
            if isinstance(exc, self.expected):
                log.warning(
                    f"{self.what}_failed", error=str(exc), retry_in=self.pause, **self._context
                )
            else:
                log.error(f"{self.what}_failed", exc_info=exc, retry_in=self.pause, **self._context)
        return self.pause

    def succeeded(self) -> None:
        """Note an attempt that worked (the end of a run of failures, if there was one)."""
        if self.count:
            seconds = round(time.monotonic() - self._since, 1)
            log.info(f"{self.what}_back", failures=self.count, seconds=seconds, **self._context)
        self.count = 0
        self.pause = self.first
        self._kinds.clear()


async def retrying(
    op: Callable[[], Awaitable[T]],
    what: str,
    *,
    fatal: tuple[type[Exception], ...] = (),
    first: float = FIRST_PAUSE,
    longest: float = LONGEST_PAUSE,
    expected: tuple[type[Exception], ...] = (BusError,),
    **context: Any,
) -> T:
    """What ``op()`` returns, trying again after growing pauses for as long as it fails. An error
    of a ``fatal`` kind is raised at once (retrying cannot help it); cancelling stops the tries."""
    failures = Failures(what, first=first, longest=longest, expected=expected, **context)
    while True:
        try:
            result = await op()
        except fatal:
            raise
        except Exception as exc:
            await asyncio.sleep(failures.failed(exc))
            continue
        failures.succeeded()
        return result


async def every(
    interval: float,
    step: Callable[[], Awaitable[object]],
    what: str,
    *,
    now: bool = False,
    first: float = FIRST_PAUSE,
    longest: float = LONGEST_PAUSE,
    **context: Any,
) -> NoReturn:
    """Run ``step`` every ``interval`` seconds (the first at once with ``now``) until cancelled;
    after a failed step, the next comes after the growing pause instead."""
    failures = Failures(what, first=first, longest=longest, **context)
    pause = 0.0 if now else interval
    while True:
        await asyncio.sleep(pause)
        try:
            await step()
        except Exception as exc:
            pause = failures.failed(exc)
            continue
        failures.succeeded()
        pause = interval
