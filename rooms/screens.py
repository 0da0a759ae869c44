"""Care-home screens: staff keys, pairing a TV by a short code, and each screen's settings.

A screen (the TV in a common room) opens its page, gets a six-digit pairing code and a long token;
staff confirm the code once with the staff key their organiser issued. From then on the token opens
the screen's record. Everything lives on the bus, so the screen and the staff phone may be on
different nodes. Secrets are kept as SHA-256 digests only; records hold no personal data.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from rooms.bus import Bus
from rooms.codes import format_code, new_code, new_token, normalise_code
from rooms.errors import CodeSpaceExhausted, InvalidInput, RoomsError, ShowNotFound
from rooms.shows import Show, Shows, ShowState

PAIRING_LIFETIME = 10 * 60.0  # seconds a pairing code can be confirmed
# An expired code is kept this long after, so a late try is told "expired", not "wrong".
PAIRING_TOMBSTONE = 10 * 60.0
STATUS_TTL = 30.0  # a screen reports every 10 s; without news for this long it counts as away
LABEL_MAX = 100
NAME_MAX = 60
HEAD_COUNT_MAX = 200
CODE_ATTEMPTS = 50


class StaffKeyInvalid(RoomsError):
    """The staff key is not valid (never issued, or revoked)."""

    code = "forbidden"


class StaffKeyRevoked(StaffKeyInvalid):
    """The staff key was revoked while it paired a screen; that pairing was undone."""

    def __init__(self, screen_id: str) -> None:
        super().__init__("this staff key has been revoked")
        self.screen = screen_id


class StaffKeyNotFound(RoomsError):
    """No staff key has that id."""

    code = "staff_key_not_found"


class PairingNotFound(RoomsError):
    """No screen shows this pairing code."""

    code = "pairing_not_found"


class PairingExpired(RoomsError):
    """The pairing code was right but is too old; the screen shows a new one by itself."""

    code = "pairing_expired"


class ScreenNotFound(RoomsError):
    """No screen of this staff key has that id (or it was forgotten)."""

    code = "screen_not_found"


def digest(secret: str) -> str:
    """The stored form of a secret: a key can be checked, never read back."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StaffKey:
    """A key the organiser gave to one care home; ``label`` says whose it is."""

    id: str
    label: str
    created_at: str
    organiser: str = "default"  # who gave it (rooms.organisers): they alone list and revoke it

    def public(self) -> dict[str, Any]:
        """What the organiser and the staff see (never the key itself)."""
        return {
            "id": self.id,
            "label": self.label,
            "created_at": self.created_at,
            "organiser": self.organiser,
        }


@dataclass(frozen=True, slots=True)
class Screen:
    """A paired screen and what staff chose for it."""

    id: str
    name: str
    staff_key: str  # the id of the staff key that paired it
    show: str | None  # the chosen show's id; None: the next one in the programme
    head_count: int
    volume: int  # 0–100
    paired_at: str
    ticket: str | None = None  # a ticket staff gave it for its chosen (ticketed) show: the code
    # The room's camera, turned on by staff only (off when paired): "off", "lobby" (the foyer
    # sees the room while it may) or "performer" (the performer's audience wall too).
    camera: str = "off"

    def public(self) -> dict[str, Any]:
        """What the screen and the staff's phones see."""
        return {
            "id": self.id,
            "name": self.name,
            "show": self.show,
            "head_count": self.head_count,
            "volume": self.volume,
            "ticket": self.ticket,
            "camera": self.camera,
        }


@dataclass(frozen=True, slots=True)
class Pairing:
    """An open pairing: the code the screen shows, and (only when new) its token."""

    code: str
    screen: str
    expires_at: float
    token: str = ""

    def public(self, now: float) -> dict[str, Any]:
        """What the screen shows."""
        return {
            "code": self.code,
            "code_display": format_code(self.code),
            "expires_in": max(0, round(self.expires_at - now)),
        }


def clean_label(value: object, limit: int, what: str) -> str:
    """A short label as typed, trimmed, 1–``limit`` characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text")
    cleaned = " ".join(value.split())
    if not cleaned or len(cleaned) > limit:
        raise InvalidInput(f"{what} must be 1–{limit} characters")
    return cleaned


def check_head_count(value: object) -> int:
    """Residents watching a screen: a whole number 1–200."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("head_count must be a whole number")
    if not 1 <= value <= HEAD_COUNT_MAX:
        raise InvalidInput(f"head_count must be 1–{HEAD_COUNT_MAX}")
    return value


