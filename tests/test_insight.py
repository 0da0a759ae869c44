"""What an organiser learns after a show, through the real server on both bus engines: a show with
reactions at known moments, chat, two lobbies, a care-home screen with its head count, and
feedback; the insight JSON and CSV hold exactly those figures, and nothing per person.

The insight's clock is moved by the test (two minutes of a show in a second); everything else is
real: the viewers' commands over WebSocket, the reaction totals every 50 ms, the audience samples
of the performer's node, the counts flushed to the bus."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from clients.client import ProtocolError, Session
from rooms.bus import Bus
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY, Node, serve

AUTH = {"Authorization": f"Bearer {ORGANISER_KEY}"}
T0 = 1_800_000_000.0  # a minute's start


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 5

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def node(bus: Bus) -> AsyncIterator[Node]:
    async with serve(bus, lobby_size=2) as running:
        yield running


async def post(node: Node, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(node.url + path, json=body, headers=AUTH) as response,
    ):
        assert response.status == 201, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def test_the_insight_holds_exactly_what_happened(node: Node) -> None:
    clock = Clock()
    insight = node.services.insight
    insight.clock = clock
    show = await post(node, "/api/shows", {"title": "Iltakonsertti"})
    staff = await post(node, "/api/staff-keys", {"label": "Hoivakoti Kuusela"})
    sessions: list[Session] = []

    async def connect() -> Session:
        session = await Session.connect(node.url)
        sessions.append(session)
        return session

    try:
        performer = await connect()
        await performer.request("perform.host", show=show["id"], token=show["performer_token"])
        # a paired care-home screen with a room of 12
        screen, phone = await connect(), await connect()
        hello = await screen.request("screen.hello")
        await phone.request("remote.open", key=staff["key"])
        paired = (await phone.request("screen.pair", code=hello["code"], name="Olohuone"))["screen"]
        await phone.request("remote.control", screen=paired["id"], head_count=12)
        await screen.request("screen.hello", token=hello["token"])

        viewers = [await connect() for _ in range(3)]
        joined = [
            await v.request("watch.join", code=show["code"], name=f"Katsoja {n}")
            for n, v in enumerate(viewers)
        ]
        on_screen = await screen.request(
            "watch.join", code=show["code"], screen=True, head_count=12, name="Olohuone"
        )
        lobbies = {j["lobby"]["id"] for j in [*joined, on_screen]}
        assert len(lobbies) >= 2

        counted: dict[str, int] = {}

        async def heard(kind: str, n: int) -> bool:
            """The performer has had ``n`` of ``kind`` in all (each event: a node's new ones)."""
            event = await performer.next_event("reactions")
            for name, more in event["counts"].items():
                counted[name] = counted.get(name, 0) + more
            return counted.get(kind, 0) >= n

        # minute 0: three claps and a message
        for _ in range(3):
            await viewers[0].request("react", kind="applause")
        await eventually(lambda: heard("applause", 3), 5)
        await viewers[0].request("chat.send", text="Hienoa!", client_id="a-1")
        await eventually(lambda: _sampled(node, show["id"], 0, 15), 10, "minute 0's audience")
        await insight.flush()

        # minute 1: two laughs and another message
        clock.now += 60
        for _ in range(2):
            await viewers[1].request("react", kind="laughter")
        await eventually(lambda: heard("laughter", 2), 5)
        await viewers[2].request("chat.send", text="Kiitos", client_id="c-1")
        await viewers[2].request("chat.send", text="Kiitos", client_id="c-1")  # a repeat: once
        await eventually(lambda: _sampled(node, show["id"], 1, 15), 10, "minute 1's audience")

        # feedback: one viewer changes their mind; staff answer for the room
        await viewers[0].request("feedback.send", score=5, comment="Ihana ilta!\x07")
        await viewers[1].request("feedback.send", score=4)
        await viewers[1].request("feedback.send", score=3)
        await phone.request("remote.feedback", screen=paired["id"], show=show["id"], score=5)
        for bad in (
            {"score": 0},
            {"score": 6},
            {"score": True},
            {"score": 4, "comment": "x" * 301},
        ):
            with pytest.raises(ProtocolError) as refused:
                await viewers[2].request("feedback.send", **bad)
            assert refused.value.code == "invalid_input", bad

        clock.now += 30  # everyone leaves at 1.5 minutes; the show ends
        for v in [*viewers, screen]:
            await v.close()
        await performer.request("perform.end", show=show["id"], token=show["performer_token"])
        async with aiohttp.ClientSession(node.url) as http:

            async def kept() -> dict[str, Any] | None:
                response = await http.get(f"/api/shows/{show['id']}/insight", headers=AUTH)
                report: dict[str, Any] = await response.json()
                return report if report["median_minutes_watched"] else None

            report = await eventually(kept, 10, "the figures kept at the end")
            csv_answer = await http.get(f"/api/shows/{show['id']}/insight.csv", headers=AUTH)
            assert csv_answer.status == 200 and csv_answer.content_type == "text/csv"
            rows = list(csv.reader(io.StringIO(await csv_answer.text())))
            other = await http.get(f"/api/shows/{show['id']}/insight")
            assert other.status == 401
    finally:
        for session in sessions:
            await session.close()

    assert report["peak_viewers"] == 15 and report["average_viewers"] == 15  # 3 + a room of 12
    assert (report["joins"], report["screens"], report["screen_heads"]) == (4, 1, 12)
    assert report["lobbies"] == len(lobbies)
    assert report["median_minutes_watched"] == 1.5  # 90 s each
    assert [(m["minute"], m["reactions"], m["chat_messages"]) for m in report["timeline"]] == [
        (0, {"applause": 3}, 1),
        (1, {"laughter": 2}, 1),
    ]
    assert report["feedback"] == {"1": 0, "2": 0, "3": 1, "4": 0, "5": 13}
    assert report["comments"] == ["Ihana ilta!"]
    text = str(report)
    for who in ("Katsoja", "Olohuone", joined[0]["me"]["id"]):
        assert who not in text  # nothing per person
    assert ["peak_viewers", "15"] in rows and ["screen_heads", "12"] in rows
    assert ["0", "15", "3", "0", "0", "0", "1", "0"] in rows
    assert ["1", "15", "0", "2", "0", "0", "1", "0"] in rows
    assert ["5", "13"] in rows and ["Ihana ilta!"] in rows


async def _sampled(node: Node, show_id: str, minute: int, viewers: int) -> bool:
    report = await node.services.insight.report(show_id)
    return any(m["viewers"] == viewers and m["minute"] == minute for m in report["timeline"])
