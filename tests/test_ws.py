"""The WebSocket envelope: results, precise errors, Origin checks and going away on shutdown."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from clients.client import Session
from lampio_stream.app import create_app
from rooms.bus_memory import MemoryBus
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY, make_config, serve


async def connect(client: TestClient, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:  # type: ignore[type-arg]
    ws = await client.ws_connect("/ws", **kwargs)
    hello = await ws.receive_json(timeout=2)
    assert hello["type"] == "hello" and hello["protocol"] == 1
    return ws


async def ask(ws: aiohttp.ClientWebSocketResponse, message: Any) -> dict[str, Any]:
    if isinstance(message, str):
        await ws.send_str(message)
    else:
        await ws.send_json(message)
    reply: dict[str, Any] = await ws.receive_json(timeout=2)
    return reply


async def test_ping_and_show_lookup(client: TestClient) -> None:  # type: ignore[type-arg]
    created = await client.post(
        "/api/shows",
        json={"title": "Yhteislaulu"},
        headers={"Authorization": f"Bearer {ORGANISER_KEY}"},
    )
    code = (await created.json())["code"]
    ws = await connect(client)
    assert await ask(ws, {"id": 1, "type": "ping"}) == {
        "id": 1,
        "type": "result",
        "success": True,
        "result": {"pong": True},
    }
    reply = await ask(ws, {"id": 2, "type": "show.lookup", "code": code})
    assert reply["success"] and reply["result"]["show"]["title"] == "Yhteislaulu"
    assert "stream_key" not in reply["result"]["show"]
    await ws.close()


async def test_malformed_messages_get_precise_errors_and_the_connection_lives(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    ws = await connect(client)
    cases: list[tuple[Any, str]] = [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ({"type": "ping"}, "invalid_message"),
        ({"id": "1", "type": "ping"}, "invalid_message"),
        ({"id": 3, "type": "fly"}, "unknown_command"),
        ({"id": 4, "type": "show.lookup"}, "invalid_input"),
        ({"id": 5, "type": "show.lookup", "code": 123456}, "invalid_input"),
        ({"id": 6, "type": "show.lookup", "code": "000000"}, "show_not_found"),
    ]
    for message, code in cases:
        reply = await ask(ws, message)
        assert reply["type"] == "result" and reply["success"] is False, reply
        assert reply["error"]["code"] == code, (message, reply)
    await ws.send_bytes(b"\x00")
    assert (await ws.receive_json(timeout=2))["error"]["code"] == "invalid_message"
    assert (await ask(ws, {"id": 7, "type": "ping"}))["success"] is True
    await ws.close()


async def test_wrong_codes_over_the_websocket_share_the_address_limit(client: TestClient) -> None:  # type: ignore[type-arg]
    ws = await connect(client)
    for n in range(5):
        reply = await ask(ws, {"id": n, "type": "show.lookup", "code": "000000"})
        assert reply["error"]["code"] == "show_not_found"
    reply = await ask(ws, {"id": 9, "type": "show.lookup", "code": "000000"})
    assert reply["error"]["code"] == "rate_limited" and reply["error"]["retry_after"] > 0
    assert (await client.get("/api/shows/by-code/000000")).status == 429
    await ws.close()


async def test_message_flood_is_rate_limited_without_closing(client: TestClient) -> None:  # type: ignore[type-arg]
    ws = await connect(client)
    for n in range(60):
        await ws.send_json({"id": n, "type": "ping"})
    replies = [await ws.receive_json(timeout=2) for _ in range(60)]
    ok = [r for r in replies if r["success"]]
    limited = [r for r in replies if not r["success"]]
    assert 40 <= len(ok) < 60
    assert limited and all(r["error"]["code"] == "rate_limited" for r in limited)
    # Every request gets its own answer, refusals included: a client matches them by id.
    assert sorted(r["id"] for r in replies) == list(range(60))
    await ws.close()


async def test_oversized_message_closes_with_message_too_big(client: TestClient) -> None:  # type: ignore[type-arg]
    ws = await connect(client)
    await ws.send_str("x" * (65 * 1024))
    msg = await ws.receive(timeout=2)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING)
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    other = await connect(client)  # nobody else is harmed
    assert (await ask(other, {"id": 1, "type": "ping"}))["success"]
    await other.close()


async def test_foreign_origin_is_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    response = await client.get(
        "/ws",
        headers={
            "Origin": "https://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "origin_not_allowed"
    ws = await connect(client, headers={"Origin": "http://127.0.0.1:8080"})
    await ws.close()


async def test_shutdown_closes_websockets_with_going_away() -> None:
    app = create_app(make_config(), bus=MemoryBus())
    server = TestServer(app)
    client = TestClient(server)
    await client.start_server()
    ws = await connect(client)
    receiving = asyncio.create_task(ws.receive(timeout=5))  # clients read all the time
    await server.close()  # stops accepting, runs on_shutdown, then cleanup
    msg = await receiving
    assert msg.type is WSMsgType.CLOSE, msg
    assert ws.close_code == aiohttp.WSCloseCode.GOING_AWAY
    await client.close()


async def test_hello_offers_configured_ice_servers_with_turn_credentials(
    aiohttp_client: object,
) -> None:
    import base64
    import hashlib
    import hmac
    import time

    turn_urls = [
        "turn:127.0.0.1:3478?transport=udp",
        "turn:127.0.0.1:3478?transport=tcp",
        "turns:127.0.0.1:443?transport=tcp",
    ]
    config = make_config(ice_servers=("stun:127.0.0.1:3478", *turn_urls), turn_secret="s3cret")
    client: TestClient = await aiohttp_client(create_app(config, bus=MemoryBus()))  # type: ignore[operator,type-arg]
    ws = await client.ws_connect("/ws")
    hello = await ws.receive_json(timeout=2)
    stun, turn = hello["ice_servers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["urls"] == turn_urls  # one set of credentials for UDP, TCP and TLS, in this order
    expiry = int(turn["username"].split(":")[0])
    assert time.time() + 3600 < expiry < time.time() + 86400
    expected = hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(turn["credential"]) == expected
    await ws.close()


async def test_hello_offers_no_ice_servers_by_default(client: TestClient) -> None:  # type: ignore[type-arg]
    ws = await client.ws_connect("/ws")
    assert (await ws.receive_json(timeout=2))["ice_servers"] == []
    await ws.close()


async def test_a_closed_websocket_is_freed_without_the_cyclic_collector() -> None:
    """However a client leaves (a close frame, its socket ending without one, the socket ending
    while the node writes to it), the node's side of its WebSocket (response, request, protocol,
    transport, socket) is freed by reference counting: aiohttp leaves it in reference cycles
    (signaling/seams.py), and the node runs full collections seldom (bench/soak.py)."""
    async with serve() as node:
        show = await node.create_show()
        gc.collect()
        gc.disable()
        try:
            for leave in ("close", "drop", "drop while written to"):
                session = await Session.connect(node.url)
                await session.request("watch.join", code=show["code"])
                await eventually(lambda: node.open_sockets == 1, 5)
                ws = next(iter(node.services.connections)).ws
                held = [weakref.ref(ws), weakref.ref(ws._writer.transport)]  # type: ignore[union-attr]
                del ws
                if leave == "close":
                    await session.close()
                elif leave == "drop":
                    await session.drop()
                else:
                    session.stall()
                    pinged = [session.ws.ping() for _ in range(3)]
                    await asyncio.gather(*pinged)
                    await session.drop()
                await eventually(lambda: node.idle, 5, f"the node lets go ({leave})")
                freed = f"the socket is freed ({leave})"
                await eventually(lambda held=held: all(r() is None for r in held), 5, freed)
        finally:
            gc.enable()