def check_volume(value: object) -> int:
    """A screen's volume: a whole number 0–100."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise InvalidInput("volume must be a whole number 0–100")
    return value


class Screens:
    """Staff keys, pairings and screens, on the bus."""

    def __init__(
        self,
        bus: Bus,
        *,
        pairing_lifetime: float = PAIRING_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bus = bus
        self.pairing_lifetime = pairing_lifetime
        self._clock = clock

    def now(self) -> float:
        """The clock pairing codes expire by (seconds)."""
        return self._clock()

    # -- staff keys -------------------------------------------------------------------------------

    async def issue_key(self, label: object, organiser: str = "default") -> tuple[StaffKey, str]:
        """A new staff key for a care home; the secret is returned this once only."""
        staff = StaffKey(
            id=secrets.token_urlsafe(9),
            label=clean_label(label, LABEL_MAX, "label"),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            organiser=organiser,
        )
        secret = new_token()
        await self._bus.set(f"staffkey:{staff.id}", {**asdict(staff), "digest": digest(secret)})
        await self._bus.set(f"staffkeydigest:{digest(secret)}", {"id": staff.id})
        return staff, secret

    async def staff_keys(self) -> list[StaffKey]:
        """Every staff key, oldest first."""
        keys = []
        for name in await self._bus.keys("staffkey:"):
            record = await self._bus.get(name)
            if record is not None:
                keys.append(_staff_key(record))
        return sorted(keys, key=lambda k: (k.created_at, k.label))

    async def staff_key(self, secret: str) -> StaffKey:
        """The staff key this secret is, or :class:`StaffKeyInvalid`."""
        hashed = digest(secret)
        entry = await self._bus.get(f"staffkeydigest:{hashed}")
        record = None if entry is None else await self._bus.get(f"staffkey:{entry['id']}")
        if record is None or not hmac.compare_digest(str(record["digest"]), hashed):
            raise StaffKeyInvalid("this staff key is not valid")
        return _staff_key(record)

    async def staff_key_by_id(self, key_id: str) -> StaffKey:
        """The staff key with this id, or :class:`StaffKeyInvalid` (revoked meanwhile)."""
        record = await self._bus.get(f"staffkey:{key_id}")
        if record is None:
            raise StaffKeyInvalid("this staff key has been revoked")
        return _staff_key(record)

    async def revoke_key(self, key_id: str) -> list[Screen]:
        """Revoke a staff key: it stops working at once and its screens are forgotten.

        The key goes first, then its screens: a pairing that passed the key check before and saves
        its screen after the scan sees the key gone and undoes itself (see :meth:`pair`)."""
        record = await self._bus.get(f"staffkey:{key_id}")
        if record is None:
            raise StaffKeyNotFound("no staff key has this id")
        await self._bus.delete(f"staffkeydigest:{record['digest']}")
        await self._bus.delete(f"staffkey:{key_id}")
        forgotten = []
        for screen in await self.of_staff(key_id):
            try:
                await self.forget(screen.id)
            except ScreenNotFound:
                continue  # forgotten meanwhile (from a phone, or by a pairing undoing itself)
            forgotten.append(screen)
        return forgotten

    # -- pairing ----------------------------------------------------------------------------------

    async def start_pairing(self) -> Pairing:
        """A new screen waiting to be paired: a free six-digit code and a fresh token."""
        token = new_token()
        now = self._clock()
        screen_id = secrets.token_urlsafe(9)
        expires_at = now + self.pairing_lifetime
        record = {"screen": screen_id, "token": digest(token), "expires_at": expires_at}
        for _ in range(CODE_ATTEMPTS):
            code = new_code()
            if await self._bus.set(
                f"pairing:{code}",
                {**record, "code": code},
                ttl=self.pairing_lifetime + PAIRING_TOMBSTONE,
                only_new=True,
            ):
                await self._bus.set(
                    f"pairingtoken:{digest(token)}", {"code": code}, ttl=self.pairing_lifetime
                )
                return Pairing(code, screen_id, expires_at, token)
        raise CodeSpaceExhausted("no free pairing code; try again")

    async def pairing_of(self, token: str) -> Pairing | None:
        """The open pairing of this token, if it has not expired."""
        entry = await self._bus.get(f"pairingtoken:{digest(token)}")
        if entry is None:
            return None
        record = await self._bus.get(f"pairing:{entry['code']}")
        if (
            record is None
            or not hmac.compare_digest(str(record["token"]), digest(token))
            or record["expires_at"] <= self._clock()
        ):
            return None
        return Pairing(record["code"], record["screen"], record["expires_at"])

    async def pair(
        self,
        staff: StaffKey,
        code_text: str,
        name: object = None,
        *,
        confirm: Callable[[], Awaitable[None]] | None = None,
    ) -> Screen:
        """Confirm the code a screen shows: the screen becomes this staff key's. ``confirm`` is
        awaited once the code is found right, before anything changes (a rate limit's say)."""
        code = normalise_code(code_text)
        record = await self._bus.get(f"pairing:{code}")
        if record is None or record.get("paired"):
            raise PairingNotFound("no screen shows this code")
        if record["expires_at"] <= self._clock():
            raise PairingExpired("this code is too old; the screen shows a new one")
        if confirm is not None:
            await confirm()
        if name is None or name == "":
            name = f"TV {len(await self.of_staff(staff.id)) + 1}"  # a word in fi, sv and en
        screen = Screen(
            id=record["screen"],
            name=clean_label(name, NAME_MAX, "name"),
            staff_key=staff.id,
            show=None,
            head_count=1,
            volume=80,
            paired_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        # Claimed once: the code's record stays (marked) until it expires, so it is not reused.
        claimed = {**record, "paired": True}
        remaining = record["expires_at"] - self._clock() + PAIRING_TOMBSTONE
        await self._bus.set(f"pairing:{code}", claimed, ttl=max(1.0, remaining))
        await self._bus.delete(f"pairingtoken:{record['token']}")
        await self._save(screen, record["token"])
        await self._bus.set(f"screentoken:{record['token']}", {"screen": screen.id})
        # The key may have been revoked since it was checked: the revocation deletes the key before
        # it looks for the key's screens, so if the key is still here now, that look finds this
        # screen; if it is gone, the look may have missed it, so the pairing undoes itself.
        if await self._bus.get(f"staffkey:{staff.id}") is None:
            try:
                await self.forget(screen.id)
            except ScreenNotFound:
                pass  # the revocation found it after all
            raise StaffKeyRevoked(screen.id)
        return screen

    # -- screens ----------------------------------------------------------------------------------

    async def by_token(self, token: str) -> Screen | None:
        """The paired screen this token opens, or None."""
        hashed = digest(token)
        entry = await self._bus.get(f"screentoken:{hashed}")
        record = None if entry is None else await self._bus.get(f"screen:{entry['screen']}")
        if record is None or not hmac.compare_digest(str(record["token"]), hashed):
            return None
        return _screen(record)

    async def get(self, screen_id: str, staff_key: str | None = None) -> Screen:
        """The screen with this id (of this staff key, if given), or :class:`ScreenNotFound`."""
        record = await self._bus.get(f"screen:{screen_id}")
        if record is None or (staff_key is not None and record["staff_key"] != staff_key):
            raise ScreenNotFound("no such screen")
        return _screen(record)

    async def of_staff(self, key_id: str) -> list[Screen]:
        """The screens a staff key paired, by name."""
        screens = []
        for name in await self._bus.keys("screen:"):
            record = await self._bus.get(name)
            if record is not None and record["staff_key"] == key_id:
                screens.append(_screen(record))
        return sorted(screens, key=lambda s: (s.name, s.id))

    async def update(self, screen: Screen, **changes: Any) -> Screen:
        """Store new settings for a screen (the caller has checked the values)."""
        record = await self._bus.get(f"screen:{screen.id}")
        if record is None:
            raise ScreenNotFound("no such screen")
        updated = replace(_screen(record), **changes)
        await self._save(updated, str(record["token"]))
        # Forgotten meanwhile (forget drops the token first, then the record): do not bring it back.
        if await self._bus.get(f"screentoken:{record['token']}") is None:
            await self._bus.delete(f"screen:{screen.id}")
            raise ScreenNotFound("no such screen")
        return updated

    async def forget(self, screen_id: str) -> None:
        """Unpair a screen: its token stops working; it shows a new pairing code."""
        record = await self._bus.get(f"screen:{screen_id}")
        if record is None:
            raise ScreenNotFound("no such screen")
        await self._bus.delete(f"screentoken:{record['token']}")
        await self._bus.delete(f"screen:{screen_id}")
        await self._bus.delete(f"screenstatus:{screen_id}")

    async def _save(self, screen: Screen, token_digest: str) -> None:
        await self._bus.set(f"screen:{screen.id}", {**asdict(screen), "token": token_digest})

    # -- what a screen is doing -------------------------------------------------------------------

    async def report(self, screen_id: str, status: dict[str, Any]) -> None:
        """Remember what the screen says it is doing, for :data:`STATUS_TTL` seconds."""
        await self._bus.set(f"screenstatus:{screen_id}", status, ttl=STATUS_TTL)

    async def status(self, screen_id: str) -> dict[str, Any] | None:
        """What the screen last said, or None if it has been away for a while."""
        return await self._bus.get(f"screenstatus:{screen_id}")


def _staff_key(record: dict[str, Any]) -> StaffKey:
    return StaffKey(
        id=record["id"],
        label=record["label"],
        created_at=record["created_at"],
        organiser=record.get("organiser", "default"),
    )


def _screen(record: dict[str, Any]) -> Screen:
    return Screen(
        id=record["id"],
        name=record["name"],
        staff_key=record["staff_key"],
        show=record.get("show"),
        head_count=int(record["head_count"]),
        volume=int(record["volume"]),
        paired_at=record["paired_at"],
        ticket=record.get("ticket"),
        camera=str(record.get("camera", "off")),
    )


async def next_show(shows: Shows, screen: Screen) -> Show | None:
    """What the screen shows: the show staff chose while it is open, else the programme's first
    (live ones first, then the next to start)."""
    if screen.show is not None:
        try:
            chosen = await shows.get(screen.show)
        except ShowNotFound:
            chosen = None
        if chosen is not None and chosen.state is not ShowState.ENDED:
            return chosen
    programme = await shows.programme()
    return programme[0] if programme else None
