"""A show's live events to its followers on this node: one bus subscription and one JSON encoding
per show and event, however many clients follow it (a reaction burst to a thousand viewers costs
one encode, not a thousand)."""

from __future__ import annotations

import asyncio
import contextlib
import json

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
        async for event in sub:
            text = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
            for conn in tuple(followers):
                conn.send_text(text)

    async def close(self) -> None:
        """End every subscription (shutdown)."""
        for show_id in list(self._shows):
            followers = self._shows[show_id][2]
            for conn in list(followers):
                await self.unfollow(show_id, conn)


FOLLOWERS: web.AppKey[ShowFollowers] = web.AppKey("show_followers")
