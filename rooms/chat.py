"""Lobby chat: stored on the bus before it is acknowledged, resumable, bounded and expiring."""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from typing import Any

from rooms import events
from rooms.bus import STREAM_START, Bus, StreamEntry
from rooms.errors import InvalidInput, RoomsError
from rooms.lobbies import Lobby, Member

CHAT_MAX = 500
STREAM_MAXLEN = 1000  # per lobby; a lobby of 12 does not say more during one show
DEFAULT_RETENTION = 24 * 3600.0
DEDUPE_TTL = 600.0
HISTORY_MAX = 200


class ChatTooLong(RoomsError):
    """Over :data:`CHAT_MAX` characters."""

    code = "chat_too_long"


class ChatMuted(RoomsError):
    """The performer has muted this viewer's chat."""

    code = "chat_muted"


def clean_text(text: object) -> str:
    """Chat text as typed, without control characters (line breaks kept), trimmed."""
    if not isinstance(text, str):
        raise InvalidInput("text must be a string")
    kept = "".join(
        ch for ch in text if ch == "\n" or not unicodedata.category(ch).startswith("C")
    ).strip()
    if not kept:
        raise InvalidInput("the message is empty")
    if len(kept) > CHAT_MAX:
        raise ChatTooLong(f"a message is at most {CHAT_MAX} characters")
    return kept


@dataclass(frozen=True, slots=True)
class Posted:
    """A stored message: its stream id, whether it was a repeat, and the event sent for it."""

    id: str
    duplicate: bool
    event: dict[str, Any]


class Chat:
    """Posting, reading and moderating lobby chat on the bus."""

    def __init__(self, bus: Bus, retention: float = DEFAULT_RETENTION) -> None:
        self._bus = bus
        self.retention = retention

    async def post(self, lobby: Lobby, member: Member, text: object, client_id: str) -> Posted:
        """Store a message, then announce it; a repeated ``client_id`` returns the first one."""
        body = clean_text(text)
        if not client_id or len(client_id) > 64:
            raise InvalidInput("client_id is required (at most 64 characters)")
        if await self._bus.get(f"muted:{lobby.show_id}:{member.id}") is not None:
            raise ChatMuted("the performer has paused your chat")
        message = {
            "member": member.id,
            "name": member.name,
            "text": body,
            "client_id": client_id,
            "at": round(time.time(), 3),
        }
        # Per lobby, member and client id: a client that reconnects and resends is still
        # recognised, and one member's ids never silence another's messages. The
        # bus stores the message and remembers the client id in one step, so a message is either
        # stored and recognised, or neither (the client's retry goes through).
        entry_id, repeat = await self._bus.append_once(
            f"chat:{lobby.id}",
            message,
            once=f"chatid:{lobby.id}:{member.id}:{client_id}",
            remember=DEDUPE_TTL,
            maxlen=STREAM_MAXLEN,
            ttl=self.retention,
        )
        if repeat:
            return Posted(entry_id, True, {})
        event = events.chat_message(lobby.id, lobby.code, entry_id, message)
        await self._bus.publish(events.show_chat_channel(lobby.show_id), event)
        return Posted(entry_id, False, event)

    async def history(
        self, lobby: Lobby, after: str = STREAM_START, count: int = HISTORY_MAX
    ) -> list[dict[str, Any]]:
        """What happened after ``after``, oldest first: messages, and deletions of messages the
        client may already show (``chat.deleted``). Messages deleted in the same page are left out.
        """
        return (await self.page(lobby, after, count))[0]

    async def page(
        self, lobby: Lobby, after: str = STREAM_START, count: int = HISTORY_MAX
    ) -> tuple[list[dict[str, Any]], bool]:
        """:meth:`history`, and whether more came after this page."""
        count = min(count, HISTORY_MAX)
        entries = await self._bus.read(f"chat:{lobby.id}", after, count)
        return self._events(lobby, entries), len(entries) >= count

    async def recent(self, lobby: Lobby, count: int = HISTORY_MAX) -> list[dict[str, Any]]:
        """The newest ``count`` entries' messages and deletions, oldest first: what a newcomer
        sees."""
        entries = await self._bus.read(
            f"chat:{lobby.id}", count=min(count, HISTORY_MAX), newest=True
        )
        return self._events(lobby, entries)

    @staticmethod
    def _events(lobby: Lobby, entries: list[StreamEntry]) -> list[dict[str, Any]]:
        deleted = {e.message["deleted"] for e in entries if "deleted" in e.message}
        result = []
        for e in entries:
            if "deleted" in e.message:
                result.append(events.chat_deleted(lobby.id, e.message["deleted"], e.id))
            elif e.id not in deleted:
                result.append(events.chat_message(lobby.id, lobby.code, e.id, e.message))
        return result

    async def delete(self, lobby: Lobby, entry_id: str) -> None:
        """Remove a message for everyone (a tombstone in the stream, an event to the clients)."""
        await self._bus.append(
            f"chat:{lobby.id}", {"deleted": entry_id}, maxlen=STREAM_MAXLEN, ttl=self.retention
        )
        event = events.chat_deleted(lobby.id, entry_id)
        await self._bus.publish(events.show_chat_channel(lobby.show_id), event)

    async def mute(self, show_id: str, member_id: str, muted: bool = True) -> None:
        """Pause (or resume) one viewer's chat for this show."""
        key = f"muted:{show_id}:{member_id}"
        if muted:
            await self._bus.set(key, {"muted": True}, ttl=self.retention)
        else:
            await self._bus.delete(key)
