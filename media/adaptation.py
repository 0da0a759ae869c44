"""Which picture a viewer's link carries, from what its receiver reports (RTCP receiver reports'
loss, REMB): down fast on congestion, up slowly, one rung at a time, by trying (probing) with
hysteresis; a failed try doubles the wait before the next."""

from __future__ import annotations

import math
from collections.abc import Sequence

LOSS_DOWN = 0.10  # a fraction of packets lost this large is congestion
DOWN_AFTER = 1.0  # seconds of congestion before stepping down (two reports of aiortc's)
UP_AFTER = 10.0  # seconds clean before trying the next rung up
AGAIN_AFTER = 3.0  # after a try that held: the next rung up that soon
PROBE_WINDOW = 4.0  # a step up that meets congestion this soon failed
MAX_WAIT = 60.0
FIT = 0.8  # a rung fits a link that delivered this much more than its bitrate
REMB_MARGIN = 0.85  # an estimate under this share of the rate sent is congestion


class PictureChooser:
    """The rung (index into ``bitrates``, best first) a viewer should get now; pure logic on a
    clock the caller passes, fed with each report."""

    def __init__(
        self, bitrates: Sequence[float], *, start: int = 0, up_after: float = UP_AFTER
    ) -> None:
        if not bitrates:
            raise ValueError("a ladder needs at least one rung")
        self.bitrates = list(bitrates)
        self.current = start
        self.up_after = up_after  # seconds clean before the first try up
        self.wait = up_after
        self._congested_since: float | None = None
        self._clean_since: float | None = None
        self._stepped_up_at: float | None = None

    def report(
        self,
        now: float,
        *,
        fraction_lost: float = 0.0,
        remb_bps: float | None = None,
        sent_bps: float | None = None,
    ) -> int | None:
        """One receiver report (loss as a fraction, the REMB estimate, the rate sent since the
        last report); the new rung if the viewer should switch, else None."""
        rate = sent_bps or self.bitrates[self.current]
        congested = fraction_lost > LOSS_DOWN or (
            remb_bps is not None and rate > 0 and remb_bps < REMB_MARGIN * rate
        )
        if congested:
            self._clean_since = None
            if self._congested_since is None:
                self._congested_since = now
            if now - self._congested_since < DOWN_AFTER or self.current == len(self.bitrates) - 1:
                return None
            return self._down(now, fraction_lost, remb_bps, sent_bps)
        self._congested_since = None
        if self._stepped_up_at is not None and now - self._stepped_up_at >= PROBE_WINDOW:
            self._stepped_up_at = None
            self.wait = AGAIN_AFTER  # the try held: the link may carry more yet
        if self._clean_since is None:
            self._clean_since = now
        if self.current == 0 or now - self._clean_since < self.wait:
            return None
        self.current -= 1
        self._stepped_up_at = now
        self._clean_since = now
        return self.current

    def _down(
        self, now: float, fraction_lost: float, remb_bps: float | None, sent_bps: float | None
    ) -> int:
        capacity = math.inf
        if remb_bps is not None:
            capacity = remb_bps
        if sent_bps:
            capacity = min(capacity, sent_bps * (1 - fraction_lost))
        target = len(self.bitrates) - 1
        for index in range(self.current + 1, len(self.bitrates)):
            if self.bitrates[index] <= FIT * capacity:
                target = index
                break
        if self._stepped_up_at is not None and now - self._stepped_up_at < PROBE_WINDOW:
            self.wait = min(MAX_WAIT, max(self.up_after, self.wait) * 2)  # the try failed
        elif self._stepped_up_at is None and self.wait < self.up_after:
            self.wait = self.up_after
        self._stepped_up_at = None
        self._congested_since = None
        self.current = target
        return target
