"""What a show's organiser learns afterwards: attendance over time, the moments that got applause,
how much the lobbies talked, and the audience's feedback. Counted, never quoted: no names, no
addresses, nothing per person but an anonymous score.

Each node counts what happens on it (joins, chat messages, reactions, lobby voice) per show and
minute and adds its counts to the bus every few seconds (:meth:`Insight.flush`); the node with
the show's performer samples the audience once a minute; a viewer's minutes are added up when
they leave. These raw counts expire after :data:`RAW_TTL`; when the show ends they are summed
into one record kept for ``kept`` seconds (``--insight-retention``).
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from rooms.bus import Bus, Message
from rooms.errors import InvalidInput
from rooms.reactions import KINDS

RAW_TTL = 24 * 3600.0  # raw counts: a day (the show's aggregate is made when it ends)
KEPT = 30 * 24 * 3600.0  # aggregates: --insight-retention
FLUSH_EVERY = 5.0  # seconds between a node's additions to the bus
COMMENT_MAX = 300
SCORES = range(1, 6)
_PER_MINUTE = ("chat", "voice", *(f"r.{kind}" for kind in KINDS))


def _minute(at: float) -> int:
    return int(at // 60)


def _anonymous(show_id: str, who: str) -> str:
    """A key for one respondent that names nobody (a second answer replaces the first)."""
    return hashlib.sha256(f"{show_id}\0{who}".encode()).hexdigest()[:24]


def check_feedback(score: object, comment: object) -> tuple[int, str]:
    """A score 1–5 and an optional comment of at most :data:`COMMENT_MAX` characters."""
    if not isinstance(score, int) or isinstance(score, bool) or score not in SCORES:
        raise InvalidInput("score must be a whole number 1–5")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise InvalidInput("comment must be text")
    text = " ".join("".join(ch for ch in comment if ch.isprintable() or ch == " ").split())
    if len(text) > COMMENT_MAX:
        raise InvalidInput(f"a comment is at most {COMMENT_MAX} characters")
    return score, text


class Insight:
    """This node's counts for the shows it serves, and every node's figures from the bus."""

    def __init__(
        self, bus: Bus, *, kept: float = KEPT, clock: Callable[[], float] = time.time
    ) -> None:
        self._bus = bus
        self.kept = kept
        self.clock = clock  # wall-clock seconds (a test may move it)
        self._pending: dict[str, int] = defaultdict(int)

    def minute(self) -> int:
        """The minute of the show's timeline it is now (minutes since the epoch)."""
        return _minute(self.clock())

    # -- counting (synchronous: a handler never waits for it) -------------------------------------

    def count(self, show_id: str, what: str, n: int = 1) -> None:
        """One more (or ``n``) of ``what`` in this minute of the show (``joins``, ``screens``,
        ``screen_heads``, ``chat``, ``voice``, ``r.<kind>``)."""
        if n <= 0:
            return
        if what in _PER_MINUTE:
            self._pending[f"ins:{show_id}:{what}@{_minute(self.clock())}"] += n
        else:
            self._pending[f"ins:{show_id}:{what}"] += n

    def reactions(self, show_id: str, counts: dict[str, int]) -> None:
        """Reactions counted on this node (its totals since the last ones)."""
        for kind, n in counts.items():
            if kind in KINDS:
                self.count(show_id, f"r.{kind}", n)

    async def flush(self) -> None:
        """Add this node's counts to the bus (what fails is counted again next time)."""
        pending, self._pending = self._pending, defaultdict(int)
        try:
            while pending:
                key, n = next(iter(pending.items()))
                await self._bus.incr(key, ttl=RAW_TTL, by=n)
                del pending[key]
        finally:
            for key, n in pending.items():
                self._pending[key] += n

    async def seen_lobby(self, show_id: str, lobby_id: str) -> None:
        """A lobby of the show had someone in it."""
        await self._bus.set(f"ins:{show_id}:lobby:{lobby_id}", {"n": 1}, ttl=RAW_TTL)

    async def sample(self, show_id: str, viewers: int, minute: int | None = None) -> None:
        """The audience (heads: a screen counts its room) in this minute: its largest."""
        key = f"ins:{show_id}:v@{self.minute() if minute is None else minute}"
        await self._bus.set(key, {"n": viewers}, ttl=RAW_TTL)

    async def watched(self, show_id: str, member_id: str, seconds: float) -> None:
        """A viewer left after ``seconds`` (added up over their comings and goings)."""
        if seconds >= 1:
            key = f"ins:{show_id}:w:{_anonymous(show_id, member_id)}"
            await self._bus.incr(key, ttl=RAW_TTL, by=round(seconds))

    async def feedback(
        self, show_id: str, who: str, score: object, comment: object = None, heads: int = 1
    ) -> None:
        """One viewer's (or a care-home room's, weighted by its heads) answer; a second from the
        same replaces the first."""
        checked, text = check_feedback(score, comment)
        record: Message = {"score": checked, "heads": heads, "at": self.clock()}
        if text:
            record["comment"] = text
        await self._bus.set(f"fb:{show_id}:{_anonymous(show_id, who)}", record, ttl=self.kept)

    # -- the organiser's figures ------------------------------------------------------------------

    async def report(self, show_id: str) -> dict[str, Any]:
        """The show's figures: the kept aggregate once it ended, else from the raw counts now."""
        kept = await self._bus.get(f"insight:{show_id}")
        if kept is not None:
            report = dict(kept)
        else:
            report = await self._from_raw(show_id)
        report.update(await self._feedback(show_id))
        return report

    async def aggregate(self, show_id: str) -> None:
        """The show ended: its figures are kept as one record; the raw counts expire by
        themselves."""
        await self._bus.set(f"insight:{show_id}", await self._from_raw(show_id), ttl=self.kept)

    async def _from_raw(self, show_id: str) -> dict[str, Any]:
        prefix = f"ins:{show_id}:"
        totals: dict[str, int] = {}
        minutes: dict[int, dict[str, Any]] = defaultdict(
            lambda: {"viewers": 0, "reactions": {}, "chat_messages": 0, "voice": 0}
        )
        watched: list[int] = []
        lobbies = 0
        for key in await self._bus.keys(prefix):
            name = key[len(prefix) :]
            if name.startswith("lobby:"):
                lobbies += 1
                continue
            if name.startswith("v@"):  # a sample, stored whole
                value = await self._bus.get(key)
                n = 0 if value is None else int(value.get("n", 0))
            else:  # a counter
                n, _ = await self._bus.counter(key)
            if name.startswith("w:"):
                watched.append(n)
            elif "@" in name:
                what, _, at = name.partition("@")
                slot = minutes[int(at)]
                if what == "v":
                    slot["viewers"] = n
                elif what == "chat":
                    slot["chat_messages"] = n
                elif what == "voice":
                    slot["voice"] = n
                elif what.startswith("r."):
                    slot["reactions"][what[2:]] = n
            else:
                totals[name] = n
        samples = [slot["viewers"] for slot in minutes.values() if slot["viewers"]]
        first = min(minutes) if minutes else 0
        timeline = [{"minute": at - first, **minutes[at]} for at in sorted(minutes)]
        return {
            "show": show_id,
            "peak_viewers": max(samples, default=0),
            "average_viewers": round(statistics.fmean(samples), 1) if samples else 0,
            "joins": totals.get("joins", 0),
            "screens": totals.get("screens", 0),
            "screen_heads": totals.get("screen_heads", 0),
            "lobbies": lobbies,
            "median_minutes_watched": round(statistics.median(watched) / 60, 1) if watched else 0,
            "timeline": timeline,
        }

    async def _feedback(self, show_id: str) -> dict[str, Any]:
        scores = {str(n): 0 for n in SCORES}
        comments: list[tuple[float, str]] = []
        for key in await self._bus.keys(f"fb:{show_id}:"):
            answer = await self._bus.get(key)
            if answer is None:
                continue
            scores[str(answer["score"])] += int(answer.get("heads", 1))
            if answer.get("comment"):
                comments.append((float(answer.get("at", 0)), str(answer["comment"])))
        return {"feedback": scores, "comments": [text for _, text in sorted(comments)]}
