"""Hostile input at the edges: JSON that is too deep, numbers too long, text that is not Unicode,
bodies sent half-way, pages reached by another path (garbage ICE candidates and offers trickled in
small writes: tests/test_whip.py). Each gets a clear error
and loses nothing: the WebSocket stays open, the HTTP API answers 4xx, never 500."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from signaling import bodies
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY

AUTH = {"Authorization": f"Bearer {ORGANISER_KEY}"}


async def reply_to(ws: aiohttp.ClientWebSocketResponse, raw: str) -> dict[str, Any]:  # type: ignore[type-arg]
    await ws.send_str(raw)
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=5)
        if message.get("type") == "result":
            return message


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 20_000,
        '{"id": 1, "type": "ping", "x": ' + "[" * 5_000 + "]" * 5_000 + "}",
        '{"id": 1, "type": "ping", "n": ' + "9" * 5_000 + "}",
        '{"id": 1, "type": "ping", "n": NaN}',
        '{"id": 1, "type": "ping", "n": 1e999}',
        '{"id": 1, "type": "ping", "note": "\\udc00"}',
        '{"id": 1, "type": "ping", "\\ud800": 1}',
    ],
    ids=["deep", "deep-field", "long-int", "nan", "infinite", "surrogate", "surrogate-key"],
)
async def test_hostile_json_on_the_socket_is_refused_and_the_socket_stays(
    client: TestClient,  # type: ignore[type-arg]
    raw: str,
) -> None:
    ws = await client.ws_connect("/ws")
    await ws.receive_json(timeout=2)  # hello
    refused = await reply_to(ws, raw)
    assert not refused["success"] and refused["error"]["code"] == "invalid_json", refused
    assert (await reply_to(ws, '{"id": 2, "type": "ping"}'))["result"] == {"pong": True}
    await ws.close()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 20_000,
        b'{"title": ' + b"9" * 5_000 + b"}",
        b'{"title": "Konsertti\\ud800"}',
        b'{"title": "x", "description": NaN}',
    ],
    ids=["deep", "long-int", "surrogate", "nan"],
)
async def test_hostile_json_over_http_is_400_not_500(
    client: TestClient,  # type: ignore[type-arg]
    body: bytes,
) -> None:
    response = await client.post(
        "/api/shows", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] == "invalid_json"
    # nothing was created
    assert (await (await client.get("/api/shows")).json())["shows"] == []


async def test_a_body_sent_half_way_gets_408_in_time(
    client: TestClient,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bodies, "BODY_TIMEOUT", 0.5)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = (
        "POST /api/shows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {ORGANISER_KEY}\r\nContent-Length: 100\r\n\r\n"
        '{"title": '
    )
    writer.write(head.encode())
    await writer.drain()
    try:
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    assert b" 408 " in status_line, status_line


async def test_pages_reached_under_static_carry_the_csp(client: TestClient) -> None:  # type: ignore[type-arg]
    for path in ("/static/pair.html", "/static/index.html", "/screen/pair", "/api/shows"):
        response = await client.get(path)
        assert response.status == 200, path
        policy = response.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, path


async def test_an_anonymous_viewer_cannot_claim_a_room(client: TestClient) -> None:  # type: ignore[type-arg]
    """A head count belongs to a paired care-home screen; three sockets once took the audience
    from 2 to 602."""
    created = await client.post("/api/shows", json={"title": "Laulut"}, headers=AUTH)
    code = (await created.json())["code"]
    ws = await client.ws_connect("/ws")
    await ws.receive_json(timeout=2)
    for claim in ('"head_count": 200', '"screen": true'):
        refused = await reply_to(
            ws, f'{{"id": 1, "type": "watch.join", "code": "{code}", {claim}}}'
        )
        assert refused["error"]["code"] == "forbidden", refused
    joined = await reply_to(ws, f'{{"id": 2, "type": "watch.join", "code": "{code}"}}')
    assert joined["result"]["me"]["head_count"] == 1
    await ws.close()


async def test_one_address_holds_a_bounded_number_of_sockets(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    from signaling.ws import MAX_SOCKETS_PER_ADDRESS

    sockets = [await client.ws_connect("/ws") for _ in range(MAX_SOCKETS_PER_ADDRESS)]
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/ws")
        assert refused.value.status == 429
        # another address (127.0.0.2 is loopback too) is not affected
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as other:
            async with other.ws_connect(client.make_url("/ws")) as ws:
                assert (await ws.receive_json(timeout=2))["type"] == "hello"
        # one closed, one more may come
        await sockets.pop().close()
        await eventually(lambda: _connects(client), 5)
    finally:
        for ws in sockets:
            await ws.close()


async def _connects(client: TestClient) -> bool:  # type: ignore[type-arg]
    try:
        ws = await client.ws_connect("/ws")
    except aiohttp.WSServerHandshakeError:
        return False
    await ws.close()
    return True
