"""The WebSocket endpoint: Origin check, the JSON envelope and a registry of commands by ``type``.

The protocol is written down in ``docs/protocol.md``; every reply uses one envelope:
``{"id", "type": "result", "success", "result" | "error": {"code", "message"}}``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from rooms import events
from rooms.ratelimit import TokenBucket
from signaling import commands as c
from signaling import wirejson
from signaling.commands import Commands, Message, Result
from signaling.connection import Connection
from signaling.errors import ApiError, failure
from signaling.iceservers import client_ice_servers
from signaling.lookup import show_for_code
from signaling.seams import release_websocket
from signaling.services import SERVICES, Services

log = structlog.get_logger(__name__)

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MESSAGE_RATE = 20.0  # per second, per connection
MESSAGE_BURST = 40
# WebSockets of one address at once, on this node: a care home's tablets and TV share an address,
# a stranger's idle sockets would otherwise be kept without end.
MAX_SOCKETS_PER_ADDRESS = 64


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


async def ping(conn: Connection, services: Services, msg: Message) -> Result:
    """Answer with pong (clients use it to measure round trips and keep NATs open)."""
    return {"pong": True}


async def show_lookup(conn: Connection, services: Services, msg: Message) -> Result:
    """Find a show by its audience code; wrong codes count against this address's limit."""
    show = await show_for_code(services, conn.remote, msg["code"])
    return {"show": show.public()}


def register(commands: Commands) -> None:
    """The connection's own commands."""
    commands.add("ping", ping)
    commands.add("show.lookup", show_lookup, {c.Required("code"): c.Text(64)})


def check_origin(request: web.Request) -> None:
    """Browsers send Origin: only our own pages may connect. Non-browser clients send none."""
    origin = request.headers.get("Origin")
    if origin is not None and origin not in request.app[SERVICES].site.origins:
        raise ApiError(403, "origin_not_allowed", "this page's origin may not connect")


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """The signaling WebSocket."""
    check_origin(request)
    services = request.app[SERVICES]
    remote = request.remote or "unknown"
    per_address = services.sockets_per_address
    if per_address[remote] >= MAX_SOCKETS_PER_ADDRESS:
        raise ApiError(
            429,
            "rate_limited",
            f"at most {MAX_SOCKETS_PER_ADDRESS} connections from one address",
            {"Retry-After": "30"},
        )
    per_address[remote] += 1
    try:
        return await _serve(request, services, remote)
    finally:
        per_address[remote] -= 1
        if per_address[remote] <= 0:
            del per_address[remote]


async def _serve(request: web.Request, services: Services, remote: str) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    conn = Connection(ws, remote)
    services.connections.add(conn)
    metrics = services.metrics
    metrics.websockets.inc()
    conn.start()
    site = services.site
    ice_servers = client_ice_servers(site.ice_servers, site.turn_secret)
    conn.send(events.hello(PROTOCOL_VERSION, site.version, ice_servers))
    bucket = TokenBucket(MESSAGE_RATE, MESSAGE_BURST)
    try:
        async for raw in ws:
            if raw.type is WSMsgType.TEXT:
                await handle_text(conn, services, raw.data, bucket)
            elif raw.type is WSMsgType.BINARY:
                metrics.ws_messages.labels(result="invalid_message").inc()
                conn.send(error(None, "invalid_message", "send JSON text messages"))
            elif raw.type is WSMsgType.ERROR:
                conn.log.info("ws.error", error=str(ws.exception()))
    finally:
        services.connections.discard(conn)
        metrics.websockets.dec()
        if ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
            conn.log.info("ws.message_too_big")
        # Shielded: a handler cancelled by a vanished client still releases what it held; and
        # the node's shutdown waits for it before it closes the bus.
        await asyncio.shield(services.lifecycle.spawn(finish(conn, request), "ws-finish"))
    return ws


async def finish(conn: Connection, request: web.Request) -> None:
    """Release a connection's roles, close its socket, then free the socket of the cycles
    aiohttp leaves it in (however the handler ended, a vanished client's cancelled one too)."""
    await conn.release_all()
    await conn.close()
    release_websocket(request, conn.ws)


def _readable_id(msg_id: object) -> int | None:
    """An id as a reply carries it: an integer, else None (``true`` is no id)."""
    return msg_id if isinstance(msg_id, int) and not isinstance(msg_id, bool) else None


