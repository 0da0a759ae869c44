"""Live captions: a helper at the studio types what is said, and every viewer of the show sees it.

A caption is one line of text on the show's channel, so it reaches viewers, screens and the studio
as the show's state does; nothing is stored (a late viewer sees the next line).
"""

from __future__ import annotations

import unicodedata

from rooms import events
from rooms.bus import Bus
from rooms.errors import InvalidInput, RoomsError

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


async def send_caption(bus: Bus, show_id: str, text: object) -> str:
    """Show a caption line to everyone following the show; the line as sent."""
    line = clean_caption(text)
    await bus.publish(events.show_channel(show_id), events.caption(show_id, line))
    return line
