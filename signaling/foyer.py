"""The foyer over the WebSocket: a viewer's lobby, its members and chat, and the performer's
moderation. The domain is :mod:`rooms.lobbies` and :mod:`rooms.chat`; this module checks who may do
what, keeps presence fresh and forwards the lobby's events to the client."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from typing import Any

from aiohttp import web

from rooms.bus import BusError
from rooms.chat import Chat, clean_text, lobby_channel
from rooms.errors import InvalidInput, RateLimited, RoomsError
from rooms.lobbies import PRESENCE_TTL, Lobbies, Lobby, LobbyNotFound, Member, clean_name
from rooms.ratelimit import TokenBucket
from rooms.reactions import BURST, INTERVAL, RATE, ReactionTally, check_kind
from rooms.shows import Show, show_channel
from signaling.connection import Connection
from signaling.followers import FOLLOWERS
from signaling.state import BUS
from signaling.ws import COMMANDS, Result

CHAT_RATE, CHAT_BURST = 1.0, 5
SESSION_TTL = 12 * 3600.0
HEAD_COUNT_MAX = 200


class AudienceCounter:
    """The show's head count, counted at most once per interval per node however many performer
    and host connections ask (counting walks the lobbies on the bus)."""

    def __init__(self, lobbies: Lobbies, interval: float = 1.0) -> None:
        self._lobbies = lobbies
        self._interval = interval
        self._cache: dict[str, tuple[float, int]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def count(self, show_id: str) -> int:
        """Heads watching ``show_id``, at most ``interval`` seconds old."""
        loop = asyncio.get_running_loop()
        async with self._locks.setdefault(show_id, asyncio.Lock()):
            cached = self._cache.get(show_id)
            if cached is not None and loop.time() - cached[0] < self._interval:
                return cached[1]
            heads = await self._lobbies.audience(show_id)
            self._cache[show_id] = (loop.time(), heads)
            return heads


LOBBIES: web.AppKey[Lobbies] = web.AppKey("lobbies")
AUDIENCE: web.AppKey[AudienceCounter] = web.AppKey("audience_counter")
TALLY: web.AppKey[ReactionTally] = web.AppKey("reaction_tally")
CHAT: web.AppKey[Chat] = web.AppKey("chat")


class NotPerformer(RoomsError):
    """Only the show's performer (or a host) may do this."""

    code = "forbidden"


async def enter_lobby(
    conn: Connection, request: web.Request, show: Show, msg: dict[str, Any]
) -> dict[str, Any]:
    """Seat the client in a lobby of ``show`` (a friend's by ``lobby`` code), keep its presence
    fresh and forward the lobby's events; returns what the client shows of its foyer."""
    app = request.app
    lobbies, bus = app[LOBBIES], app[BUS]
    name = clean_name(msg.get("name"))
    head_count = msg.get("head_count", 1)
    if not isinstance(head_count, int) or isinstance(head_count, bool):
        raise InvalidInput("head_count must be a whole number")
    if not 1 <= head_count <= HEAD_COUNT_MAX:
        raise InvalidInput(f"head_count must be 1–{HEAD_COUNT_MAX}")
    member_id = await _member_id(app, msg.get("session"))
    role = "screen" if head_count > 1 or msg.get("screen") is True else "viewer"
    member = Member(member_id, name, head_count, role, seat=conn.id)
    friend_code = msg.get("lobby")
    if friend_code is not None and not isinstance(friend_code, str):
        raise InvalidInput("lobby must be a lobby code")
    await conn.release("lobby")
    lobby = await lobbies.join(show.id, member, friend_code or None)
    conn.lobby, conn.member = lobby, member
    session = secrets.token_urlsafe(24)
    await bus.set(f"session:{session}", {"member": member.id}, ttl=SESSION_TTL)
    # Members and voice come on the lobby's channel; chat through this node's one subscription to
    # the show's chat, which hands it to the lobby's members here (both before the history is read,
    # so that nothing falls between).
    sub = await bus.subscribe(lobby_channel(lobby.id))
    followers = app[FOLLOWERS]
    await followers.follow_chat(show.id, conn, lobby.id)

    async def pump() -> None:
        async for event in sub:
            if event.get("type") == "member.removed" and event.get("member") == member.id:
                conn.send(event)
                conn.close_soon(4003, "removed by the performer")
                return
            conn.send(event)

    async def keep_present() -> None:
        while True:
            await asyncio.sleep(PRESENCE_TTL / 3)
            await lobbies.refresh(lobby, conn.member or member)  # a rename must stick

    pumping = conn.spawn(pump(), "lobby-events")
    refreshing = conn.spawn(keep_present(), "presence")

    async def leave() -> None:
        pumping.cancel()
        refreshing.cancel()
        await sub.close()
        await followers.unfollow_chat(show.id, conn, lobby.id)
        await lobbies.leave(lobby, member.id, seat=conn.id)
        conn.lobby = conn.member = None
        await _announce_members(app, lobby)

    conn.hold("lobby", leave)
    members = await _announce_members(app, lobby)
    return {
        "lobby": lobby.public(),
        "me": member.public(),
        "session": session,
        "members": members,
        "chat": await app[CHAT].history(lobby),
    }


async def _member_id(app: web.Application, session: object) -> str:
    """The member id of a returning client's session, or a new one."""
    if isinstance(session, str) and session:
        entry = await app[BUS].get(f"session:{session}")
        if entry is not None:
            return str(entry["member"])
    return secrets.token_urlsafe(9)


