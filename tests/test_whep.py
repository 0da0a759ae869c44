"""WHEP through the real server: an aiortc player watches a live show and counts as a viewer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from media.ice import rtc_configuration
from tests.helpers import eventually, post
from tests.nodes import Node, serve, start_performer

pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    """One node on the in-process bus (both engines are covered by tests/test_live.py)."""
    async with serve() as running:
        yield running


class Player:
    """A WHEP player: receive-only offer, frames counted and sized."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(rtc_configuration())
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.frames: dict[str, int] = {"video": 0, "audio": 0}
        self.sizes: set[tuple[int, int]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.add(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if isinstance(frame, VideoFrame):
                    self.sizes.add((frame.width, frame.height))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()


async def test_whep_player_watches_counts_as_viewer_and_delete_leaves(node: Node) -> None:
    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")
    player = Player()
    try:
        status, headers, answer = await post(
            f"{node.url}/whep/{show['id']}",
            await player.offer(),
            **{"Content-Type": "application/sdp"},
        )
        assert status == 201, answer
        assert headers["Location"].startswith("/whep/session/")
        await player.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await eventually(lambda: player.frames["video"] >= 10 and player.frames["audio"] >= 5, 20)
        assert player.sizes == {(320, 240)}
        event = await performer.session.next_event("audience")
        while event["viewers"] != 1:
            event = await performer.session.next_event("audience")
        async with aiohttp.ClientSession() as http:
            async with http.delete(node.url + headers["Location"]) as r:
                assert r.status == 200
        await eventually(lambda: node.stage.viewers(show["id"]) == 0, 10)
        # by audience code too
        second = Player()
        status, _, answer = await post(
            f"{node.url}/whep/{show['code']}",
            await second.offer(),
            **{"Content-Type": "application/sdp"},
        )
        assert status == 201
        await second.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await eventually(lambda: second.frames["video"] >= 3, 20)
        await second.close()
    finally:
        await player.close()
        await performer.stop()
        await performer.session.close()


async def test_whep_errors(node: Node) -> None:
    show = await node.create_show()
    player = Player()
    offer = await player.offer()
    sdp = {"Content-Type": "application/sdp"}
    try:
        status, headers, text = await post(f"{node.url}/whep/{show['id']}", offer, **sdp)
        assert (status, "not_live") == (503, _code(text)) and headers["Retry-After"]
        status, _, text = await post(f"{node.url}/whep/nope", offer, **sdp)
        assert (status, _code(text)) == (404, "show_not_found")
        status, _, text = await post(f"{node.url}/whep/000000", offer, **sdp)
        if show["code"] != "000000":
            assert (status, _code(text)) == (404, "show_not_found")
        performer = await start_performer(node, show, "video/VP8")
        try:
            status, _, text = await post(
                f"{node.url}/whep/{show['id']}", offer, **{"Content-Type": "text/plain"}
            )
            assert (status, _code(text)) == (415, "unsupported_media_type")
            video_only = RTCPeerConnection(rtc_configuration())
            video_only.addTransceiver("video", direction="recvonly")
            await video_only.setLocalDescription(await video_only.createOffer())
            status, _, text = await post(
                f"{node.url}/whep/{show['id']}", video_only.localDescription.sdp, **sdp
            )
            assert (status, _code(text)) == (406, "unsupported_codec")
            await video_only.close()
            status, _, text = await post(f"{node.url}/whep/{show['id']}", "garbage", **sdp)
            assert (status, _code(text)) == (400, "invalid_sdp")
            assert node.stage.viewers(show["id"]) == 0  # nothing half-made
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{node.url}/whep/{show['id']}") as r:
                    assert r.status == 405
        finally:
            await performer.stop()
            await performer.session.close()
    finally:
        await player.close()


def _code(text: str) -> Any:
    import json

    return json.loads(text)["error"]["code"]


async def test_a_player_that_never_connects_is_dropped(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An offer with no usable candidates would hold its sockets and audience place for ever."""
    import media.stage

    monkeypatch.setattr(media.stage, "CONNECT_TIMEOUT", 1.0)
    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")
    player = Player()
    try:
        offer = "\r\n".join(
            line
            for line in (await player.offer()).split("\r\n")
            if not line.startswith(("a=candidate", "a=end-of-candidates"))
        )
        status, _, _ = await post(
            f"{node.url}/whep/{show['id']}", offer, **{"Content-Type": "application/sdp"}
        )
        assert status == 201
        assert node.stage.viewers(show["id"]) == 1
        await eventually(lambda: node.stage.viewers(show["id"]) == 0 and not node.whep_sessions, 10)
        assert node.stage.peer_count == 1  # only the performer's
    finally:
        await player.close()
        await performer.stop()
        await performer.session.close()


async def test_offers_that_never_connect_are_capped_per_address_and_count_for_nobody(
    node: Node,
) -> None:
    """A stranger's offers without usable candidates hold sockets for up to 30 s each: one
    address may have only a few connecting at once, and none of them is in the audience."""
    from signaling.whep import PENDING_PER_ADDRESS

    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")
    players = [Player() for _ in range(PENDING_PER_ADDRESS + 1)]
    try:
        for n, player in enumerate(players):
            offer = "\r\n".join(
                line
                for line in (await player.offer()).split("\r\n")
                if not line.startswith(("a=candidate", "a=end-of-candidates"))
            )
            status, headers, body = await post(
                f"{node.url}/whep/{show['id']}", offer, **{"Content-Type": "application/sdp"}
            )
            if n < PENDING_PER_ADDRESS:
                assert status == 201, body
            else:
                assert (status, _code(body)) == (429, "rate_limited")
                assert int(headers["Retry-After"]) > 0
        # none connected: they hold places on the stage, but the audience is as it was
        assert node.stage.viewers(show["id"]) == PENDING_PER_ADDRESS
        assert node.stage.players(show["id"]) == 0
        assert (await performer.session.next_event("audience"))["viewers"] == 0
    finally:
        for player in players:
            await player.close()
        await performer.stop()
        await performer.session.close()
