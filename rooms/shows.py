"""Shows: what the programme lists, what a code leads to and what a performer broadcasts into."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from rooms import events
from rooms.bus import Bus, BusUnavailable
from rooms.codes import format_code, new_code, new_token, normalise_code
from rooms.errors import (
    CodeSpaceExhausted,
    InvalidInput,
    RoomsError,
    ShowCancelled,
    ShowNotFound,
)
from rooms.images import Picture
from rooms.organisers import CITY_MAX, DEFAULT_ID, clean_text, same_city

TITLE_MAX = 200
DESCRIPTION_MAX = 2000
PERFORMER_MAX = 200
CODE_ATTEMPTS = 50
ENDED_RETENTION = 30 * 24 * 3600.0  # an ended show stays readable for organisers' reports
CANCELLED_CODE_TTL = 7 * 24 * 3600.0  # a cancelled show's code says so this long, then is free
# A change of a show's record holds its lock this long at most (a node dying mid-change frees it).
CHANGE_LOCK_TTL = 5.0
CHANGE_RETRY = 0.01
CHANGE_ATTEMPTS = 300  # 3 s of waiting for another change to finish
CATEGORIES = ("concert", "theatre", "sing-along", "exercise", "talk", "quiz", "other")
ACCESS = ("open", "ticket")  # anyone with the show's code, or ticket holders only
QUERY_MAX = 100
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
# What an organiser may change in a show (PATCH), each checked by :meth:`Shows.checked`.
EDITABLE = frozenset(
    {"title", "description", "starts_at", "performer", "category", "language", "listed", "access"}
) | {"record"}


class ShowIsLive(RoomsError):
    """The show is on air: end it from the studio rather than cancel it."""

    code = "show_live"


class ShowState(enum.StrEnum):
    """Where a show is in its life."""

    SCHEDULED = "scheduled"
    LIVE = "live"
    PAUSED = "paused"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class Show:
    """One show, with its secrets; use :meth:`public` for anything a viewer may see."""

    id: str
    title: str
    description: str
    starts_at: datetime | None
    state: ShowState
    code: str
    performer_token: str
    stream_key: str
    created_at: datetime
    performer: str = ""  # who performs, as the programme names them
    organiser: str = DEFAULT_ID  # the organiser's id: who manages it
    city: str = ""
    category: str = "other"
    language: str = "fi"  # what the show is spoken or sung in (BCP 47, short)
    listed: bool = True  # in the public programme; unlisted: reachable by its code only
    access: str = "open"  # "ticket": only ticket holders take part
    cancelled: bool = False  # ended before it was given
    revision: int = 0  # one more at each change an organiser makes (calendars' SEQUENCE)
    image: str = ""  # the version of its picture (rooms.images), "" for none
    record: bool = False  # recorded for watching again (rooms.recordings): the organiser's choice

    def __post_init__(self) -> None:
        if not self.title or len(self.title) > TITLE_MAX:
            raise InvalidInput(f"title must be 1–{TITLE_MAX} characters")
        if len(self.description) > DESCRIPTION_MAX:
            raise InvalidInput(f"description must be at most {DESCRIPTION_MAX} characters")
        if len(self.performer) > PERFORMER_MAX:
            raise InvalidInput(f"performer must be at most {PERFORMER_MAX} characters")

    def public(self) -> dict[str, Any]:
        """What anyone may see: no tokens, no keys."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "performer": self.performer,
            "starts_at": None if self.starts_at is None else self.starts_at.isoformat(),
            "state": self.state.value,
            "code": self.code,
            "code_display": format_code(self.code),
            "city": self.city,
            "category": self.category,
            "language": self.language,
            "listed": self.listed,
            "access": self.access,
            "cancelled": self.cancelled,
            "image_url": (f"/api/shows/{self.id}/image.jpg?v={self.image}" if self.image else None),
            "record": self.record,
        }

    def to_record(self) -> dict[str, Any]:
        """The form stored on the bus."""
        record = asdict(self)
        record["state"] = self.state.value
        record["starts_at"] = None if self.starts_at is None else self.starts_at.isoformat()
        record["created_at"] = self.created_at.isoformat()
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Show:
        """Rebuild a show from its stored form."""
        starts = record.get("starts_at")
        return cls(
            id=record["id"],
            title=record["title"],
            description=record.get("description", ""),
            starts_at=None if starts is None else datetime.fromisoformat(starts),
            state=ShowState(record["state"]),
            code=record["code"],
            performer_token=record["performer_token"],
            stream_key=record["stream_key"],
            created_at=datetime.fromisoformat(record["created_at"]),
            performer=record.get("performer", ""),
            organiser=record.get("organiser", DEFAULT_ID),
            city=record.get("city", ""),
            category=record.get("category", "other"),
            language=record.get("language", "fi"),
            listed=bool(record.get("listed", True)),
            access=record.get("access", "open"),
            cancelled=bool(record.get("cancelled", False)),
            revision=int(record.get("revision", 0)),
            image=str(record.get("image", "")),
            record=bool(record.get("record", False)),
        )

    def matches(
        self,
        *,
        city: str | None = None,
        category: str | None = None,
        after: datetime | None = None,
        before: datetime | None = None,
        query: str | None = None,
    ) -> bool:
        """Whether the programme's filters let this show through (a show with no start time
        passes any time window: it may start whenever its performer is ready)."""
        if city is not None and not same_city(self.city, city):
            return False
        if category is not None and self.category != category:
            return False
        if self.starts_at is not None:
            if after is not None and self.starts_at < after:
                return False
            if before is not None and self.starts_at >= before:
                return False
        if query:
            words = query.casefold().split()
            text = " ".join((self.title, self.description, self.performer, self.city)).casefold()
            return all(word in text for word in words)
        return True