async def _announce_members(app: web.Application, lobby: Lobby) -> list[dict[str, Any]]:
    members = [m.public() for m in await app[LOBBIES].members(lobby.id)]
    await app[BUS].publish(
        lobby_channel(lobby.id), {"type": "lobby.members", "lobby": lobby.id, "members": members}
    )
    return members


def _seated(conn: Connection) -> tuple[Lobby, Member]:
    if conn.lobby is None or conn.member is None:
        raise InvalidInput("join a show first (watch.join)")
    return conn.lobby, conn.member


@COMMANDS.register("member.rename", name=str)
async def member_rename(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Change the display name the lobby sees (for someone who joined without one)."""
    lobby, member = _seated(conn)
    renamed = replace(member, name=clean_name(msg["name"]))
    await request.app[LOBBIES].refresh(lobby, renamed)
    conn.member = renamed
    await _announce_members(request.app, lobby)
    return {"me": renamed.public()}


@COMMANDS.register("chat.send", text=str, client_id=str)
async def chat_send(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Post to the lobby's chat; the reply (the message's id) comes once the bus has stored it."""
    lobby, member = _seated(conn)
    clean_text(msg["text"])  # a refused message does not use up the sender's allowance
    if conn.chat_bucket is None:
        conn.chat_bucket = TokenBucket(CHAT_RATE, CHAT_BURST)
    wait = conn.chat_bucket.take()
    if wait:
        raise RateLimited("one message a second, please", retry_after=wait)
    posted = await request.app[CHAT].post(lobby, member, msg["text"], msg["client_id"])
    return {"id": posted.id, "duplicate": posted.duplicate}


@COMMANDS.register("chat.history")
async def chat_history(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """What the lobby said after ``after`` (a message id the client saw), to resume."""
    lobby, _ = _seated(conn)
    after = msg.get("after", "0-0")
    if not isinstance(after, str):
        raise InvalidInput("after must be a message id")
    try:
        return {"messages": await request.app[CHAT].history(lobby, after)}
    except Exception as exc:  # a malformed id
        raise InvalidInput("after must be a message id") from exc


# -- the performer's side -------------------------------------------------------------------------


def performing(conn: Connection) -> str:
    """The show this connection performs or hosts; :class:`NotPerformer` if none."""
    if conn.performing is None:
        raise NotPerformer("only the show's performer may do this")
    return conn.performing


async def follow_show_chat(conn: Connection, request: web.Request, show_id: str) -> None:
    """The performer's feed: every lobby's chat of the show."""
    await conn.release("chat-feed")
    followers = request.app[FOLLOWERS]
    await followers.follow_chat(show_id, conn)

    async def stop() -> None:
        await followers.unfollow_chat(show_id, conn)

    conn.hold("chat-feed", stop)


async def _lobby_of_show(request: web.Request, show_id: str, lobby_id: object) -> Lobby:
    if not isinstance(lobby_id, str):
        raise InvalidInput("lobby is required")
    for lobby in await request.app[LOBBIES].lobbies(show_id):
        if lobby.id == lobby_id:
            return lobby
    raise LobbyNotFound("no such lobby in this show")


@COMMANDS.register("chat.delete", lobby=str, message=str)
async def chat_delete(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Remove a message for everyone (performer)."""
    show_id = performing(conn)
    lobby = await _lobby_of_show(request, show_id, msg["lobby"])
    await request.app[CHAT].delete(lobby, msg["message"])
    return {}


@COMMANDS.register("chat.mute", member=str)
async def chat_mute(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Pause (``muted: false`` resumes) one viewer's chat (performer)."""
    show_id = performing(conn)
    muted = msg.get("muted", True)
    if not isinstance(muted, bool):
        raise InvalidInput("muted must be true or false")
    await request.app[CHAT].mute(show_id, msg["member"], muted)
    return {"muted": muted}


@COMMANDS.register("viewer.remove", lobby=str, member=str)
async def viewer_remove(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Remove a viewer from the show (performer): their connection is closed, wherever it is."""
    show_id = performing(conn)
    lobby = await _lobby_of_show(request, show_id, msg["lobby"])
    await request.app[CHAT].mute(show_id, msg["member"])
    await request.app[BUS].publish(
        lobby_channel(lobby.id),
        {"type": "member.removed", "lobby": lobby.id, "member": msg["member"]},
    )
    await request.app[LOBBIES].leave(lobby, msg["member"])
    return {}


# -- reactions ------------------------------------------------------------------------------------


@COMMANDS.register("react", kind=str)
async def react(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Applaud, laugh, send a heart or a bravo (2 a second, bursts of 10)."""
    lobby, _ = _seated(conn)
    kind = check_kind(msg["kind"])
    if conn.reaction_bucket is None:
        conn.reaction_bucket = TokenBucket(RATE, BURST)
    wait = conn.reaction_bucket.take()
    if wait:
        raise RateLimited("a moment, please", retry_after=wait)
    request.app[TALLY].add(lobby.show_id, lobby.id, kind)
    return {}


async def publish_reactions(app: web.Application, node: str) -> None:
    """Every :data:`INTERVAL`, this node's reaction totals per show, on the show's channel."""
    tally, bus = app[TALLY], app[BUS]
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        # A fixed schedule: the time spent publishing does not stretch the interval.
        due += INTERVAL
        await asyncio.sleep(max(0.0, due - loop.time()))
        due = max(due, loop.time() - INTERVAL)  # after a stall, do not try to catch up
        for show_id, totals in tally.drain().items():
            event = {"type": "reactions", "show": show_id, "node": node, **totals}
            try:
                await bus.publish(show_channel(show_id), event)
            except BusError:
                pass  # the bus is away: these clicks are lost, the next ones go through
