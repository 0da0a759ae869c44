"""Live captions over the WebSocket: the studio's helper sends a line, every viewer sees it
(:mod:`rooms.captions`)."""

from __future__ import annotations

from rooms.captions import CAPTION_MAX, clean_caption, send_caption
from rooms.errors import RateLimited
from signaling import commands as c
from signaling.commands import Commands, Message, Result
from signaling.connection import Connection
from signaling.roles import performer
from signaling.services import Services


async def caption_send(conn: Connection, services: Services, msg: Message) -> Result:
    """Show a caption line to everyone following the show (performer or host only)."""
    role = performer(conn)
    line = clean_caption(msg["text"])  # a refused line does not use up the allowance
    wait = role.caption_bucket.take()
    if wait:
        raise RateLimited("captions come a few a second at most", retry_after=wait)
    return {"text": await send_caption(services.bus, role.show_id, line)}


def register(commands: Commands) -> None:
    """The caption command."""
    # line breaks and control characters go before the limit is checked (rooms.captions)
    commands.add("caption.send", caption_send, {c.Required("text"): c.Text(CAPTION_MAX * 4)})