def _stream_key_index(stream_key: str) -> str:
    # The index holds a digest, so listing keys never reveals a stream key.
    return "streamkey:" + hashlib.sha256(stream_key.encode()).hexdigest()


def parse_starts_at(value: object) -> datetime | None:
    """An ISO 8601 time with a time zone (``Z`` or an offset), or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("starts_at must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(
            "starts_at must be an ISO 8601 time, like 2026-12-01T14:00:00+02:00"
        ) from exc
    if parsed.tzinfo is None:
        raise InvalidInput("starts_at needs a time zone, like +02:00 or Z")
    return parsed


class Shows:
    """The show registry, kept on the bus so every node sees the same shows and codes."""

    def __init__(self, bus: Bus, categories: tuple[str, ...] = CATEGORIES) -> None:
        self._bus = bus
        self.categories = categories

    def checked(self, fields: Mapping[str, object]) -> dict[str, Any]:
        """The editable fields given, each validated and in its stored form (InvalidInput)."""
        unknown = set(fields) - EDITABLE
        if unknown:
            raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
        out: dict[str, Any] = {}
        for name, value in fields.items():
            if name == "title":
                if not isinstance(value, str) or not value.strip():
                    raise InvalidInput("title is required")
                out[name] = value.strip()
            elif name in ("description", "performer"):
                if value is None:
                    value = ""
                if not isinstance(value, str):
                    raise InvalidInput(f"{name} must be text")
                out[name] = value.strip() if name == "description" else " ".join(value.split())
            elif name == "starts_at":
                out[name] = parse_starts_at(value)
            elif name == "category":
                if value not in self.categories:
                    raise InvalidInput(f"category must be one of: {', '.join(self.categories)}")
                out[name] = value
            elif name == "language":
                if not isinstance(value, str) or not _LANGUAGE.fullmatch(value):
                    raise InvalidInput("language must be a language tag, like fi, sv or en")
                out[name] = value
            elif name in ("listed", "record"):
                if not isinstance(value, bool):
                    raise InvalidInput(f"{name} must be true or false")
                out[name] = value
            elif name == "access":
                if value not in ACCESS:
                    raise InvalidInput(f"access must be one of: {', '.join(ACCESS)}")
                out[name] = value
        return out

    async def create(
        self,
        title: object,
        description: object = "",
        starts_at: object = None,
        performer: object = "",
        *,
        organiser: str = DEFAULT_ID,
        city: object = "",
        **details: object,
    ) -> Show:
        """Create a scheduled show with a fresh code, performer token and stream key
        (``details``: ``category``, ``language``, ``listed``, ``access``)."""
        fields = self.checked(
            {
                "title": title,
                "description": description,
                "starts_at": starts_at,
                "performer": performer,
                **details,
            }
        )
        show_id = secrets.token_urlsafe(12)
        draft = Show(
            id=show_id,
            state=ShowState.SCHEDULED,
            code="000000",
            performer_token=new_token(),
            stream_key=new_token(),
            created_at=datetime.now(UTC),
            organiser=organiser,
            city="" if city in ("", None) else clean_text(city, CITY_MAX, "city"),
            **fields,
        )
        code = await self._reserve_code(show_id)
        show = replace(draft, code=code)
        await self._bus.set(f"show:{show.id}", show.to_record())
        await self._bus.set(_stream_key_index(show.stream_key), {"show": show.id})
        return show

    async def edit(self, show_id: str, changes: Mapping[str, object]) -> tuple[Show, set[str]]:
        """Change what an organiser may change; the show as it is now and the fields that
        changed. Everyone following the show hears of it (``show.updated``)."""
        fields = self.checked(changes)
        async with self._changing(show_id):
            old = await self.get(show_id)
            if old.state is ShowState.ENDED:
                raise ShowNotFound("this show has ended")
            show = replace(old, **fields)
            changed = {name for name in fields if getattr(old, name) != getattr(show, name)}
            if changed:
                show = replace(show, revision=old.revision + 1)
                await self._bus.set(f"show:{show.id}", show.to_record())
        if changed:
            event = events.show_updated(show.public(), sorted(changed))
            await self._bus.publish(events.show_channel(show.id), event)
        return show, changed

    async def set_image(self, show_id: str, picture: Picture | None) -> Show:
        """Give the show its picture (None: take it away); everyone following it hears so."""
        async with self._changing(show_id):
            old = await self.get(show_id)
            if old.state is ShowState.ENDED:
                raise ShowNotFound("this show has ended")
            if picture is None:
                await self._bus.delete(f"showimage:{show_id}")
            else:
                stored = {"jpeg": picture.jpeg, "version": picture.version}
                await self._bus.set(f"showimage:{show_id}", stored)
            version = "" if picture is None else picture.version
            show = replace(old, image=version, revision=old.revision + 1)
            await self._bus.set(f"show:{show.id}", show.to_record())
        event = events.show_updated(show.public(), ["image"])
        await self._bus.publish(events.show_channel(show.id), event)
        return show

    async def image(self, show_id: str) -> tuple[bytes, str] | None:
        """The show's picture (JPEG) and its version, if it has one."""
        record = await self._bus.get(f"showimage:{show_id}")
        if record is None:
            return None
        return bytes(record["jpeg"]), str(record["version"])

    async def cancel(self, show_id: str) -> Show:
        """Call a show off before it is given: it ends, marked cancelled, and everyone who
        joined it hears so (``show.state`` ``ended`` with ``cancelled``). A live show is ended
        from the studio instead (:class:`ShowIsLive`)."""
        async with self._changing(show_id):
            current = await self.get(show_id)
            if current.state is ShowState.ENDED:
                raise ShowNotFound("this show has ended")
            if current.state is ShowState.LIVE:
                raise ShowIsLive("the show is on air: its performer ends it from the studio")
            cancelled = replace(current, cancelled=True, revision=current.revision + 1)
            show = await self._store_state(cancelled, ShowState.ENDED)
        event = events.show_state(show.id, show.state.value, cancelled=True)
        await self._bus.publish(events.show_channel(show.id), event)
        return show

    async def by_stream_key(self, stream_key: str) -> Show:
        """The show a stream key publishes to (OBS: WHIP/RTMP), or :class:`ShowNotFound`."""
        entry = await self._bus.get(_stream_key_index(stream_key))
        if entry is None:
            raise ShowNotFound("no show has this stream key")
        show = await self.get(str(entry["show"]))
        if not hmac.compare_digest(show.stream_key.encode(), stream_key.encode()):
            raise ShowNotFound("no show has this stream key")
        return show

    async def _reserve_code(self, show_id: str) -> str:
        # SET NX on the bus makes a code unique across nodes among shows that have not ended.
        for _ in range(CODE_ATTEMPTS):
            code = new_code()
            if await self._bus.set(f"code:{code}", {"show": show_id}, only_new=True):
                return code
        raise CodeSpaceExhausted("no free audience code; end old shows first")

    async def get(self, show_id: str) -> Show:
        """The show with this id, or :class:`ShowNotFound`."""
        record = await self._bus.get(f"show:{show_id}")
        if record is None:
            raise ShowNotFound("no such show")
        return Show.from_record(record)

    async def by_code(self, text: str) -> Show:
        """The open show a code leads to (spaces forgiven), or :class:`ShowNotFound`."""
        code = normalise_code(text)
        entry = await self._bus.get(f"code:{code}")
        if entry is None:
            raise ShowNotFound("no show has this code")
        show = await self.get(str(entry["show"]))
        if show.state is ShowState.ENDED:
            if show.cancelled:
                raise ShowCancelled("this show was cancelled")
            raise ShowNotFound("this show has ended")
        return show

    async def programme(
        self,
        *,
        listed_only: bool = True,
        organiser: str | None = None,
        with_cancelled: bool = False,
        ended: bool = False,
        **filters: Any,
    ) -> list[Show]:
        """Shows that have not ended, live ones first, then by start time: the listed ones
        (``listed_only``) or all, of one ``organiser`` or every one, through the filters of
        :meth:`Show.matches`; ``with_cancelled``: cancelled ones too (for 30 days); ``ended``:
        only the ended ones still kept (30 days), for the organiser's figures."""
        shows = []
        for key in await self._bus.keys("show:"):
            record = await self._bus.get(key)
            if record is not None:
                show = Show.from_record(record)
                is_ended = show.state is ShowState.ENDED
                if (
                    (is_ended if ended else not is_ended or (with_cancelled and show.cancelled))
                    and (show.listed or not listed_only)
                    and (organiser is None or show.organiser == organiser)
                    and show.matches(**filters)
                ):
                    shows.append(show)
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(
            shows, key=lambda s: (s.state is not ShowState.LIVE, s.starts_at or far, s.title)
        )

    async def rotate_stream_key(self, show_id: str) -> Show:
        """Give the show a new stream key; the old one stops working at once. An ended show
        has none to give (its record would lose its expiry, and the key would publish to it)."""
        async with self._changing(show_id):
            old = await self.get(show_id)
            if old.state is ShowState.ENDED:
                raise ShowNotFound("this show has ended")
            show = replace(old, stream_key=new_token())
            await self._bus.set(f"show:{show.id}", show.to_record())
            await self._bus.set(_stream_key_index(show.stream_key), {"show": show.id})
            await self._bus.delete(_stream_key_index(old.stream_key))
            return show

    async def set_state(self, show_id: str, state: ShowState) -> Show:
        """Move a show to ``state``; ending it frees its code for new shows."""
        async with self._changing(show_id):
            return await self._store_state(await self.get(show_id), state)

    async def move(
        self, show_id: str, state: ShowState, codecs: Mapping[str, str] | None = None
    ) -> Show | None:
        """Move a show to ``state`` and tell everyone following it (with the performer's codecs
        when it goes live). An ended show stays ended: a late "paused" from a closing connection
        must not reopen it (None then)."""
        async with self._changing(show_id):
            current = await self.get(show_id)
            if current.state is ShowState.ENDED:
                return None
            show = await self._store_state(current, state)
        event = events.show_state(show.id, show.state.value, codecs)
        await self._bus.publish(events.show_channel(show.id), event)
        return show

    async def _store_state(self, current: Show, state: ShowState) -> Show:
        show = replace(current, state=state)
        if state is ShowState.ENDED:
            await self._bus.set(f"show:{show.id}", show.to_record(), ttl=ENDED_RETENTION)
            await self._bus.delete(f"showimage:{show.id}")  # the programme shows it no more
            if show.cancelled:  # whoever types the code hears why, for a while
                await self._bus.set(f"code:{show.code}", {"show": show.id}, ttl=CANCELLED_CODE_TTL)
            else:
                await self._bus.delete(f"code:{show.code}")
            await self._bus.delete(_stream_key_index(show.stream_key))
        else:
            await self._bus.set(f"show:{show.id}", show.to_record())
        return show

    @contextlib.asynccontextmanager
    async def _changing(self, show_id: str) -> AsyncIterator[None]:
        """One change of a show's record at a time, across nodes: each change reads the record
        and writes it back, and two at once would lose one (a stream key rotated while the
        performer connects would leave neither the old key nor the new one working)."""
        key = f"showlock:{show_id}"
        token = secrets.token_hex(8)
        for _ in range(CHANGE_ATTEMPTS):
            if await self._bus.set(key, {"token": token}, ttl=CHANGE_LOCK_TTL, only_new=True):
                break
            await asyncio.sleep(CHANGE_RETRY)
        else:
            raise BusUnavailable("the show is being changed; try again")
        try:
            yield
        finally:
            held = await self._bus.get(key)
            if held is not None and held.get("token") == token:
                await self._bus.delete(key)
