"""Shows: what the programme lists, what a code leads to and what a performer broadcasts into."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from rooms import events
from rooms.bus import Bus, BusUnavailable
from rooms.codes import format_code, new_code, new_token, normalise_code
from rooms.errors import CodeSpaceExhausted, InvalidInput, ShowNotFound

TITLE_MAX = 200
DESCRIPTION_MAX = 2000
PERFORMER_MAX = 200
CODE_ATTEMPTS = 50
ENDED_RETENTION = 30 * 24 * 3600.0  # an ended show stays readable for organisers' reports
# A change of a show's record holds its lock this long at most (a node dying mid-change frees it).
CHANGE_LOCK_TTL = 5.0
CHANGE_RETRY = 0.01
CHANGE_ATTEMPTS = 300  # 3 s of waiting for another change to finish


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
        )


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

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def create(
        self,
        title: object,
        description: object = "",
        starts_at: object = None,
        performer: object = "",
    ) -> Show:
        """Create a scheduled show with a fresh code, performer token and stream key."""
        if not isinstance(title, str) or not title.strip():
            raise InvalidInput("title is required")
        if description is None:
            description = ""
        if not isinstance(description, str):
            raise InvalidInput("description must be text")
        if performer is None:
            performer = ""
        if not isinstance(performer, str):
            raise InvalidInput("performer must be text")
        show_id = secrets.token_urlsafe(12)
        draft = Show(
            id=show_id,
            title=title.strip(),
            description=description.strip(),
            starts_at=parse_starts_at(starts_at),
            state=ShowState.SCHEDULED,
            code="000000",
            performer_token=new_token(),
            stream_key=new_token(),
            created_at=datetime.now(UTC),
            performer=" ".join(performer.split()),
        )
        code = await self._reserve_code(show_id)
        show = replace(draft, code=code)
        await self._bus.set(f"show:{show.id}", show.to_record())
        await self._bus.set(_stream_key_index(show.stream_key), {"show": show.id})
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
            raise ShowNotFound("this show has ended")
        return show

    async def programme(self) -> list[Show]:
        """Shows that have not ended, live ones first, then by start time."""
        shows = []
        for key in await self._bus.keys("show:"):
            record = await self._bus.get(key)
            if record is not None:
                show = Show.from_record(record)
                if show.state is not ShowState.ENDED:
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
