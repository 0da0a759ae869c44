"""Live captions: a helper at the studio types what is said, and every viewer of the show sees it.

A caption is one line of text on the show's channel (``show:{id}``), so it reaches viewers, screens
and the studio as the show's state does; nothing is stored (a late viewer sees the next line).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from aiohttp import web

from rooms.errors import InvalidInput, RateLimited, RoomsError
from rooms.ratelimit import TokenBucket
from rooms.shows import show_channel
from signaling.connection import Connection
from signaling.foyer import performing
from signaling.state import BUS
from signaling.ws import COMMANDS, Result

CAPTION_MAX = 300  # characters: two or three lines on a TV, enough for a sentence
# A helper sends a line per phrase, sometimes corrects one at once; more than this is a stuck key.
CAPTION_RATE, CAPTION_BURST = 3.0, 6


class CaptionTooLong(RoomsError):
    """Over :data:`CAPTION_MAX` characters."""

    code = "caption_too_long"


def clean_caption(text: object) -> str:
    """Caption text on one line, without control characters, trimmed ('' clears the caption)."""
    if not isinstance(text, str):
        raise InvalidInput("text must be a string")
    # line breaks become spaces (a caption is one line); other control characters go
    printable = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) != "Cc")
    kept = " ".join(printable.split())
    if len(kept) > CAPTION_MAX:
        raise CaptionTooLong(f"a caption is at most {CAPTION_MAX} characters")
    return kept


def caption_event(show_id: str, text: str) -> dict[str, Any]:
    """The event viewers get: the line to show now ('' = nothing)."""
    return {"type": "caption", "show": show_id, "text": text}


@COMMANDS.register("caption.send", text=str)
async def caption_send(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Show a caption line to everyone following the show (performer or host only)."""
    show_id = performing(conn)
    text = clean_caption(msg["text"])
    if conn.caption_bucket is None:
        conn.caption_bucket = TokenBucket(CAPTION_RATE, CAPTION_BURST)
    bucket = conn.caption_bucket
    wait = bucket.take()
    if wait:
        raise RateLimited("captions come a few a second at most", retry_after=wait)
    await request.app[BUS].publish(show_channel(show_id), caption_event(show_id, text))
    return {"text": text}
