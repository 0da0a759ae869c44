"""A live show through the real server: aiortc performer → node → aiortc viewers, over WebSocket
signaling and WebRTC on loopback, with the Python client a bot or load generator would use."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from clients.client import ProtocolError, Session, Watcher
from media.ice import rtc_configuration
from tests.helpers import eventually
from tests.media.helpers import HEIGHT, WIDTH, MovingPatternTrack, ToneTrack
from tests.nodes import AV1_OFFER, Node, start_performer, start_viewer

pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"])
async def test_performer_to_five_viewers_decodes_video_and_audio(node: Node, codec: str) -> None:
    show = await node.create_show()
    performer = await start_performer(node, show, codec)
    viewers = [await start_viewer(node, show["code"]) for _ in range(5)]
    try:
        for viewer in viewers:
            await eventually(lambda v=viewer: v.video.frames >= 10 and v.audio.frames >= 10, 20)  # type: ignore[misc]
            assert viewer.video.sizes == {(WIDTH, HEIGHT)}
        # the performer sees the audience
        event = await performer.session.next_event("audience")
        while event["viewers"] != 5:
            event = await performer.session.next_event("audience")
        assert node.stage.viewers(show["id"]) == 5
        # every packet went out through the direct path, none through aiortc's sender loop
        for session in node.stage._viewers:
            for track in session.viewer.tracks:
                assert track.output is not None and track.output.sent_packets > 0
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{node.url}/metrics") as response,
        ):
            text = await response.text()
        assert "lampio_viewers 5.0" in text and "lampio_live_shows 1.0" in text
        assert "lampio_peer_connections 6.0" in text
    finally:
        for viewer in viewers:
            await viewer.close()
            await viewer.session.close()
        await performer.stop()
        await performer.session.close()


async def test_performer_leaves_and_returns_viewers_resume_without_rejoining(node: Node) -> None:
    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")
    viewer = await start_viewer(node, show["code"])
    try:
        await eventually(lambda: viewer.video.frames >= 5, 20)
        await performer.stop()
        paused = await viewer.session.next_event("show.state")
        while paused["state"] != "paused":
            paused = await viewer.session.next_event("show.state")
        before = viewer.video.frames
        await performer.start(
            show["id"], show["performer_token"], [MovingPatternTrack(), ToneTrack()], "video/VP8"
        )
        live = await viewer.session.next_event("show.state")
        assert live["state"] == "live"
        # same peer connection, no new offer: frames simply continue
        pc = viewer.pc
        await eventually(lambda: viewer.video.frames >= before + 10, 20)
        assert viewer.pc is pc
    finally:
        await viewer.close()
        await viewer.session.close()
        await performer.stop()
        await performer.session.close()


async def test_viewers_leaving_leak_no_peers_or_tasks(node: Node) -> None:
    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")
    first = await start_viewer(node, show["code"])
    viewers: list[Watcher] = []
    try:
        await eventually(lambda: first.video.frames >= 3, 20)
        peers_before = node.stage.peer_count
        tasks_before = len(asyncio.all_tasks())
        viewers = [await start_viewer(node, show["code"]) for _ in range(3)]
        for viewer in viewers:
            await eventually(lambda v=viewer: v.video.frames >= 3, 20)  # type: ignore[misc]
        assert node.stage.peer_count == peers_before + 3
        for viewer in viewers[:2]:
            await viewer.session.request("watch.leave")
            await viewer.close()
            await viewer.session.close()
        await viewers[2].close()
        await viewers[2].session.close()  # vanishes without saying goodbye
        await eventually(lambda: node.stage.peer_count == peers_before, 10)
        await eventually(lambda: node.stage.viewers(show["id"]) == 1, 10)
        await eventually(lambda: len(asyncio.all_tasks()) <= tasks_before, 10)
        frames = first.video.frames
        await eventually(lambda: first.video.frames > frames + 5, 10)  # the one left still watches
    finally:
        for viewer in [first, *viewers]:
            await viewer.close()
            await viewer.session.close()
        await performer.stop()
        await performer.session.close()


async def test_watch_and_perform_errors(node: Node) -> None:
    show = await node.create_show()
    session = await Session.connect(node.url)
    try:
        with pytest.raises(ProtocolError) as caught:
            await session.request("watch.start")
        assert caught.value.code == "invalid_input"
        joined = await session.request("watch.join", code=show["code"])
        assert joined["live"] is False and joined["show"]["state"] == "scheduled"
        with pytest.raises(ProtocolError) as caught:
            await session.request("watch.start")
        assert caught.value.code == "not_live"
        with pytest.raises(ProtocolError) as caught:
            await session.request("perform.start", show=show["id"], token="wrong", sdp="v=0")
        assert caught.value.code == "forbidden"
        with pytest.raises(ProtocolError) as caught:
            await session.request(
                "perform.start", show=show["id"], token=show["performer_token"], sdp="nonsense"
            )
        assert caught.value.code == "invalid_sdp"
        av1_only = AV1_OFFER
        with pytest.raises(ProtocolError) as caught:
            await session.request(
                "perform.start", show=show["id"], token=show["performer_token"], sdp=av1_only
            )
        assert caught.value.code == "unsupported_codec"
        assert "VP8 or H.264" in str(caught.value)
        no_fingerprint = "\r\n".join(
            line for line in AV1_OFFER.split("\r\n") if not line.startswith("a=fingerprint")
        )
        with pytest.raises(ProtocolError) as caught:
            await session.request(
                "perform.start", show=show["id"], token=show["performer_token"], sdp=no_fingerprint
            )
        assert caught.value.code == "invalid_sdp" and "fingerprint" in str(caught.value)
        assert node.stage.peer_count == 0  # nothing half-made was left behind
    finally:
        await session.close()


async def test_performer_ends_the_show_viewers_see_ended_and_code_is_freed(node: Node) -> None:
    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")
    viewer = await start_viewer(node, show["code"])
    try:
        await eventually(lambda: viewer.video.frames >= 3, 20)
        with pytest.raises(ProtocolError) as caught:
            await performer.session.request("perform.end", show=show["id"], token="nope")
        assert caught.value.code == "forbidden"
        result = await performer.session.request(
            "perform.end", show=show["id"], token=show["performer_token"]
        )
        assert result == {"state": "ended"}
        event = await viewer.session.next_event("show.state")
        while event["state"] != "ended":
            event = await viewer.session.next_event("show.state")
        await eventually(lambda: node.stage.peer_count == 0, 10)
        late = Watcher(await Session.connect(node.url))
        with pytest.raises(ProtocolError) as caught:
            await late.join(show["code"])
        assert caught.value.code == "show_not_found"
        await late.session.close()
    finally:
        await viewer.close()
        await viewer.session.close()
        await performer.stop()
        await performer.session.close()


async def test_a_bad_second_offer_leaves_the_performer_on_air(node: Node) -> None:
    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")
    viewer = await start_viewer(node, show["code"])
    intruder = await Session.connect(node.url)
    try:
        await eventually(lambda: viewer.video.frames >= 5, 20)
        # An offer in the right codecs that cannot be answered (RTCP not multiplexed).
        pc = RTCPeerConnection(rtc_configuration())
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        no_rtcp_mux = "\r\n".join(
            line for line in pc.localDescription.sdp.split("\r\n") if line != "a=rtcp-mux"
        )
        await pc.close()
        with pytest.raises(ProtocolError) as refused:
            await intruder.request(
                "perform.start", show=show["id"], token=show["performer_token"], sdp=no_rtcp_mux
            )
        assert refused.value.code == "invalid_sdp"
        frames = viewer.video.frames
        await eventually(lambda: viewer.video.frames >= frames + 10, 20)
        assert node.stage.live(show["id"])
        states = []
        while not viewer.session.events.empty():
            event = viewer.session.events.get_nowait()
            if event["type"] == "show.state":
                states.append(event["state"])
        assert "paused" not in states, states  # the show never paused
    finally:
        await intruder.close()
        await viewer.close()
        await viewer.session.close()
        await performer.stop()
        await performer.session.close()


async def test_a_host_moving_to_another_show_hears_only_of_that_one(node: Node) -> None:
    first, second = await node.create_show("Ensimmäinen"), await node.create_show("Toinen")
    host = await Session.connect(node.url)
    viewers = [await Session.connect(node.url) for _ in range(2)]
    try:
        await host.request("perform.host", show=first["id"], token=first["performer_token"])
        assert (await host.next_event("audience"))["show"] == first["id"]
        await host.request("perform.host", show=second["id"], token=second["performer_token"])
        await viewers[0].request("watch.join", code=first["code"], name="Ann")
        await viewers[1].request("watch.join", code=second["code"], name="Bo")
        # The first show's audience changed too: had the host still followed it, that figure
        # would come within a round. The second show's audience now changes three times, each
        # figure a round after the one before: whatever came meanwhile came in those rounds.
        seen: list[tuple[str, int]] = []
        await audience_until(host, second["id"], 1, seen)
        await viewers[1].request("watch.leave")
        await audience_until(host, second["id"], 0, seen)
        await viewers[1].request("watch.join", code=second["code"], name="Bo")
        await audience_until(host, second["id"], 1, seen)
        assert {show for show, _ in seen} == {second["id"]}, seen
    finally:
        for session in (host, *viewers):
            await session.close()


async def test_commands_are_answered_while_the_viewer_connection_negotiates(node: Node) -> None:
    """A viewer's peer connection takes a while to set up; meanwhile the same socket's ping and
    chat are answered without waiting for it (media commands run in their own lane)."""
    show = await node.create_show()
    performer = await start_performer(node, show, "video/VP8")
    viewer = Watcher(await Session.connect(node.url))
    try:
        await viewer.join(show["code"])
        answered: list[str] = []

        async def ask(name: str, type_: str, **fields: Any) -> dict[str, Any]:
            result = await viewer.session.request(type_, **fields)
            answered.append(name)
            return result

        offer, _, _ = await asyncio.gather(
            ask("watch.start", "watch.start"),
            ask("ping", "ping"),
            ask("chat.send", "chat.send", text="Hyvää iltaa", client_id="c-1"),
        )
        assert "sdp" in offer and sorted(answered) == ["chat.send", "ping", "watch.start"]
        # the ping, sent after the offer was asked for, is answered before the offer is made (a
        # chat message sent alongside is answered too; it may take a bus round trip longer)
        assert answered.index("ping") < answered.index("watch.start"), answered
    finally:
        await viewer.close()
        await viewer.session.close()
        await performer.stop()
        await performer.session.close()


async def audience_until(host: Session, show_id: str, viewers: int, seen: list[Any]) -> None:
    """Note the host's audience figures in ``seen`` until one says ``show_id`` has ``viewers``."""
    while True:
        event = await host.next_event("audience")
        seen.append((event["show"], event["viewers"]))
        if (event["show"], event["viewers"]) == (show_id, viewers):
            return
