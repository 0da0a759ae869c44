"""A show's live events and chat to its followers on this node: one bus subscription and one JSON
encoding per show and event, however many clients follow it (a reaction burst to a thousand viewers
costs one encode, not a thousand; a chat message is published once for its lobby and the
performer's feed, and each node hands it to its own members of that lobby)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from rooms.bus import Bus, Subscription
from rooms.chat import show_chat_channel
from rooms.shows import show_channel
from signaling.connection import Connection

VIEWER_REACTIONS_INTERVAL = 0.5  # seconds between the reaction totals a viewer receives
# Viewers get reaction totals in slices of this many, a few milliseconds apart: between two slices
# the node reads its sockets, so a chat message or a click waits for one slice, not for the whole
# audience; and the viewers' wake-ups are spread too (on a small machine they compete with it).
SEND_SLICE = 50
SLICE_GAP = 0.005  # seconds; at most half the viewers' interval for all slices together

FEED = ""  # the performer's feed among a show's chat routes: every lobby's chat


class _Relay:
    """One bus subscription of this node, pumped by one task while anyone here follows it."""

    def __init__(self, sub: Subscription, task: asyncio.Task[None]) -> None:
        self.sub = sub
        self.task = task

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.sub.close()


class ShowFollowers:
    """Per show: the node's subscriptions to its events and its chat, and the connections that
    follow them (a viewer its lobby's chat, a performer every lobby's)."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._shows: dict[str, tuple[_Relay, set[Connection]]] = {}
        self._chats: dict[str, tuple[_Relay, dict[str, set[Connection]]]] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    async def _relay(
        self,
        channel: str,
        pump: Callable[[Subscription], Coroutine[Any, Any, None]],
    ) -> _Relay:
        sub = await self._bus.subscribe(channel)
        task = asyncio.get_running_loop().create_task(pump(sub), name=f"followers-{channel}")
        return _Relay(sub, task)

    async def follow(self, show_id: str, conn: Connection) -> None:
        """Send ``conn`` the show's events from now on."""
        async with self._opening.setdefault(f"show:{show_id}", asyncio.Lock()):
            entry = self._shows.get(show_id)
            if entry is None:
                followers: set[Connection] = set()
                relay = await self._relay(
                    show_channel(show_id), lambda sub: _pump_show(sub, followers)
                )
                entry = self._shows[show_id] = (relay, followers)
            entry[1].add(conn)

    async def unfollow(self, show_id: str, conn: Connection) -> None:
        """Stop sending ``conn`` the show's events; the last one out closes the subscription."""
        entry = self._shows.get(show_id)
        if entry is None:
            return
        relay, followers = entry
        followers.discard(conn)
        if not followers:
            del self._shows[show_id]
            await relay.close()

    async def follow_chat(self, show_id: str, conn: Connection, lobby_id: str = FEED) -> None:
        """Send ``conn`` the chat of its lobby ``lobby_id`` (or, by default, the performer's feed:
        every lobby's chat of the show) from now on."""
        async with self._opening.setdefault(f"chat:{show_id}", asyncio.Lock()):
            entry = self._chats.get(show_id)
            if entry is None:
                routes: dict[str, set[Connection]] = {}
                relay = await self._relay(
                    show_chat_channel(show_id), lambda sub: _pump_chat(sub, routes)
                )
                entry = self._chats[show_id] = (relay, routes)
            entry[1].setdefault(lobby_id, set()).add(conn)

    async def unfollow_chat(self, show_id: str, conn: Connection, lobby_id: str = FEED) -> None:
        """Stop sending ``conn`` that chat; the last one out closes the subscription."""
        entry = self._chats.get(show_id)
        if entry is None:
            return
        relay, routes = entry
        followers = routes.get(lobby_id)
        if followers is not None:
            followers.discard(conn)
            if not followers:
                del routes[lobby_id]
        if not routes:
            del self._chats[show_id]
            await relay.close()

    async def close(self) -> None:
        """End every subscription (shutdown)."""
        shows, chats = self._shows, self._chats
        self._shows, self._chats = {}, {}
        for relay, _ in [*shows.values(), *chats.values()]:
            await relay.close()


async def _pump_chat(sub: Subscription, routes: dict[str, set[Connection]]) -> None:
    """Each chat event to the members of its lobby on this node and to the performers' feeds."""
    async for event in sub:
        lobby = event.get("lobby")
        members = routes.get(lobby, ()) if isinstance(lobby, str) else ()
        feed = routes.get(FEED, ())
        if not members and not feed:
            continue
        text = _encode(event)
        for conn in {*members, *feed} if members and feed else members or feed:
            conn.send_text(text)


async def _pump_show(sub: Subscription, followers: set[Connection]) -> None:
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
        _send_in_slices(loop, [c for c in followers if c.performing is None], text)

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


def _send_in_slices(loop: asyncio.AbstractEventLoop, conns: list[Connection], text: str) -> None:
    """``text`` to every connection, :data:`SEND_SLICE` at a time, spread over a short while."""
    slices = [conns[i : i + SEND_SLICE] for i in range(0, len(conns), SEND_SLICE)]
    if not slices:
        return
    gap = min(SLICE_GAP, VIEWER_REACTIONS_INTERVAL / 2 / len(slices))
    _send(slices[0], text)
    for number, part in enumerate(slices[1:], start=1):
        loop.call_later(number * gap, _send, part, text)


def _send(conns: list[Connection], text: str) -> None:
    for conn in conns:
        conn.send_text(text)


FOLLOWERS: web.AppKey[ShowFollowers] = web.AppKey("show_followers")


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
