"""The foyer: seating a viewer in a lobby, keeping them present, renaming, leaving and removal,
and telling the lobby who is there.

Built on :mod:`rooms.lobbies` (who sits where, on the bus) and :mod:`rooms.chat`. A seat is one
member of one lobby held by one connection; a returning client's session brings back the same
member (and so its place in the chat).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from rooms import events
from rooms.bus import Bus, BusError
from rooms.chat import Chat
from rooms.lobbies import (
    PRESENCE_TTL,
    RELIST_INTERVAL,
    Lobbies,
    Lobby,
    LobbyNotFound,
    Member,
    clean_name,
)
from rooms.shows import Show
from rooms.supervise import every

log = structlog.get_logger(__name__)

SESSION_TTL = 12 * 3600.0
HEAD_COUNT_MAX = 200
REFRESH_INTERVAL = PRESENCE_TTL / 3
RETRY_MAX = 5.0  # seconds between presence retries while the bus is away


@dataclass(frozen=True, slots=True)
class Seating:
    """Where a viewer was seated: the lobby, who they are there, and their session to return."""

    lobby: Lobby
    member: Member
    session: str
    returning: bool = False  # the client came back with this session (it has it already)


class AudienceCounter:
    """The show's head count, counted at most once per interval per node however many performer
    and host connections ask (counting walks the lobbies on the bus)."""

    def __init__(self, lobbies: Lobbies, interval: float = 1.0) -> None:
        self._lobbies = lobbies
        self._interval = interval
        self._cache: dict[str, tuple[float, int]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def count(self, show_id: str) -> int:
        """Heads watching ``show_id``, at most ``interval`` seconds old."""
        loop = asyncio.get_running_loop()
        async with self._locks.setdefault(show_id, asyncio.Lock()):
            cached = self._cache.get(show_id)
            if cached is not None and loop.time() - cached[0] < self._interval:
                return cached[1]
            heads = await self._lobbies.audience(show_id)
            self._cache[show_id] = (loop.time(), heads)
            return heads


class Foyer:
    """Seating, presence and membership of a show's lobbies."""

    def __init__(self, bus: Bus, lobbies: Lobbies, chat: Chat) -> None:
        self._bus, self.lobbies, self.chat = bus, lobbies, chat

    async def seat(
        self,
        show: Show,
        seat: str,
        *,
        name: str | None = None,
        head_count: int = 1,
        screen: bool = False,
        session: str | None = None,
        friend: Lobby | None = None,
    ) -> Seating:
        """Seat a viewer (held by connection ``seat``) in a lobby of ``show``: the ``friend``'s
        lobby, else the fullest with room. A session that fails to be stored leaves no seat.

        A returning client's session keeps its token (its :data:`SESSION_TTL` starts again): a
        member holds one session however often it comes back, not one more for every join."""
        member_id, token, returning = await self._returning(session)
        role = "screen" if head_count > 1 or screen else "viewer"
        member = Member(member_id, clean_name(name, show.performer), head_count, role, seat=seat)
        if friend is not None:
            lobby = await self.lobbies.join_friend(friend, member)
        else:
            lobby = await self.lobbies.join(show.id, member)
        try:
            await self._bus.set(f"session:{token}", {"member": member.id}, ttl=SESSION_TTL)
        except BaseException:
            await self.lobbies.leave(lobby, member.id, seat=seat)
            raise
        return Seating(lobby, member, token, returning)

    async def forget_session(self, session: str) -> None:
        """Drop a session nobody was told of (a join that failed after the seat was taken); what
        the bus keeps meanwhile expires."""
        with contextlib.suppress(BusError):
            await self._bus.delete(f"session:{session}")

    async def _returning(self, session: str | None) -> tuple[str, str, bool]:
        """The member id and token of a returning client's live session, or new ones; whether it
        was a returning one."""
        if session:
            entry = await self._bus.get(f"session:{session}")
            if entry is not None:
                return str(entry["member"]), session, True
        return secrets.token_urlsafe(9), secrets.token_urlsafe(24), False

    async def announce(self, lobby: Lobby) -> list[dict[str, Any]]:
        """Tell the lobby who is in it now; the same list is returned."""
        members = [m.public() for m in await self.lobbies.members(lobby.id)]
        await self._bus.publish(
            events.lobby_channel(lobby.id), events.lobby_members(lobby.id, members)
        )
        return members

    async def leave(self, lobby: Lobby, member: Member) -> None:
        """The member's connection leaves the seat (unless they came back on another one)."""
        await self.lobbies.leave(lobby, member.id, seat=member.seat)
        await self.announce(lobby)

    async def rename(self, show: Show, lobby: Lobby, member: Member, name: str) -> Member:
        """The member's new display name, as the lobby sees it from now on."""
        renamed = replace(member, name=clean_name(name, show.performer))
        await self.lobbies.refresh(lobby, renamed)
        await self.announce(lobby)
        return renamed

    async def recount(self, lobby: Lobby, member: Member, head_count: int) -> Member:
        """A care-home screen's room changed size: the seat counts ``head_count`` from now on
        (the audience figures follow), and the lobby is told."""
        recounted = replace(member, head_count=head_count)
        await self.lobbies.refresh(lobby, recounted)
        await self.announce(lobby)
        return recounted

    async def keep_present(
        self,
        lobby: Lobby,
        member: Callable[[], Member],
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        """Refresh the member's presence for as long as they sit there (run as a task), except
        while ``paused()`` says so: a node that drains leaves the seat to the connection the
        member moves to, which a refresh from here would take back.

        The bus may go away for a while: the refresh is retried with growing pauses (at most
        :data:`RETRY_MAX` apart) and said once in the log, and the seat is kept (written again, if
        Redis came back empty) as soon as the bus is back. Every
        :data:`~rooms.lobbies.RELIST_INTERVAL` the refresh renews the lobby's listing and code
        too, which expire without it."""
        loop = asyncio.get_running_loop()
        listed = loop.time()

        async def refresh() -> None:
            nonlocal listed
            if paused():
                return
            relist = loop.time() - listed >= RELIST_INTERVAL
            await self.lobbies.refresh(lobby, member(), relist=relist)  # a rename must stick
            if relist:
                listed = loop.time()

        await every(
            REFRESH_INTERVAL,
            refresh,
            "presence.refresh",
            longest=RETRY_MAX,
            lobby=lobby.id,
            member=member().id,
        )

    async def lobby_of_show(self, show_id: str, lobby_id: str) -> Lobby:
        """The show's open lobby with this id."""
        for lobby in await self.lobbies.lobbies(show_id):
            if lobby.id == lobby_id:
                return lobby
        raise LobbyNotFound("no such lobby in this show")

    async def remove(self, show_id: str, lobby_id: str, member_id: str) -> None:
        """The performer removes a viewer from the show: their chat is muted, their connection
        (wherever it is) told and closed, their seat freed."""
        lobby = await self.lobby_of_show(show_id, lobby_id)
        await self.chat.mute(show_id, member_id)
        await self._bus.publish(
            events.lobby_channel(lobby.id), events.member_removed(lobby.id, member_id)
        )
        await self.lobbies.leave(lobby, member_id)

    async def listing(self, show_id: str) -> list[dict[str, Any]]:
        """The show's lobbies with who is in them (for the performer)."""
        listed = []
        for lobby in await self.lobbies.lobbies(show_id):
            members = [m.public() for m in await self.lobbies.members(lobby.id)]
            listed.append({**lobby.public(), "members": members})
        return listed
