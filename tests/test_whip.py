"""WHIP (RFC 9725) through the real server: an aiortc client publishing as OBS does, viewers
decoding it, and every status code the endpoint promises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from clients.client import Session, Watcher
from media.codecs import prefer_codec
from media.ice import rtc_configuration
from tests.audience import silence_then_applause
from tests.helpers import eventually, post
from tests.media.helpers import MovingPatternTrack, ToneTrack
from tests.nodes import AV1_OFFER, Node, serve, start_viewer

pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    """One node on the in-process bus (the bus engines are covered by tests/test_live.py)."""
    async with serve() as running:
        yield running


async def obs_like_offer() -> RTCPeerConnection:
    """An offer shaped like OBS's: audio first (Opus), then video (H.264), all candidates inside."""
    pc = RTCPeerConnection(rtc_configuration())
    prefer_codec(pc.addTransceiver(ToneTrack(), direction="sendonly"), "audio/opus")
    prefer_codec(pc.addTransceiver(MovingPatternTrack(), direction="sendonly"), "video/H264")
    await pc.setLocalDescription(await pc.createOffer())
    return pc


def as_obs_sends_it(sdp: str) -> str:
    """The offer renumbered as OBS 30's WHIP output writes it: audio mid 0 Opus pt 111, video mid 1
    a single H.264 pt 96 (no RTX)."""
    out = []
    video_pt = None
    for line in sdp.splitlines():
        if line.startswith("m=audio"):
            head, _ = line.rsplit(" ", 1)
            out.append(head + " 111")
            continue
        if line.startswith("m=video"):
            parts = line.split(" ")
            video_pt = parts[3]  # aiortc's first H.264 entry
            out.append(" ".join([*parts[:3], "96"]))
            continue
        if line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            pt = line.split(":", 1)[1].split(" ", 1)[0]
            if video_pt is None:
                line = line.replace(f":{pt} ", ":111 ", 1)
            elif pt == video_pt:
                line = line.replace(f":{pt} ", ":96 ", 1)
            else:
                continue  # OBS offers no RTX and one H.264 profile
        out.append(line)
    return "\r\n".join(out) + "\r\n"


