"""This node's one relay from the bus to whoever here follows an event: sockets, the show's hall,
the voice policy.

One bus subscription per channel and node, however many follow it, and one JSON encoding per event
(a reaction burst to a thousand viewers costs one encode, not a thousand). Routes decide who gets
what: a show's events go to everyone following the show, with reaction totals at once to the
performer's side and merged a few times a second to viewers; a show's chat goes to the members of
the message's lobby and to the performers' feed; a lobby's, a screen's or a staff key's events go
to everyone following that channel. A listener that fails is logged and dropped from that one
event; the relay goes on for everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import structlog

from rooms.bus import Bus, Message, Subscription
from rooms.events import (
    lobby_channel,
    screen_channel,
    show_channel,
    show_chat_channel,
    staff_channel,
)
from rooms.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

VIEWER_REACTIONS_INTERVAL = 0.5  # seconds between the reaction totals a viewer receives
# Viewers get reaction totals in slices of this many, a few milliseconds apart: between two slices
# the node reads its sockets, so a chat message or a click waits for one slice, not for the whole
# audience; and the viewers' wake-ups are spread too (on a small machine they compete with it).
SEND_SLICE = 50
SLICE_GAP = 0.005  # seconds; at most half the viewers' interval for all slices together

FEED = ""  # the performers' feed among a show's chat routes: every lobby's chat
EVERYONE = ""  # the one route of a plain channel
PERFORMERS = "performers"  # a show's route that gets every reaction total at once
VIEWERS = "viewers"  # a show's route that gets them merged

Unfollow = Callable[[], Awaitable[None]]


class Listener(Protocol):
    """Whoever follows events on this node (a socket, the hall, the voice policy)."""

    def deliver(self, event: Message, text: str) -> None:
        """One event and its JSON text (shared by every listener: do not change the event)."""


def encode(event: Message) -> str:
    """An event as the JSON text clients read."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def _deliver(listeners: Any, event: Message, text: str) -> None:
    for listener in tuple(listeners):
        try:
            listener.deliver(event, text)
        except Exception:
            log.exception("relay.listener_failed", type=event.get("type"))


class _Channel:
    """One subscription of this node and the routes of its listeners, pumped by one task."""

    def __init__(self, channel: str, sub: Subscription) -> None:
        self.channel = channel
        self.sub = sub
        self.routes: dict[str, set[Listener]] = {}
        self.task: asyncio.Task[None] | None = None

    async def pump(self) -> None:
        async for event in self.sub:
            self.dispatch(event)

    def dispatch(self, event: Message) -> None:
        listeners = {listener for route in self.routes.values() for listener in route}
        if listeners:
            _deliver(listeners, event, encode(event))

    def stop(self) -> None:
        """Nothing more to flush (subclasses hold timers)."""

    async def close(self) -> None:
        self.stop()
        if self.task is not None:
            await cancel_and_wait(self.task)
        await self.sub.close()


class _ChatChannel(_Channel):
    """A show's chat: each message to its lobby's members here and to the performers' feed."""

    def dispatch(self, event: Message) -> None:
        lobby = event.get("lobby")
        members = self.routes.get(lobby, set()) if isinstance(lobby, str) else set()
        feed = self.routes.get(FEED, set())
        if members or feed:
            _deliver(members | feed, event, encode(event))


