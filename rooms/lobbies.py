"""Lobbies (foyers): small groups of a show's viewers who watch, chat and react together.

Everything lives on the bus, so lobbies span nodes. A lobby's members are one bus group whose
members expire one by one (their connection refreshes them), and a show's open lobbies are another
group, so seating, counting and listing are one bus call each however big the audience is.
Occupancy is counted from live presence: a client that vanishes without saying goodbye frees its
seat when its presence expires, and an emptied lobby closes. A lobby's listing and its friends'
code expire too unless its members' connections renew them, so a node that dies with lobbies open
leaves nothing on the bus for good.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from rooms.bus import Bus, Opening
from rooms.errors import InvalidInput, RoomsError

DEFAULT_CAPACITY = 12
PRESENCE_TTL = 30.0  # seconds; a connection refreshes its presence well within this
# A lobby's listing in its show and its code last this long unless renewed: each member's connection
# renews them every RELIST_INTERVAL (rooms.foyer), the first member in at once.
LISTING_TTL = 10 * 60.0
RELIST_INTERVAL = 60.0
NAME_MAX = 40
# Lobby codes avoid letters and digits that look alike (0/O, 1/I/L), so they can be read aloud.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LOBBY_CODE_LENGTH = 5


class LobbyFull(RoomsError):
    """The friend's lobby has no free seat."""

    code = "lobby_full"


class NameTaken(RoomsError):
    """The display name is the performer's (or would pass for the show's own voice)."""

    code = "name_taken"


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
    # Which connection holds the seat: after a network cut the same member comes back on a new
    # connection, and the old one's late goodbye must not take the seat from under it.
    seat: str = ""

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


# Names a viewer may not take: they would pass for the show's own voice in the foyer.
RESERVED_NAMES = frozenset(
    name.casefold()
    for name in (
        "esiintyjä",
        "performer",
        "uppträdare",
        "artisti",
        "artist",
        "lämpiö",
        "lämpiö live",
        "ylläpito",
        "moderaattori",
        "moderator",
        "järjestäjä",
        "organiser",
        "arrangör",
    )
)


def clean_name(name: object, performer: str = "") -> str:
    """A display name as chosen: control and invisible (format) characters dropped, spaces
    collapsed, at most :data:`NAME_MAX` characters; not the performer's name nor a word that
    would pass for the show's own voice ('' for someone who gives none)."""
    if name is None:
        return ""
    if not isinstance(name, str):
        raise InvalidInput("name must be text")
    visible = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cn"))
    cleaned = " ".join(visible.split())
    if len(cleaned) > NAME_MAX:
        raise InvalidInput(f"a name is at most {NAME_MAX} characters")
    taken = cleaned.casefold()
    if taken in RESERVED_NAMES or (performer and taken == " ".join(performer.split()).casefold()):
        raise NameTaken("this name belongs to the show; choose another")
    return cleaned


