"""Lobbies (foyers): small groups of a show's viewers who watch, chat and react together.

Everything lives on the bus, so lobbies span nodes: a lobby is a key, its members are presence keys
with an expiry that their connection refreshes. Occupancy is counted from live presence, so a
client that vanishes without saying goodbye frees its seat when its key expires, and an emptied
lobby closes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from rooms.bus import Bus
from rooms.errors import InvalidInput, RoomsError

DEFAULT_CAPACITY = 12
PRESENCE_TTL = 30.0  # seconds; a connection refreshes its presence well within this
NAME_MAX = 40
# Lobby codes avoid letters and digits that look alike (0/O, 1/I/L), so they can be read aloud.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LOBBY_CODE_LENGTH = 5


class LobbyFull(RoomsError):
    """The friend's lobby has no free seat."""

    code = "lobby_full"


class LobbyNotFound(RoomsError):
    """No lobby of this show has that code."""

    code = "lobby_not_found"


@dataclass(frozen=True, slots=True)
class Member:
    """Someone in a lobby: an opaque id, a chosen display name, the seats and heads they count."""

    id: str
    name: str
    head_count: int = 1
    role: str = "viewer"  # viewer | screen (a care-home TV: one seat, many heads)

    def public(self) -> dict[str, Any]:
        """What other lobby members see."""
        return {"id": self.id, "name": self.name, "head_count": self.head_count, "role": self.role}


@dataclass(frozen=True, slots=True)
class Lobby:
    """A lobby of a show, with the short code friends use to join it."""

    id: str
    show_id: str
    code: str
    capacity: int

    def public(self) -> dict[str, Any]:
        """What its members see."""
        return {"id": self.id, "show": self.show_id, "code": self.code, "capacity": self.capacity}


def clean_name(name: object) -> str:
    """A display name as chosen, trimmed; no more than :data:`NAME_MAX` characters."""
    if name is None:
        return ""
    if not isinstance(name, str):
        raise InvalidInput("name must be text")
    cleaned = " ".join(name.split())
    if len(cleaned) > NAME_MAX:
        raise InvalidInput(f"a name is at most {NAME_MAX} characters")
    return cleaned


class Lobbies:
    """Places viewers in lobbies and keeps track of who is where, on the bus."""

    def __init__(self, bus: Bus, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._bus = bus
        self.capacity = capacity

    async def join(self, show_id: str, member: Member, code: str | None = None) -> Lobby:
        """Seat ``member`` in a lobby of the show: the friend's lobby by ``code``, or the fullest
        lobby with a free seat, or a new one."""
        if code:
            lobby = await self.by_code(show_id, code)
            if await self.occupancy(lobby.id) >= lobby.capacity:
                raise LobbyFull("this lobby is full; join another")
            await self._present(lobby, member)
            return lobby
        best: tuple[int, Lobby] | None = None
        for lobby in await self.lobbies(show_id):
            seats = await self.occupancy(lobby.id)
            if seats < lobby.capacity and (best is None or seats > best[0]):
                best = (seats, lobby)
        lobby = best[1] if best is not None else await self._open(show_id)
        await self._present(lobby, member)
        return lobby

    async def _open(self, show_id: str) -> Lobby:
        for _ in range(20):
            code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(LOBBY_CODE_LENGTH))
            lobby = Lobby(secrets.token_urlsafe(9), show_id, code, self.capacity)
            if await self._bus.set(
                f"lobbycode:{show_id}:{code}", {"lobby": lobby.id}, only_new=True
            ):
                await self._bus.set(f"lobby:{show_id}:{lobby.id}", _record(lobby))
                return lobby
        raise RoomsError("no free lobby code")

    async def _present(self, lobby: Lobby, member: Member) -> None:
        await self._bus.set(
            f"member:{lobby.id}:{member.id}",
            {"name": member.name, "head_count": member.head_count, "role": member.role},
            ttl=PRESENCE_TTL,
        )

    async def refresh(self, lobby: Lobby, member: Member) -> None:
        """Keep ``member`` present (the connection calls this every few seconds)."""
        await self._present(lobby, member)

    async def leave(self, lobby: Lobby, member_id: str) -> bool:
        """``member`` leaves; the lobby closes when nobody is left. True if it closed."""
        await self._bus.delete(f"member:{lobby.id}:{member_id}")
        if await self.members(lobby.id):
            return False
        await self._bus.delete(f"lobby:{lobby.show_id}:{lobby.id}")
        await self._bus.delete(f"lobbycode:{lobby.show_id}:{lobby.code}")
        return True

    async def lobbies(self, show_id: str) -> list[Lobby]:
        """The show's open lobbies; lobbies whose members all vanished are closed on the way."""
        result = []
        for key in await self._bus.keys(f"lobby:{show_id}:"):
            record = await self._bus.get(key)
            if record is None:
                continue
            lobby = _lobby(record)
            if await self.members(lobby.id):
                result.append(lobby)
            else:
                await self._bus.delete(key)
                await self._bus.delete(f"lobbycode:{show_id}:{lobby.code}")
        return result

    async def by_code(self, show_id: str, code: str) -> Lobby:
        """The show's lobby with this code (case and spaces forgiven)."""
        wanted = "".join(code.split()).upper()
        entry = await self._bus.get(f"lobbycode:{show_id}:{wanted}")
        record = None if entry is None else await self._bus.get(f"lobby:{show_id}:{entry['lobby']}")
        if record is None:
            raise LobbyNotFound("no lobby has this code")
        return _lobby(record)

    async def members(self, lobby_id: str) -> list[Member]:
        """Who is in the lobby now."""
        members = []
        prefix = f"member:{lobby_id}:"
        for key in await self._bus.keys(prefix):
            value = await self._bus.get(key)
            if value is not None:
                members.append(
                    Member(
                        key[len(prefix) :],
                        str(value.get("name", "")),
                        int(value.get("head_count", 1)),
                        str(value.get("role", "viewer")),
                    )
                )
        return members

    async def occupancy(self, lobby_id: str) -> int:
        """Seats taken: one per member, a care-home screen included."""
        return len(await self.members(lobby_id))

    async def audience(self, show_id: str) -> int:
        """Everyone watching the show: heads, so a care-home screen counts its residents."""
        total = 0
        for lobby in await self.lobbies(show_id):
            total += sum(m.head_count for m in await self.members(lobby.id))
        return total


def _record(lobby: Lobby) -> dict[str, Any]:
    return {"id": lobby.id, "show": lobby.show_id, "code": lobby.code, "capacity": lobby.capacity}


def _lobby(record: dict[str, Any]) -> Lobby:
    return Lobby(
        str(record["id"]), str(record["show"]), str(record["code"]), int(record["capacity"])
    )