class _ShowChannel(_Channel):
    """A show's events: reaction totals at once to performers, merged a few times a second to
    viewers (all a lobby's picture of the hall needs); everything else to everyone."""

    def __init__(self, channel: str, sub: Subscription) -> None:
        super().__init__(channel, sub)
        self._loop = asyncio.get_running_loop()
        self._viewers_due = 0.0
        self._pending: Message | None = None
        self._timer: asyncio.TimerHandle | None = None

    def dispatch(self, event: Message) -> None:
        if event.get("type") != "reactions":
            super().dispatch(event)
            return
        performers = self.routes.get(PERFORMERS)
        if performers:
            _deliver(performers, event, encode(event))
        if not self.routes.get(VIEWERS):
            return
        self._pending = event if self._pending is None else merge_reactions(self._pending, event)
        if self._loop.time() >= self._viewers_due:
            self._flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(self._viewers_due - self._loop.time(), self._flush)

    def _flush(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, None
        if pending is None:
            return
        self._viewers_due = self._loop.time() + VIEWER_REACTIONS_INTERVAL
        viewers = list(self.routes.get(VIEWERS, ()))
        text = encode(pending)
        slices = [viewers[i : i + SEND_SLICE] for i in range(0, len(viewers), SEND_SLICE)]
        if not slices:
            return
        gap = min(SLICE_GAP, VIEWER_REACTIONS_INTERVAL / 2 / len(slices))
        _deliver(slices[0], pending, text)
        for number, part in enumerate(slices[1:], start=1):
            self._loop.call_later(number * gap, _deliver, part, pending, text)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class EventRelay:
    """This node's subscriptions to bus channels and the listeners that follow them here."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._channels: dict[str, _Channel] = {}
        self._opening: dict[str, list[Any]] = {}  # channel: [lock, users]

    def following(self, channel: str) -> int:
        """How many listeners here follow ``channel`` (tests and metrics)."""
        entry = self._channels.get(channel)
        return 0 if entry is None else sum(len(r) for r in entry.routes.values())

    async def _follow(
        self, channel: str, route: str, listener: Listener, kind: type[_Channel]
    ) -> Unfollow:
        async with self._changing(channel):
            entry = self._channels.get(channel)
            if entry is None:
                entry = kind(channel, await self._bus.subscribe(channel))
                entry.task = asyncio.get_running_loop().create_task(
                    self._supervise(entry), name=f"relay-{channel}"
                )
                self._channels[channel] = entry
            entry.routes.setdefault(route, set()).add(listener)
        done = False

        async def unfollow() -> None:
            nonlocal done
            if done:
                return
            done = True
            async with self._changing(channel):
                current = self._channels.get(channel)
                if current is None:
                    return
                listeners = current.routes.get(route)
                if listeners is not None:
                    listeners.discard(listener)
                    if not listeners:
                        del current.routes[route]
                if not current.routes:
                    del self._channels[channel]
                    await current.close()

        return unfollow

    @contextlib.asynccontextmanager
    async def _changing(self, channel: str) -> AsyncIterator[None]:
        """One opening or closing of ``channel`` at a time; its lock lives while anyone uses it."""
        entry = self._opening.get(channel)
        if entry is None:
            entry = self._opening[channel] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._opening[channel]

    async def _supervise(self, entry: _Channel) -> None:
        """Pump a channel; should the pump ever fail, say so and go on pumping."""
        while True:
            try:
                await entry.pump()
                return  # the subscription was closed
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay.pump_failed", channel=entry.channel)
                await asyncio.sleep(1.0)

    async def follow_show(self, show_id: str, listener: Listener, *, performer: bool) -> Unfollow:
        """The show's events, with reaction totals at once (``performer``) or merged."""
        route = PERFORMERS if performer else VIEWERS
        return await self._follow(show_channel(show_id), route, listener, _ShowChannel)

    async def follow_chat(self, show_id: str, listener: Listener, lobby_id: str = FEED) -> Unfollow:
        """The chat of lobby ``lobby_id`` of the show (by default every lobby's: the feed)."""
        return await self._follow(show_chat_channel(show_id), lobby_id, listener, _ChatChannel)

    async def follow_lobby(self, lobby_id: str, listener: Listener) -> Unfollow:
        """The lobby's members, voice and removals."""
        return await self._follow(lobby_channel(lobby_id), EVERYONE, listener, _Channel)

    async def follow_screen(self, screen_id: str, listener: Listener) -> Unfollow:
        """Events for one care-home screen."""
        return await self._follow(screen_channel(screen_id), EVERYONE, listener, _Channel)

    async def follow_staff(self, key_id: str, listener: Listener) -> Unfollow:
        """Events for the phones of one staff key."""
        return await self._follow(staff_channel(key_id), EVERYONE, listener, _Channel)

    async def close(self) -> None:
        """End every subscription (shutdown)."""
        channels, self._channels = self._channels, {}
        for entry in channels.values():
            await entry.close()


def merge_reactions(a: Message, b: Message) -> Message:
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
