"""The foyer over the WebSocket: a viewer's name, chat and reactions, and the performer's
moderation. The domain is :mod:`rooms.foyer`, :mod:`rooms.chat` and :mod:`rooms.reactions`."""

from __future__ import annotations

from rooms.chat import CHAT_MAX, clean_text
from rooms.errors import RateLimited
from rooms.insight import COMMENT_MAX
from rooms.lobbies import NAME_MAX
from rooms.reactions import KINDS
from signaling import commands as c
from signaling.commands import Commands, Message, Result
from signaling.connection import Connection
from signaling.roles import performer, viewer
from signaling.services import Services

CLIENT_ID_MAX = 64
ID_MAX = 64  # ids of members, lobbies and messages


async def member_rename(conn: Connection, services: Services, msg: Message) -> Result:
    """Change the display name the lobby sees (for someone who joined without one)."""
    role = viewer(conn)
    show = await services.shows.get(role.show_id)
    role.member = await services.foyer.rename(show, role.lobby, role.member, msg["name"])
    return {"me": role.member.public()}


async def chat_send(conn: Connection, services: Services, msg: Message) -> Result:
    """Post to the lobby's chat; the reply (the message's id) comes once the bus has stored it."""
    role = viewer(conn)
    clean_text(msg["text"])  # a refused message does not use up the sender's allowance
    wait = role.chat_bucket.take()
    if wait:
        raise RateLimited("one message a second, please", retry_after=wait)
    posted = await services.chat.post(role.lobby, role.member, msg["text"], msg["client_id"])
    if not posted.duplicate:
        services.insight.count(role.show_id, "chat")
    return {"id": posted.id, "duplicate": posted.duplicate}


async def chat_history(conn: Connection, services: Services, msg: Message) -> Result:
    """What the lobby said after ``after`` (a message id the client saw), to resume."""
    role = viewer(conn)
    messages, more = await services.chat.page(role.lobby, msg["after"])
    return {"messages": messages, "more": more}


async def chat_delete(conn: Connection, services: Services, msg: Message) -> Result:
    """Remove a message for everyone (performer)."""
    role = performer(conn)
    lobby = await services.foyer.lobby_of_show(role.show_id, msg["lobby"])
    await services.chat.delete(lobby, msg["message"])
    return {}


async def chat_mute(conn: Connection, services: Services, msg: Message) -> Result:
    """Pause (``muted: false`` resumes) one viewer's chat (performer)."""
    role = performer(conn)
    await services.chat.mute(role.show_id, msg["member"], msg["muted"])
    return {"muted": msg["muted"]}


async def viewer_remove(conn: Connection, services: Services, msg: Message) -> Result:
    """Remove a viewer from the show (performer): their connection is closed, wherever it is."""
    role = performer(conn)
    await services.foyer.remove(role.show_id, msg["lobby"], msg["member"])
    return {}


async def react(conn: Connection, services: Services, msg: Message) -> Result:
    """Applaud, laugh, send a heart or a bravo (2 a second, bursts of 10)."""
    role = viewer(conn)
    wait = role.reaction_bucket.take()
    if wait:
        raise RateLimited("a moment, please", retry_after=wait)
    services.tally.add(role.show_id, role.lobby.id, msg["kind"])
    return {}


async def feedback_send(conn: Connection, services: Services, msg: Message) -> Result:
    """The viewer's answer to "how was it?": a score 1–5 and perhaps a few words, anonymous (a
    second answer replaces the first)."""
    role = viewer(conn)
    member = role.member
    await services.insight.feedback(
        role.show_id, member.id, msg["score"], msg.get("comment"), member.head_count
    )
    return {"thanks": True}


def register(commands: Commands) -> None:
    """The foyer's commands."""
    member_id = {c.Required("member"): c.Text(ID_MAX)}
    lobby_id = {c.Required("lobby"): c.Text(ID_MAX)}
    commands.add("member.rename", member_rename, {c.Required("name"): c.Text(NAME_MAX * 4)})
    commands.add(
        "chat.send",
        chat_send,
        {
            c.Required("text"): c.Text(CHAT_MAX * 4),  # control characters go before the limit
            c.Required("client_id"): c.Text(CLIENT_ID_MAX, min_len=1),
        },
    )
    commands.add("chat.history", chat_history, {c.Optional("after", default="0-0"): c.MessageId})
    commands.add("chat.delete", chat_delete, {**lobby_id, c.Required("message"): c.MessageId})
    commands.add("chat.mute", chat_mute, {**member_id, c.Optional("muted", default=True): c.Bool})
    commands.add("viewer.remove", viewer_remove, {**lobby_id, **member_id})
    commands.add("react", react, {c.Required("kind"): c.OneOf(*KINDS)})
    commands.add(
        "feedback.send",
        feedback_send,
        {
            c.Required("score"): c.Int(1, 5),
            c.Optional("comment"): c.Nullable(c.Text(COMMENT_MAX * 4)),
        },
    )