class Lobbies:
    """Places viewers in lobbies and keeps track of who is where, on the bus."""

    def __init__(self, bus: Bus, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._bus = bus
        self.capacity = capacity

    async def join(self, show_id: str, member: Member, code: str | None = None) -> Lobby:
        """Seat ``member`` in a lobby of the show: the friend's lobby by ``code``, else where the
        member already sits, else the fullest lobby with a free seat, else a new one, chosen and
        taken in one bus step, so that joins racing on any number of nodes fill lobbies one by
        one and never past their capacity."""
        if code:
            return await self.join_friend(await self.by_code(show_id, code), member)
        for _ in range(20):
            new = Lobby(secrets.token_urlsafe(9), show_id, _new_code(), self.capacity)
            name, record, _ = await self._bus.group_seat(
                _lobbies(show_id),
                _members(""),
                member.id,
                _presence(member),
                ttl=PRESENCE_TTL,
                limit_field="capacity",
                opening=Opening(new.id, _record(new), LISTING_TTL, _code_key(show_id, new.code)),
            )
            if name == new.id:
                return new
            if name:
                return _lobby(record)
            # that friends' code is another lobby's: draw again
        raise RoomsError("no free lobby code")

    async def join_friend(self, lobby: Lobby, member: Member) -> Lobby:
        """Seat ``member`` in the friend's ``lobby`` (found by its code)."""
        if not await self._seat(lobby, member):
            raise LobbyFull("this lobby is full; join another")
        return lobby

    async def _seat(
        self, lobby: Lobby, member: Member, limit: bool = True, relist: bool = False
    ) -> bool:
        """Put ``member`` in (or keep it in) ``lobby``; False if the lobby is full. With
        ``relist``, the lobby's listing and code are renewed too."""
        seated = await self._bus.group_put(
            _members(lobby.id),
            member.id,
            _presence(member),
            ttl=PRESENCE_TTL,
            limit=lobby.capacity if limit else None,
        )
        if seated == 1 or (relist and seated > 0):
            # The first one in: the lobby may have been closed as empty just before, so list it
            # (again); listing is idempotent.
            await self._list(lobby)
        return seated > 0

    async def _list(self, lobby: Lobby) -> None:
        record = _record(lobby)
        await self._bus.group_put(_lobbies(lobby.show_id), lobby.id, record, ttl=LISTING_TTL)
        await self._bus.set(_code_key(lobby.show_id, lobby.code), record, ttl=LISTING_TTL)

    async def _close(self, lobby: Lobby) -> bool:
        """Unlist an empty lobby and free its code; True unless someone came in meanwhile."""
        await self._bus.group_remove(_lobbies(lobby.show_id), lobby.id)
        await self._bus.delete(_code_key(lobby.show_id, lobby.code))
        if (await self._bus.group_sizes([_members(lobby.id)]))[0]:
            await self._list(lobby)  # a friend sat down between the last goodbye and now
            return False
        return True

    async def refresh(self, lobby: Lobby, member: Member, *, relist: bool = False) -> None:
        """Keep ``member`` present (the connection calls this every few seconds); with
        ``relist`` renew the lobby's listing and code too (every :data:`RELIST_INTERVAL`)."""
        await self._seat(lobby, member, limit=False, relist=relist)

    async def leave(self, lobby: Lobby, member_id: str, seat: str | None = None) -> bool:
        """``member`` leaves; the lobby closes when nobody is left. True if it closed.

        With ``seat``, only if that connection still holds the seat (the member may have come
        back on another one meanwhile, which then keeps it).
        """
        if seat is not None:
            present = (await self._bus.group_members([_members(lobby.id)]))[0]
            held = present.get(member_id)
            if held is not None and held.get("seat", "") != seat:
                return False
        if await self._bus.group_remove(_members(lobby.id), member_id):
            return False
        return await self._close(lobby)

    async def _open_lobbies(self, show_id: str) -> list[tuple[int, Lobby]]:
        """The show's open lobbies with their seats taken; empty ones are closed on the way."""
        listed = [
            _lobby(r) for r in (await self._bus.group_members([_lobbies(show_id)]))[0].values()
        ]
        sizes = await self._bus.group_sizes([_members(lobby.id) for lobby in listed])
        result = []
        for lobby, seats in zip(listed, sizes, strict=True):
            if seats or not await self._close(lobby):
                result.append((seats, lobby))
        return sorted(result, key=lambda sl: sl[1].id)

    async def lobbies(self, show_id: str) -> list[Lobby]:
        """The show's open lobbies; lobbies whose members all vanished are closed on the way."""
        return [lobby for _, lobby in await self._open_lobbies(show_id)]

    async def by_code(self, show_id: str, code: str) -> Lobby:
        """The show's lobby with this code (case and spaces forgiven)."""
        wanted = "".join(code.split()).upper()
        record = await self._bus.get(_code_key(show_id, wanted))
        if record is None or "capacity" not in record:
            raise LobbyNotFound("no lobby has this code")
        return _lobby(record)

    async def members(self, lobby_id: str) -> list[Member]:
        """Who is in the lobby now."""
        present = (await self._bus.group_members([_members(lobby_id)]))[0]
        return [_member(member_id, value) for member_id, value in sorted(present.items())]

    async def occupancy(self, lobby_id: str) -> int:
        """Seats taken: one per member, a care-home screen included."""
        return (await self._bus.group_sizes([_members(lobby_id)]))[0]

    async def audience(self, show_id: str) -> int:
        """Everyone watching the show: heads, so a care-home screen counts its residents."""
        listed = (await self._bus.group_members([_lobbies(show_id)]))[0]
        present = await self._bus.group_members([_members(lobby_id) for lobby_id in listed])
        return sum(int(v.get("head_count", 1)) for lobby in present for v in lobby.values())


def _members(lobby_id: str) -> str:
    """The bus group of a lobby's members."""
    return f"members:{lobby_id}"


def _lobbies(show_id: str) -> str:
    """The bus group of a show's open lobbies."""
    return f"lobbies:{show_id}"


def _new_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(LOBBY_CODE_LENGTH))


def _code_key(show_id: str, code: str) -> str:
    return f"lobbycode:{show_id}:{code}"


def _presence(member: Member) -> dict[str, Any]:
    return {
        "name": member.name,
        "head_count": member.head_count,
        "role": member.role,
        "seat": member.seat,
    }


def _member(member_id: str, value: dict[str, Any]) -> Member:
    return Member(
        member_id,
        str(value.get("name", "")),
        int(value.get("head_count", 1)),
        str(value.get("role", "viewer")),
        str(value.get("seat", "")),
    )


def _record(lobby: Lobby) -> dict[str, Any]:
    return {"id": lobby.id, "show": lobby.show_id, "code": lobby.code, "capacity": lobby.capacity}


def _lobby(record: dict[str, Any]) -> Lobby:
    return Lobby(
        str(record["id"]), str(record["show"]), str(record["code"]), int(record["capacity"])
    )