async def two_video_tracks() -> str:
    pc = RTCPeerConnection(rtc_configuration())
    pc.addTransceiver(MovingPatternTrack(), direction="sendonly")
    pc.addTransceiver(MovingPatternTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def test_obs_style_publish_reaches_viewers_and_delete_pauses(node: Node) -> None:
    show = await node.create_show("OBS-konsertti")
    assert show["whip_url"] == "http://127.0.0.1:8080/whip"
    pc = await obs_like_offer()
    viewer = None
    try:
        offer = as_obs_sends_it(pc.localDescription.sdp)
        status, headers, answer = await post(
            f"{node.url}/whip",
            offer,
            Authorization=f"Bearer {show['stream_key']}",
            **{"Content-Type": "application/sdp"},
        )
        assert status == 201, answer
        assert headers["Content-Type"] == "application/sdp"
        # the answer keeps OBS's numbering: Opus 111 on mid 0, H.264 96 on mid 1
        assert "a=rtpmap:111 opus/48000/2" in answer and "a=rtpmap:96 H264/90000" in answer
        location = headers["Location"]
        assert location.startswith("/whip/session/") and len(location) > 40
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        viewer = await start_viewer(node, show["code"])
        await eventually(lambda: viewer.video.frames >= 10 and viewer.audio.frames >= 5, 20)
        assert viewer.video.sizes == {(320, 240)}
        async with aiohttp.ClientSession() as http:
            async with http.delete(f"{node.url}{location}") as r:
                assert r.status == 200
            event = await viewer.session.next_event("show.state")
            while event["state"] != "paused":
                event = await viewer.session.next_event("show.state")
            async with http.delete(f"{node.url}{location}") as r:
                assert r.status == 404  # already ended
    finally:
        if viewer is not None:
            await viewer.close()
            await viewer.session.close()
        await pc.close()


async def test_second_publisher_with_the_same_key_replaces_the_first(node: Node) -> None:
    show = await node.create_show("OBS-konsertti")
    first, second = await obs_like_offer(), await obs_like_offer()
    headers = {"Authorization": f"Bearer {show['stream_key']}", "Content-Type": "application/sdp"}
    try:
        s1, h1, a1 = await post(f"{node.url}/whip", first.localDescription.sdp, **headers)
        await first.setRemoteDescription(RTCSessionDescription(a1, "answer"))
        s2, h2, a2 = await post(f"{node.url}/whip", second.localDescription.sdp, **headers)
        await second.setRemoteDescription(RTCSessionDescription(a2, "answer"))
        assert (s1, s2) == (201, 201) and h1["Location"] != h2["Location"]
        # the node closed the first publisher's peer: one peer left, still live
        await eventually(lambda: node.stage.peer_count == 1, 15)
        assert node.stage.live(show["id"])
        async with aiohttp.ClientSession() as http, http.delete(node.url + h1["Location"]) as r:
            assert r.status == 404  # the replaced session is gone
    finally:
        await first.close()
        await second.close()


async def test_trickle_patch_is_accepted_and_ice_restart_refused(node: Node) -> None:
    show = await node.create_show("OBS-konsertti")
    pc = await obs_like_offer()
    try:
        status, headers, answer = await post(
            f"{node.url}/whip",
            pc.localDescription.sdp,
            Authorization=f"Bearer {show['stream_key']}",
            **{"Content-Type": "application/sdp"},
        )
        assert status == 201 and headers["Accept-Patch"] == "application/trickle-ice-sdpfrag"
        ufrag = next(
            line.split(":", 1)[1] for line in answer.splitlines() if line.startswith("a=ice-ufrag:")
        )
        url = node.url + headers["Location"]
        trickle = (
            f"a=ice-ufrag:{ufrag}\r\na=mid:0\r\n"
            "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
        )
        async with aiohttp.ClientSession() as http:
            patch_headers = {
                "Content-Type": "application/trickle-ice-sdpfrag",
                "If-Match": headers["ETag"],
            }
            async with http.patch(url, data=trickle, headers=patch_headers) as r:
                assert r.status == 204
            restart = trickle.replace(ufrag, "newufrag")
            async with http.patch(url, data=restart, headers=patch_headers) as r:
                assert r.status == 422
                assert (await r.json())["error"]["code"] == "ice_restart_unsupported"
            async with http.patch(
                url, data=trickle, headers={**patch_headers, "If-Match": '"x"'}
            ) as r:
                assert r.status == 412
            async with http.patch(url, data=trickle, headers={"Content-Type": "text/plain"}) as r:
                assert r.status == 415
            for garbage in ("garbage", "", "1 1 udp 1 127.0.0.1 99999 typ host"):
                bad = f"a=ice-ufrag:{ufrag}\r\na=mid:0\r\na=candidate:{garbage}\r\n"
                async with http.patch(url, data=bad, headers=patch_headers) as r:
                    assert r.status == 400, (garbage, await r.text())
                    assert (await r.json())["error"]["code"] == "invalid_sdp"
            async with http.patch(url, data=trickle, headers=patch_headers) as r:
                assert r.status == 204  # the session is as it was
    finally:
        await pc.close()


async def test_an_offer_arriving_in_small_writes_is_read_whole(node: Node) -> None:
    """Across the internet an encoder's 3-5 KB offer comes in several TCP segments."""
    show = await node.create_show()
    pc = await obs_like_offer()
    offer = as_obs_sends_it(pc.localDescription.sdp).encode()
    host, port = node.server.host, node.server.port
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            (
                "POST /whip HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\n"
                f"Authorization: Bearer {show['stream_key']}\r\n"
                f"Content-Length: {len(offer)}\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        for start in range(0, len(offer), 300):
            writer.write(offer[start : start + 300])
            await writer.drain()
            await asyncio.sleep(0.02)  # each piece its own segment, as a slow link delivers them
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert b" 201 " in status_line, status_line + await reader.read(2000)
    finally:
        writer.close()
        await pc.close()


async def test_whip_errors_are_precise_and_leave_nothing_behind(node: Node) -> None:
    show = await node.create_show("OBS-konsertti")
    pc = await obs_like_offer()
    offer = pc.localDescription.sdp
    key = f"Bearer {show['stream_key']}"
    sdp = {"Content-Type": "application/sdp"}
    try:
        cases: list[tuple[dict[str, str], str, int, str]] = [
            (sdp, offer, 401, "unauthorized"),
            ({**sdp, "Authorization": "Bearer wrong"}, offer, 403, "forbidden"),
            (
                {"Authorization": key, "Content-Type": "application/json"},
                offer,
                415,
                "unsupported_media_type",
            ),
            ({**sdp, "Authorization": key}, "this is not sdp", 400, "invalid_sdp"),
            ({**sdp, "Authorization": key}, AV1_OFFER, 406, "unsupported_codec"),
            ({**sdp, "Authorization": key}, await two_video_tracks(), 406, "unsupported_codec"),
            (
                {**sdp, "Authorization": key},
                "v=0\r\n" + "a=x\r\n" * 20000,
                413,
                "payload_too_large",
            ),
        ]
        for headers, body, status, code in cases:
            got_status, _, text = await post(f"{node.url}/whip", body, **headers)
            assert got_status == status, (status, text)
            assert code in text
        _, _, text = await post(f"{node.url}/whip", AV1_OFFER, Authorization=key, **sdp)
        assert "VP8 or H.264" in text  # a readable reason
        assert node.stage.peer_count == 0 and not node.stage.live(show["id"])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{node.url}/whip") as r:
                assert r.status == 405 and "POST" in r.headers["Allow"]
            async with http.options(f"{node.url}/whip") as r:
                assert r.status == 204
                assert "POST" in r.headers["Access-Control-Allow-Methods"]
                assert "Link" not in r.headers  # no ICE servers unless configured
            async with http.delete(f"{node.url}/whip/session/nope") as r:
                assert r.status == 404
    finally:
        await pc.close()


async def test_options_advertises_ice_servers_with_turn_credentials() -> None:
    ice_servers = ("stun:127.0.0.1:3478", "turn:127.0.0.1:3478")
    async with (
        serve(ice_servers=ice_servers, turn_secret="t") as node,
        aiohttp.ClientSession() as http,
        http.options(f"{node.url}/whip") as r,
    ):
        links = r.headers.getall("Link")
    assert '<stun:127.0.0.1:3478>; rel="ice-server"' in links
    turn = next(link for link in links if link.startswith("<turn:"))
    assert 'username="' in turn and 'credential="' in turn
    assert 'credential-type="password"' in turn


async def test_obs_publisher_show_has_an_audience_sound_that_rises_with_clappers(
    node: Node,
) -> None:
    """A performer on OBS has no studio page: viewers who ask still hear the hall, fed by the
    show's own reaction totals, louder with more clappers."""
    show = await node.create_show()
    pc = await obs_like_offer()
    listener = Watcher(await Session.connect(node.url))
    clappers = [await Session.connect(node.url) for _ in range(30)]
    try:
        status, _, answer = await post(
            f"{node.url}/whip",
            as_obs_sends_it(pc.localDescription.sdp),
            Authorization=f"Bearer {show['stream_key']}",
            **{"Content-Type": "application/sdp"},
        )
        assert status == 201, answer
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await eventually(lambda: node.stage.live(show["id"]), 20)
        await listener.join(show["code"])
        await listener.start(hall=True)
        for session in clappers:
            await session.request("watch.join", code=show["code"])
        await eventually(lambda: len(listener.hall_pcm) > 50, 20)  # the hall sound arrives
        silent, levels = await silence_then_applause(listener.hall_pcm, clappers, (3, 30))
        assert silent < 50, silent
        assert silent < levels[0] < levels[1], (silent, levels)
    finally:
        await listener.close()
        for session in [listener.session, *clappers]:
            await session.close()
        await pc.close()
