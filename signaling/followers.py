"""A show's live events to its followers on this node: one bus subscription and one JSON encoding
per show and event, however many clients follow it (a reaction burst to a thousand viewers costs
one encode, not a thousand)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from rooms.bus import Bus, Subscription
from rooms.shows import show_channel
from signaling.connection import Connection


class ShowFollowers:
    """Per show: the node's subscription to its channel and the connections that follow it."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._shows: dict[str, tuple[Subscription, asyncio.Task[None], set[Connection]]] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    async def follow(self, show_id: str, conn: Connection) -> None:
        """Send ``conn`` the show's events from now on."""
        lock = self._opening.setdefault(show_id, asyncio.Lock())
        async with lock:
            entry = self._shows.get(show_id)
            if entry is None:
                sub = await self._bus.subscribe(show_channel(show_id))
                followers: set[Connection] = set()
                task = asyncio.get_running_loop().create_task(
                    self._pump(sub, followers), name=f"show-followers-{show_id}"
                )
                entry = self._shows[show_id] = (sub, task, followers)
            entry[2].add(conn)

    async def unfollow(self, show_id: str, conn: Connection) -> None:
        """Stop sending ``conn`` the show's events; the last one out closes the subscription."""
        entry = self._shows.get(show_id)
        if entry is None:
            return
        sub, task, followers = entry
        followers.discard(conn)
        if not followers:
            del self._shows[show_id]
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sub.close()

    @staticmethod
    async def _pump(sub: Subscription, followers: set[Connection]) -> None:
        loop = asyncio.get_running_loop()
        viewers_due = 0.0
        pending: dict[str, Any] | None = None  # reaction totals not yet sent to viewers
        timer: asyncio.TimerHandle | None = None

        def flush() -> None:
            nonlocal pending, viewers_due, timer
            timer = None
            if pending is None:
                return
            viewers_due = loop.time() + VIEWER_REACTIONS_INTERVAL
            text = _encode(pending)
            pending = None
            for conn in tuple(followers):
                if conn.performing is None:
                    conn.send_text(text)

        try:
            async for event in sub:
                if event.get("type") != "reactions":
                    text = _encode(event)
                    for conn in tuple(followers):
                        conn.send_text(text)
                    continue
                # The performer's meters get every total at once; viewers get them merged a few
                # times a second, which is all a lobby's picture of the hall needs.
                performer_text = _encode(event)
                for conn in tuple(followers):
                    if conn.performing is not None:
                        conn.send_text(performer_text)
                pending = event if pending is None else _merge(pending, event)
                if loop.time() >= viewers_due:
                    flush()
                elif timer is None:
                    timer = loop.call_later(viewers_due - loop.time(), flush)
        finally:
            if timer is not None:
                timer.cancel()

    async def close(self) -> None:
        """End every subscription (shutdown)."""
        for show_id in list(self._shows):
            followers = self._shows[show_id][2]
            for conn in list(followers):
                await self.unfollow(show_id, conn)


FOLLOWERS: web.AppKey[ShowFollowers] = web.AppKey("show_followers")

VIEWER_REACTIONS_INTERVAL = 0.25  # seconds between the reaction totals a viewer receives


def _encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two reaction totals of one show as one (counts and per-lobby counts added up)."""
    counts = dict(a.get("counts", {}))
    for kind, n in b.get("counts", {}).items():
        counts[kind] = counts.get(kind, 0) + n
    lobbies = {lobby: dict(kinds) for lobby, kinds in a.get("lobbies", {}).items()}
    for lobby, kinds in b.get("lobbies", {}).items():
        merged = lobbies.setdefault(lobby, {})
        for kind, n in kinds.items():
            merged[kind] = merged.get(kind, 0) + n
    return {**b, "counts": counts, "lobbies": lobbies, "node": "merged"}
