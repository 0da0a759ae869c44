"""The WebSocket endpoint: Origin check, the JSON envelope and a registry of commands by ``type``.

The protocol is written down in ``docs/protocol.md``; every reply uses one envelope:
``{"id", "type": "result", "success", "result" | "error": {"code", "message"}}``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from rooms.bus import BusUnavailable
from rooms.errors import RateLimited, RoomsError
from rooms.ratelimit import TokenBucket
from signaling.connection import Connection
from signaling.errors import ApiError
from signaling.iceservers import client_ice_servers
from signaling.lookup import show_for_code
from signaling.state import METRICS, SITE

log = structlog.get_logger(__name__)

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MESSAGE_RATE = 20.0  # per second, per connection
MESSAGE_BURST = 40

Result = dict[str, Any] | None
CommandHandler = Callable[[Connection, web.Request, dict[str, Any]], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command: its handler and the fields it requires (name → type)."""

    handler: CommandHandler
    required: dict[str, type]


class Commands:
    """Commands keyed by message ``type``."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def register(
        self, message_type: str, /, **required: type
    ) -> Callable[[CommandHandler], CommandHandler]:
        """Decorator: register ``handler`` for messages of ``message_type``, with the fields it
        requires (any name but the envelope's ``id`` and ``type``)."""
        if {"id", "type"} & set(required):
            raise ValueError("'id' and 'type' belong to the envelope")

        def wrap(handler: CommandHandler) -> CommandHandler:
            self._commands[message_type] = Command(handler, required)
            return handler

        return wrap

    def get(self, name: str) -> Command | None:
        """The command for a type, if any."""
        return self._commands.get(name)


COMMANDS = Commands()


def result(msg_id: object, payload: Result) -> dict[str, Any]:
    """A success reply."""
    return {"id": msg_id, "type": "result", "success": True, "result": payload or {}}


def error(msg_id: object, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """An error reply."""
    return {
        "id": msg_id,
        "type": "result",
        "success": False,
        "error": {"code": code, "message": message, **extra},
    }


@COMMANDS.register("ping")
async def ping(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Answer with pong (clients use it to measure round trips and keep NATs open)."""
    return {"pong": True}


@COMMANDS.register("show.lookup", code=str)
async def show_lookup(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Find a show by its audience code; wrong codes count against this address's limit."""
    show = await show_for_code(request.app, conn.remote, msg["code"])
    return {"show": show.public()}


def check_origin(request: web.Request) -> None:
    """Browsers send Origin: only our own pages may connect. Non-browser clients send none."""
    origin = request.headers.get("Origin")
    if origin is not None and origin not in request.app[SITE].origins:
        raise ApiError(403, "origin_not_allowed", "this page's origin may not connect")


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """The signaling WebSocket."""
    check_origin(request)
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    conn = Connection(ws, request.remote or "unknown")
    connections = request.app[CONNECTIONS]
    connections.add(conn)
    metrics = request.app[METRICS]
    metrics.websockets.inc()
    conn.start()
    site = request.app[SITE]
    conn.send(
        {
            "type": "hello",
            "protocol": PROTOCOL_VERSION,
            "server": site.version,
            "ice_servers": client_ice_servers(site.ice_servers, site.turn_secret),
        }
    )
    bucket = TokenBucket(MESSAGE_RATE, MESSAGE_BURST)
    try:
        async for raw in ws:
            if raw.type is WSMsgType.TEXT:
                await handle_text(conn, request, raw.data, bucket)
            elif raw.type is WSMsgType.BINARY:
                metrics.ws_messages.labels(result="invalid_message").inc()
                conn.send(error(None, "invalid_message", "send JSON text messages"))
            elif raw.type is WSMsgType.ERROR:
                conn.log.info("ws.error", error=str(ws.exception()))
    finally:
        connections.discard(conn)
        metrics.websockets.dec()
        if ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
            conn.log.info("ws.message_too_big")
        # Shielded: a handler cancelled by a vanished client still releases what it held.
        await asyncio.shield(finish(conn))
    return ws


async def finish(conn: Connection) -> None:
    """Release a connection's sessions and subscriptions, then close its socket."""
    await conn.release_all()
    await conn.close()


def _id_of(text: str) -> int | None:
    """The message's id if it has a readable one (so that even a refusal reaches its request)."""
    try:
        msg = json.loads(text)
    except json.JSONDecodeError:
        return None
    msg_id = msg.get("id") if isinstance(msg, dict) else None
    return msg_id if isinstance(msg_id, int) and not isinstance(msg_id, bool) else None


async def handle_text(
    conn: Connection, request: web.Request, text: str, bucket: TokenBucket
) -> None:
    """Parse, validate and dispatch one message; every failure gets a precise error reply."""
    metrics = request.app[METRICS]
    wait = bucket.take()
    if wait:
        metrics.ws_messages.labels(result="rate_limited").inc()
        reply = error(_id_of(text), "rate_limited", "too many messages", retry_after=round(wait, 3))
        conn.send(reply)
        return
    try:
        msg = json.loads(text)
    except json.JSONDecodeError:
        metrics.ws_messages.labels(result="invalid_json").inc()
        conn.send(error(None, "invalid_json", "the message is not valid JSON"))
        return
    if not isinstance(msg, dict):
        metrics.ws_messages.labels(result="invalid_message").inc()
        conn.send(error(None, "invalid_message", "a message is a JSON object"))
        return
    msg_id = msg.get("id")
    if (
        not isinstance(msg_id, int)
        or isinstance(msg_id, bool)
        or not isinstance(msg.get("type"), str)
    ):
        metrics.ws_messages.labels(result="invalid_message").inc()
        conn.send(
            error(
                msg_id if isinstance(msg_id, int) else None,
                "invalid_message",
                "a message needs an integer 'id' and a string 'type'",
            )
        )
        return
    command = COMMANDS.get(msg["type"])
    if command is None:
        metrics.ws_messages.labels(result="unknown_command").inc()
        conn.send(error(msg_id, "unknown_command", f"unknown type {msg['type']!r}"))
        return
    for field_name, field_type in command.required.items():
        if not isinstance(msg.get(field_name), field_type):
            metrics.ws_messages.labels(result="invalid_input").inc()
            conn.send(
                error(msg_id, "invalid_input", f"'{field_name}' must be {field_type.__name__}")
            )
            return
    try:
        payload = await command.handler(conn, request, msg)
    except RateLimited as exc:
        metrics.ws_messages.labels(result="rate_limited").inc()
        conn.send(error(msg_id, exc.code, str(exc), retry_after=round(exc.retry_after, 3)))
        return
    except BusUnavailable:
        metrics.ws_messages.labels(result="bus_unavailable").inc()
        conn.send(error(msg_id, "bus_unavailable", "briefly unavailable; try again soon"))
        return
    except RoomsError as exc:
        metrics.ws_messages.labels(result=exc.code).inc()
        conn.send(error(msg_id, exc.code, str(exc)))
        return
    except Exception:
        conn.log.exception("ws.command_failed", type=msg["type"])
        metrics.ws_messages.labels(result="internal_error").inc()
        conn.send(error(msg_id, "internal_error", "something went wrong on our side"))
        return
    metrics.ws_messages.labels(result="ok").inc()
    conn.send(result(msg_id, payload))


CONNECTIONS: web.AppKey[set[Connection]] = web.AppKey("ws_connections")


async def close_all(app: web.Application) -> None:
    """On shutdown: tell every client we are going away (they reconnect to another node)."""
    connections: set[Connection] = app[CONNECTIONS]
    for conn in tuple(connections):
        await conn.close(WSCloseCode.GOING_AWAY, "server shutting down")
