"""Lobby cameras through the real server (aiortc members with a 320×240 camera at 15 fps): members
of a lobby see each other's cameras on their tile slots (forwarded, not mixed), another lobby sees
nothing; during the show the foyer's cameras go off until an intermission, while a camera shown to
the performer stays on their audience wall; the seventh camera of a lobby waits its turn."""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import AsyncIterator
from typing import Any, cast

import av
import pytest

from clients.client import Cameras, Performer, ProtocolError, Session
from media.cameras import LOBBY_CAMERAS, MAX_FRAMES_PER_SECOND, CameraSeat
from media.frame import EncodedFrame
from media.sources import TestPatternTrack, ToneTrack
from rooms.bus import Bus
from tests.helpers import eventually
from tests.nodes import Node, serve

pytestmark = pytest.mark.usefixtures("loopback_ice")

TILE = (320, 240)


@pytest.fixture
async def node(bus: Bus) -> AsyncIterator[Node]:
    async with serve(bus, lobby_size=2) as running:
        yield running


async def member(node: Node, code: str, name: str, *, slots: int = 6, size: Any = TILE) -> Cameras:
    """A viewer in a lobby of the show, in its cameras with a test pattern for a camera."""
    session = await Session.connect(node.url)
    cameras = Cameras(session)
    joined = await session.request("watch.join", code=code, name=name)
    width, height = size
    joined["cameras"] = await cameras.join(TestPatternTrack(width, height, fps=15), slots=slots)
    cameras.joined = joined
    return cameras


def me(cameras: Cameras) -> str:
    return str(cameras.joined["me"]["id"])


async def state_event(cameras: Cameras, check: Any) -> dict[str, Any]:
    """The next ``camera.state`` that ``check`` accepts."""
    while True:
        event = await cameras.session.next_event("camera.state")
        if check(event):
            return event


async def sees(cameras: Cameras, slot: int, since: int = 0) -> None:
    """Wait until pictures of a tile's size come through on the slot."""
    await eventually(lambda: cameras.frames.get(slot, 0) >= since + 10, 15)
    assert cameras.sizes[slot] == {TILE}


async def close_all(*members: Cameras) -> None:
    for one in members:
        await one.close()
        await one.session.close()


async def test_lobby_members_see_each_other_and_another_lobby_sees_nothing(node: Node) -> None:
    show = await node.create_show()
    ann = await member(node, show["code"], "Ann")
    bo = await member(node, show["code"], "Bo")
    cai = await member(node, show["code"], "Cai")  # the lobby of two is full: another one
    try:
        assert ann.joined["lobby"]["id"] == bo.joined["lobby"]["id"] != cai.joined["lobby"]["id"]
        joined = ann.joined["cameras"]
        assert joined["open"] is True and joined["slots"] == 6 and joined["cameras"] == []
        # Off by default: nothing is forwarded before the member turns the camera on.
        assert node.cameras.seats(show["id"])[0].camera_on is False
        turned = [await one.set(True) for one in (ann, bo, cai)]
        assert [t["slot"] for t in turned] == [0, 1, 0]  # Cai: another lobby, its own slots
        assert not any(t["waiting"] for t in turned)
        state = await state_event(ann, lambda e: len(e["cameras"]) == 2)
        assert state["cameras"] == [
            {"slot": 0, "member": me(ann), "name": "Ann"},
            {"slot": 1, "member": me(bo), "name": "Bo"},
        ]
        await sees(ann, 1)  # Bo
        await sees(bo, 0)  # Ann
        # Cai's camera has had as long as the others' took, and a second more.
        await asyncio.sleep(1.0)
        assert sum(cai.frames.values()) == 0, "a member alone in another lobby sees nobody"
        assert set(ann.frames) == {1} and set(bo.frames) == {0}, "nobody sees self or Cai"
        # Bo turns the camera off: the lobby is told, Ann's tile stops.
        assert (await bo.set(False))["on"] is False
        state = await state_event(ann, lambda e: len(e["cameras"]) == 1)
        assert state["cameras"][0]["member"] == me(ann)
        await asyncio.sleep(0.5)  # what was under way comes in
        settled = ann.frames[1]
        await asyncio.sleep(1.0)
        assert ann.frames[1] == settled
    finally:
        await close_all(ann, bo, cai)
    await eventually(lambda: not node.cameras.seats(show["id"]), 5)