def _id_of(text: str) -> int | None:
    """The message's id if it has a readable one (so that even a refusal reaches its request)."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):  # malformed, or hostile: no id to read
        return None
    return _readable_id(msg.get("id")) if isinstance(msg, dict) else None


async def handle_text(conn: Connection, services: Services, text: str, bucket: TokenBucket) -> None:
    """Parse, validate and dispatch one message; every failure gets a precise error reply."""
    metrics = services.metrics
    wait = bucket.take()
    if wait:
        metrics.ws_messages.labels(result="rate_limited").inc()
        reply = error(_id_of(text), "rate_limited", "too many messages", retry_after=round(wait, 3))
        conn.send(reply)
        return
    try:
        msg = wirejson.loads(text)
    except wirejson.BadJson as exc:
        metrics.ws_messages.labels(result="invalid_json").inc()
        conn.send(error(_id_of(text), "invalid_json", f"the message is refused: {exc}"))
        return
    if not isinstance(msg, dict):
        metrics.ws_messages.labels(result="invalid_message").inc()
        conn.send(error(None, "invalid_message", "a message is a JSON object"))
        return
    msg_id = _readable_id(msg.get("id"))
    if msg_id is None or not isinstance(msg.get("type"), str):
        metrics.ws_messages.labels(result="invalid_message").inc()
        conn.send(
            error(msg_id, "invalid_message", "a message needs an integer 'id' and a string 'type'")
        )
        return
    command = services.commands.get(msg["type"])
    if command is None:
        metrics.ws_messages.labels(result="unknown_command").inc()
        conn.send(error(msg_id, "unknown_command", f"unknown type {msg['type']!r}"[:200]))
        return

    async def run() -> None:
        try:
            payload = await command.handler(conn, services, command.validate(msg))
        except Exception as exc:
            told = failure(exc)
            if told is None:
                conn.log.exception("ws.command_failed", type=msg["type"])
                metrics.ws_messages.labels(result="internal_error").inc()
                conn.send(error(msg_id, "internal_error", "something went wrong on our side"))
                return
            metrics.ws_messages.labels(result=told.code).inc()
            extra = {} if told.retry_after is None else {"retry_after": round(told.retry_after, 3)}
            conn.send(error(msg_id, told.code, told.message, **extra))
            return
        metrics.ws_messages.labels(result="ok").inc()
        conn.send(result(msg_id, payload))

    if command.lane is None:
        await run()
    elif not conn.in_lane(command.lane, run):
        metrics.ws_messages.labels(result="rate_limited").inc()
        conn.send(error(msg_id, "rate_limited", "too many offers at once", retry_after=1.0))


DRAIN_CHECK = 0.1  # seconds between looks at who is still here while draining
CLOSING_TIME = 2.0  # seconds of the shutdown timeout kept for closing what is left after a drain


def drain_window(shutdown_timeout: float) -> float:
    """How long clients get to move on SIGTERM: the shutdown timeout (``--shutdown-timeout``)
    less what closing the rest takes, so the node still exits within the timeout."""
    return max(0.0, shutdown_timeout - CLOSING_TIME)


async def drain(app: web.Application, within: float) -> None:
    """On SIGTERM, once the node no longer accepts connections: tell every client to move
    (``node.draining``) and give those with media up to ``within`` seconds to start again on
    another node and let go of this one (make before break). The shutdown then closes whoever
    is left with ``1001 going away``. Runs before aiohttp's own shutdown, which stops reading
    every connection: a client's goodbye would go unheard."""
    services = app[SERVICES]
    services.lifecycle.draining = True
    await services.nodes.drain()  # other nodes see it going before its clients do
    if within <= 0 or not services.connections:
        return
    text = json.dumps(events.node_draining(within), separators=(",", ":"))
    for conn in tuple(services.connections):
        conn.send_text(text)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    log.info("ws.draining", connections=len(services.connections), within=within)
    # Media ends in many ways (the client closes, leaves, stops): a look every tenth of a second
    # is simpler than an event from each of them, and it is only for these seconds.
    while loop.time() < deadline and any(  # noqa: ASYNC110
        c.has_media for c in services.connections
    ):
        await asyncio.sleep(DRAIN_CHECK)
    log.info("ws.drained", connections=len(services.connections))


async def close_all(services: Services) -> None:
    """On shutdown: tell every client we are going away (they reconnect to another node)."""
    for conn in tuple(services.connections):
        await conn.close(WSCloseCode.GOING_AWAY, "server shutting down")
