"""Coalescing of keyframe requests, so a wave of viewers costs the performer few keyframes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

DEFAULT_MIN_INTERVAL = 0.5


class KeyframeRequests:
    """Rate limiter between many keyframe wishes and the one publisher that can answer them."""

    def __init__(
        self,
        send: Callable[[], bool],
        *,
        min_interval: float = DEFAULT_MIN_INTERVAL,
    ) -> None:
        self.min_interval = min_interval
        self.sent = 0
        self._send = send
        self._last_sent = -float("inf")
        self._wanted = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def wanted(self) -> bool:
        """Whether someone waits for a keyframe that has not arrived yet."""
        return self._wanted

    def request(self) -> None:
        """Ask for a keyframe; sent now, later, or not at all if one is already on its way."""
        self._wanted = True
        if self._timer is not None:
            # Within min_interval of the last request: the timer sends again if still wanted.
            return
        loop = asyncio.get_running_loop()
        # The loop's clock, so that delays agree with the timers that wait them out.
        delay = self._last_sent + self.min_interval - loop.time()
        if delay <= 0:
            self._send_now()
        else:
            self._timer = loop.call_later(delay, self._on_timer)

    def keyframe_arrived(self) -> None:
        """A keyframe came from the publisher: every wish made so far is satisfied."""
        self._wanted = False

    def close(self) -> None:
        """Cancel the pending timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wanted = False

    def _send_now(self) -> None:
        if not self._send():
            # Nobody to ask (no publisher); whoever connects next is asked on arrival.
            return
        self.sent += 1
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        # Check again after min_interval: if the keyframe was lost or ignored, ask once more.
        self._timer = loop.call_later(self.min_interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._wanted:
            self._send_now()
