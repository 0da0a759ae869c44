"""Organisers: the cities and culture organisations that put shows on, each with its own key.

The admin (``--admin-key``) creates and revokes organisers; each organiser creates and manages
its own shows and staff keys. The node's ``--organiser-key``, where given, is the organiser
:data:`DEFAULT_ID` of the node's default city, kept in the configuration rather than on the bus.
Only a digest of a key is stored: a key can be checked, never read back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from rooms.bus import Bus
from rooms.codes import new_token
from rooms.errors import InvalidInput, RoomsError

NAME_MAX = 120
CITY_MAX = 60
DEFAULT_ID = "default"  # the organiser the node's own --organiser-key stands for


class OrganiserNotFound(RoomsError):
    """No organiser has this id (or it was revoked)."""

    code = "organiser_not_found"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def clean_text(value: object, limit: int, what: str) -> str:
    """Text as typed, whitespace runs made one space, 1–``limit`` characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    cleaned = " ".join(value.split())
    if not cleaned or len(cleaned) > limit:
        raise InvalidInput(f"{what} must be 1–{limit} characters")
    if any(not ch.isprintable() for ch in cleaned):
        raise InvalidInput(f"{what} must not hold control characters")
    return cleaned


def same_city(a: str, b: str) -> bool:
    """Cities compare as people write them: ``turku`` is ``Turku``."""
    return a.casefold() == b.casefold()


@dataclass(frozen=True, slots=True)
class Organiser:
    """A city or culture organisation that puts shows on."""

    id: str
    name: str
    city: str
    created_at: str

    def public(self) -> dict[str, Any]:
        """The organiser as the admin's list and the programme show it."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who a request acts as: the admin (every organiser's shows), or one organiser."""

    organiser: Organiser | None  # None: the admin

    @property
    def admin(self) -> bool:
        return self.organiser is None

    @property
    def organiser_id(self) -> str | None:
        """The organiser's id; None for the admin."""
        return None if self.organiser is None else self.organiser.id

    def may_manage(self, organiser_id: str) -> bool:
        """Whether this actor may change what ``organiser_id`` owns."""
        return self.organiser is None or self.organiser.id == organiser_id


class Organisers:
    """The organisers, on the bus (records live until the admin revokes them)."""

    def __init__(self, bus: Bus, default: Organiser | None = None) -> None:
        self._bus = bus
        self.default = default

    @property
    def default_id(self) -> str:
        """Whose shows and staff keys the admin makes unless it names someone."""
        return DEFAULT_ID if self.default is None else self.default.id

    async def create(self, name: object, city: object) -> tuple[Organiser, str]:
        """A new organiser and its key (returned this once only)."""
        organiser = Organiser(
            id=secrets.token_urlsafe(9),
            name=clean_text(name, NAME_MAX, "name"),
            city=clean_text(city, CITY_MAX, "city"),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        key = new_token()
        record = {**asdict(organiser), "digest": _digest(key)}
        # the index first: a record without its index is harmless, found by nobody's key
        await self._bus.set(f"organiserkey:{_digest(key)}", {"id": organiser.id})
        await self._bus.set(f"organiser:{organiser.id}", record)
        return organiser, key

    async def all(self) -> list[Organiser]:
        """Every organiser (the node's default one first), then oldest first."""
        found = []
        for name in await self._bus.keys("organiser:"):
            record = await self._bus.get(name)
            if record is not None:
                found.append(_organiser(record))
        found.sort(key=lambda o: (o.created_at, o.name))
        return ([self.default] if self.default is not None else []) + found

    async def get(self, organiser_id: str) -> Organiser:
        """The organiser with this id, or :class:`OrganiserNotFound`."""
        if self.default is not None and organiser_id == self.default.id:
            return self.default
        record = await self._bus.get(f"organiser:{organiser_id}")
        if record is None:
            raise OrganiserNotFound("no such organiser")
        return _organiser(record)

    async def by_key(self, key: str) -> Organiser | None:
        """The organiser whose key this is, if any."""
        hashed = _digest(key)
        entry = await self._bus.get(f"organiserkey:{hashed}")
        if entry is None:
            return None
        record = await self._bus.get(f"organiser:{entry['id']}")
        if record is None or not hmac.compare_digest(str(record["digest"]), hashed):
            return None
        return _organiser(record)

    async def revoke(self, organiser_id: str) -> Organiser:
        """Revoke an organiser's key (its shows stay, for the admin to manage)."""
        if self.default is not None and organiser_id == self.default.id:
            raise InvalidInput("the node's own organiser key is revoked by changing its setting")
        record = await self._bus.get(f"organiser:{organiser_id}")
        if record is None:
            raise OrganiserNotFound("no such organiser")
        await self._bus.delete(f"organiserkey:{record['digest']}")
        await self._bus.delete(f"hooksecret:{organiser_id}")  # its shop mints no more
        await self._bus.delete(f"organiser:{organiser_id}")
        return _organiser(record)


def _organiser(record: dict[str, Any]) -> Organiser:
    return Organiser(
        id=str(record["id"]),
        name=str(record["name"]),
        city=str(record["city"]),
        created_at=str(record["created_at"]),
    )