async def test_cameras_go_off_for_the_show_and_the_performer_sees_who_chose(node: Node) -> None:
    show = await node.create_show()
    ann = await member(node, show["code"], "Ann")
    bo = await member(node, show["code"], "Bo")
    performer = Performer(await Session.connect(node.url))
    wall = Cameras(performer.session)
    try:
        await ann.set(True)
        await bo.set(True)
        await sees(bo, 0)
        await performer.start(
            show["id"], show["performer_token"], [TestPatternTrack(160, 120), ToneTrack()]
        )
        # The show is live: the foyer's cameras go off, each member told (the page lets go of
        # the browser's camera).
        for one in (ann, bo):
            assert (await one.session.next_event("camera.off"))["reason"] == "closed"
        assert not any(s.camera_on for s in node.cameras.seats(show["id"]))
        with pytest.raises(ProtocolError) as refused:
            await ann.set(True)
        assert refused.value.code == "camera_closed"
        # Shown to the performer is the member's own choice, during the show too.
        assert await ann.set(True, performer=True) == {
            "on": True, "slot": None, "waiting": False, "performer": True,
        }  # fmt: skip
        joined = await wall.join_wall(slots=4)
        assert joined["slots"] == 4
        assert joined["cameras"] == [
            {"slot": 0, "member": me(ann), "name": "Ann", "lobby": ann.joined["lobby"]["id"]}
        ]
        await sees(wall, 0)
        before = bo.frames.get(0, 0)
        await asyncio.sleep(1.0)
        assert bo.frames.get(0, 0) - before <= 2, "the lobby does not see a camera for the wall"
        # A member who did not choose the performer is never on the wall.
        await performer.session.request("voice.intermission", open=True)
        await state_event(bo, lambda e: e["open"] is True)
        assert (await bo.set(True))["slot"] is not None
        await sees(ann, (await bo.set(True))["slot"], ann.frames.get(0, 0))
        assert set(wall.frames) == {0} and wall.sizes[0] == {TILE}
        # A viewer has no wall; the performer has no camera to turn on.
        with pytest.raises(ProtocolError) as no_wall:
            await performer.session.request("camera.set", on=True)
        assert no_wall.value.code == "invalid_input"
        # The intermission ends: Bo's camera goes off; Ann stays on the wall only.
        await performer.session.request("voice.intermission", open=False)
        assert (await bo.session.next_event("camera.off"))["reason"] == "closed"
        seats = {s.key: s for s in node.cameras.seats(show["id"])}
        assert seats[me(ann)].camera_on and seats[me(ann)].wall_slot == 0
        assert not seats[me(bo)].camera_on
    finally:
        await close_all(ann, bo, wall)
        await performer.stop()


async def test_the_seventh_camera_of_a_lobby_waits_its_turn() -> None:
    # The in-process bus only: the slots are the node's own, whatever the bus (the policy's
    # following on both engines is the test above).
    async with serve(lobby_size=8) as node:
        show = await node.create_show()
        # Small pictures: seven encoders and decoders on two cores.
        members = [
            await member(node, show["code"], f"M{n}", slots=LOBBY_CAMERAS, size=(160, 120))
            for n in range(LOBBY_CAMERAS + 1)
        ]
        try:
            turned = [await one.set(True) for one in members]
            assert [t["slot"] for t in turned] == [*range(LOBBY_CAMERAS), None]
            assert turned[-1]["waiting"] is True and turned[-1]["on"] is True
            last = members[-1]
            state = await state_event(members[0], lambda e: e["waiting"] == [me(last)])
            assert len(state["cameras"]) == LOBBY_CAMERAS
            # The first camera goes off: the one waiting takes its slot, and is seen there.
            await members[0].set(False)
            state = await state_event(
                members[1], lambda e: any(c["member"] == me(last) for c in e["cameras"])
            )
            assert {"slot": 0, "member": me(last), "name": f"M{LOBBY_CAMERAS}"} in state["cameras"]
            assert state["waiting"] == []
            second = members[1]
            since = second.frames.get(0, 0)
            await eventually(lambda: second.frames.get(0, 0) >= since + 10, 15)
        finally:
            await close_all(*members)


async def test_bad_camera_offers_get_precise_errors() -> None:
    async with serve() as node:
        await _bad_offers(node)


async def _bad_offers(node: Node) -> None:
    show = await node.create_show()
    session = await Session.connect(node.url)
    try:
        with pytest.raises(ProtocolError) as early:
            await session.request("camera.join", sdp="v=0")
        assert early.value.code == "invalid_input"  # not in a show yet
        await session.request("watch.join", code=show["code"], name="Ann")
        with pytest.raises(ProtocolError) as not_joined:
            await session.request("camera.set", on=True)
        assert not_joined.value.code == "invalid_input"
        cameras = Cameras(session)
        with pytest.raises(ProtocolError) as too_many:
            await cameras.join(slots=LOBBY_CAMERAS + 1)
        assert too_many.value.code == "invalid_sdp"
        await cameras.close()
        with pytest.raises(ProtocolError) as garbage:
            await session.request("camera.join", sdp="not an offer")
        assert garbage.value.code == "invalid_sdp"
    finally:
        await session.close()
    assert not node.cameras.seats(show["id"])


def _vp8(width: int, height: int) -> bytes:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = fractions.Fraction(1, 90000)
    picture = av.VideoFrame(width, height, "yuv420p")
    picture.pts = 0
    return b"".join(bytes(p) for p in [*encoder.encode(picture), *encoder.encode(None)])


def test_a_camera_is_held_to_what_a_tile_needs() -> None:
    seat = CameraSeat("show", "lobby", "m", "Ann", cast(Any, None), [], True)
    small, large = _vp8(320, 240), _vp8(640, 480)

    def frame(data: bytes, *, keyframe: bool = True, mime: str = "video/VP8") -> EncodedFrame:
        return EncodedFrame("video", mime, data, 0, 90000, keyframe)

    assert seat.within_budget(frame(small), 10.0)
    # A picture larger than a tile: refused, with every frame after it, until a small keyframe.
    assert not seat.within_budget(frame(large), 10.1)
    assert not seat.within_budget(frame(b"\x01" * 100, keyframe=False), 10.2)
    assert seat.within_budget(frame(small), 10.3)
    assert not seat.within_budget(frame(small, mime="video/H264"), 10.4)
    assert not seat.within_budget(frame(b"\x01" * (64 * 1024 + 1), keyframe=False), 10.5)
    # No more frames a second than a tile shows (a margin over 15 fps).
    taken = sum(
        seat.within_budget(frame(b"\x01" * 100, keyframe=False), 11.0 + n / 100) for n in range(60)
    )
    assert taken == MAX_FRAMES_PER_SECOND
