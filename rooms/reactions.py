"""Reactions: applause, laughter, heart, bravo — counted on each node and sent as totals.

A click is not a bus message: each node adds its viewers' reactions up and publishes per-show
totals at a short interval (:data:`INTERVAL`), so a room full of applause costs the bus twenty
messages a second per show and node, however many clap.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from rooms import events
from rooms.bus import Bus
from rooms.errors import InvalidInput
from rooms.supervise import Failures

KINDS = ("applause", "laughter", "heart", "bravo")
INTERVAL = 0.05  # seconds between a node's totals, while anyone reacts
RATE, BURST = 2.0, 10  # per viewer


def check_kind(kind: object) -> str:
    """A known reaction kind, or InvalidInput naming the known ones."""
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
    return str(kind)


class ReactionTally:
    """This node's reactions since the last totals, per show, lobby and kind."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )

    def add(self, show_id: str, lobby_id: str, kind: str) -> None:
        """Count one reaction."""
        self._counts[show_id][lobby_id][kind] += 1

    def drain(self) -> dict[str, dict[str, Any]]:
        """Per show, the totals since the last drain (``counts`` and per-``lobbies``); resets."""
        out: dict[str, dict[str, Any]] = {}
        for show_id, lobbies in self._counts.items():
            totals: dict[str, int] = defaultdict(int)
            per_lobby = {}
            for lobby_id, kinds in lobbies.items():
                per_lobby[lobby_id] = dict(kinds)
                for kind, n in kinds.items():
                    totals[kind] += n
            out[show_id] = {"counts": dict(totals), "lobbies": per_lobby}
        self._counts.clear()
        return out


async def publish_totals(
    tally: ReactionTally,
    bus: Bus,
    node: str,
    also: Callable[[str, dict[str, int]], None] | None = None,
) -> None:
    """Every :data:`INTERVAL`, this node's reaction totals per show, on the show's channel.

    Runs as long as the node: a failure of any kind (the bus away, anything else) is said once,
    and the totals are not published again until a pause that grows while it fails (the clicks
    meanwhile are lost: a burst of applause a minute late would be no applause at all)."""
    loop = asyncio.get_running_loop()
    failures = Failures("reactions.publish", node=node)
    due = loop.time()
    resume = due
    while True:
        # A fixed schedule: the time spent publishing does not stretch the interval.
        due += INTERVAL
        await asyncio.sleep(max(0.0, due - loop.time()))
        due = max(due, loop.time() - INTERVAL)  # after a stall, do not try to catch up
        drained = tally.drain()
        if not drained or loop.time() < resume:
            continue
        try:
            for show_id, totals in drained.items():
                if also is not None:
                    also(show_id, totals["counts"])  # e.g. the show's insight
                event = events.reactions(show_id, node, totals["counts"], totals["lobbies"])
                await bus.publish(events.show_channel(show_id), event)
        except Exception as exc:
            resume = loop.time() + failures.failed(exc)
        else:
            failures.succeeded()
