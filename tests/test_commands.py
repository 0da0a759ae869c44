"""The command registry: every command's declared schema refuses bad fields before the handler runs,
with the field named, and the registry is built per app (no module-level table)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from lampio_stream.app import commands as all_commands
from rooms.errors import InvalidInput
from signaling import commands as c
from signaling.commands import Commands
from signaling.connection import LANE_DEPTH, Connection
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY


async def connect(client: TestClient) -> aiohttp.ClientWebSocketResponse:  # type: ignore[type-arg]
    ws = await client.ws_connect("/ws")
    assert (await ws.receive_json(timeout=2))["type"] == "hello"
    return ws


async def ask(ws: aiohttp.ClientWebSocketResponse, raw: str) -> dict[str, Any]:  # type: ignore[type-arg]
    await ws.send_str(raw)
    while True:  # events of the lobby may come before the reply
        reply: dict[str, Any] = await ws.receive_json(timeout=5)
        if reply.get("type") == "result":
            return reply


async def show_code(client: TestClient) -> str:  # type: ignore[type-arg]
    created = await client.post(
        "/api/shows",
        json={"title": "Tanssiaiset"},
        headers={"Authorization": f"Bearer {ORGANISER_KEY}"},
    )
    code: str = (await created.json())["code"]
    return code


async def test_bad_fields_are_refused_naming_the_field_and_the_socket_lives(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    code = await show_code(client)
    ws = await connect(client)
    cases = [
        ('{"id": 1, "type": "show.lookup"}', "'code' is required"),
        ('{"id": 2, "type": "show.lookup", "code": 123456}', "'code' must be text"),
        (f'{{"id": 3, "type": "watch.join", "code": "{code}", "head_count": 0}}', "'head_count'"),
        (f'{{"id": 4, "type": "watch.join", "code": "{code}", "head_count": true}}', "whole"),
        (f'{{"id": 5, "type": "watch.join", "code": "{code}", "screen": "yes"}}', "'screen'"),
        ('{"id": 7, "type": "react", "kind": "boo"}', "'kind' must be one of"),
        ('{"id": 8, "type": "chat.send", "text": "hei", "client_id": ""}', "'client_id'"),
        ('{"id": 9, "type": "voice.mic", "on": 1}', "'on' must be true or false"),
    ]
    for raw, expected in cases:
        reply = await ask(ws, raw)
        assert not reply["success"], raw
        assert reply["error"]["code"] == "invalid_input", (raw, reply)
        assert expected in reply["error"]["message"], (raw, reply)
    # a lone surrogate is JSON's but no text: refused before any command sees it, not stored
    surrogate = f'{{"id": 6, "type": "watch.join", "code": "{code}", "name": "A\\ud800"}}'
    reply = await ask(ws, surrogate)
    assert reply["error"]["code"] == "invalid_json" and "Unicode" in reply["error"]["message"]
    # undeclared fields are ignored, and the connection still works
    joined = await ask(
        ws, f'{{"id": 10, "type": "watch.join", "code": "{code}", "name": "Aili", "x": [1]}}'
    )
    assert joined["success"], joined
    assert joined["result"]["me"]["name"] == "Aili"
    await ws.close()


def test_schema_fills_defaults_and_drops_undeclared_fields() -> None:
    registry = Commands()

    async def handler(*_: Any) -> None:
        return None

    registry.add(
        "t",
        handler,
        {c.Required("a"): c.Text(3), c.Optional("n", default=2): c.Int(1, 5)},
    )
    command = registry.get("t")
    assert command is not None
    assert command.validate({"id": 1, "type": "t", "a": "abc", "z": 0}) == {"a": "abc", "n": 2}
    with pytest.raises(InvalidInput, match="'a' must be at most 3 characters"):
        command.validate({"a": "abcd"})
    with pytest.raises(InvalidInput, match="'n' must be 1–5"):
        command.validate({"a": "a", "n": 9})
    with pytest.raises(ValueError, match="twice"):
        registry.add("t", handler)
    with pytest.raises(ValueError, match="envelope"):
        registry.add("u", handler, {c.Required("id"): int})


def test_each_app_builds_its_own_registry_with_every_command() -> None:
    first, second = all_commands(), all_commands()
    assert first is not second
    for name in ("ping", "watch.join", "chat.send", "voice.join", "caption.send", "remote.open"):
        assert name in first and name in second
    assert len(first) == len(second) >= 30


async def test_a_connections_media_lane_keeps_order_and_is_bounded() -> None:
    """Offers run one at a time in the order sent, apart from the reader; a client that queues
    more than LANE_DEPTH of them gets the rest refused (the socket itself is not needed here)."""
    conn = Connection(None, "127.0.0.1")  # type: ignore[arg-type]
    gate = asyncio.Event()
    ran: list[int] = []

    def work(n: int) -> Any:
        async def run() -> None:
            await gate.wait()
            ran.append(n)

        return run

    accepted = [conn.in_lane(c.MEDIA, work(n)) for n in range(LANE_DEPTH + 3)]
    assert accepted == [True] * LANE_DEPTH + [False] * 3
    gate.set()
    await eventually(lambda: len(ran) == LANE_DEPTH, 5)
    assert ran == list(range(LANE_DEPTH))
    assert conn.in_lane(c.MEDIA, work(99))  # room again
    await eventually(lambda: ran[-1] == 99, 5)
