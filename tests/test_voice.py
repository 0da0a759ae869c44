"""Lobby voice through the real server: members of a lobby hear each other (each voice on its own
slot, forwarded, not mixed), another lobby hears nothing; during the show the foyer is quiet until
the performer opens an intermission, and a lobby invited on stage is heard by everyone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from clients.client import Performer, ProtocolError, Session, Voice
from media.hall import rms
from media.sources import TestPatternTrack, ToneTrack
from rooms.bus import Bus
from tests.helpers import eventually
from tests.nodes import Node, serve

pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.fixture
async def node(bus: Bus) -> AsyncIterator[Node]:
    async with serve(bus, lobby_size=2) as running:
        yield running


async def member(node: Node, code: str, name: str, frequency: float) -> Voice:
    """A viewer in a lobby of the show, in its voice with a tone for a microphone."""
    session = await Session.connect(node.url)
    voice = Voice(session)
    joined = await session.request("watch.join", code=code, name=name)
    joined["voice"] = await voice.join(ToneTrack(frequency), slots=4)
    voice.joined = joined
    return voice


def heard(voice: Voice, slot: int, since: int = 0) -> float:
    """The level of what ``voice`` heard on ``slot`` (after its first ``since`` frames)."""
    return rms(b"".join(voice.pcm.get(slot, [])[since:]))


async def hears(voice: Voice, slot: int, since: int = 0) -> None:
    """Wait until a tone (the chime of another member) comes through on the slot."""
    await eventually(lambda: heard(voice, slot, since) > 100, 15)


async def mic_event(voice: Voice, *, on: bool) -> dict[str, Any]:
    """The next ``voice.mic`` event turning a microphone on (or off), skipping others."""
    while True:
        event = await voice.session.next_event("voice.mic")
        if event.get("on") is on or event["type"] == "closed":
            return event


def slots_heard(voice: Voice) -> set[int]:
    return {slot for slot, frames in voice.pcm.items() if frames}


async def close_all(*voices: Voice) -> None:
    for voice in voices:
        await voice.close()
        await voice.session.close()


async def test_lobby_members_hear_each_other_and_another_lobby_hears_nothing(node: Node) -> None:
    show = await node.create_show()
    ann = await member(node, show["code"], "Ann", 440)
    bo = await member(node, show["code"], "Bo", 660)
    cai = await member(node, show["code"], "Cai", 550)  # the lobby of two is full: another one
    try:
        assert ann.joined["lobby"]["id"] == bo.joined["lobby"]["id"] != cai.joined["lobby"]["id"]
        # Before the show the foyer may talk; a speaker takes the lowest free slot of their lobby.
        assert ann.joined["voice"]["open"] is True and ann.joined["voice"]["slot"] is None
        # The answer asks the browser for Opus DTX on its microphone (silence sends nothing).
        sections = ann.joined["voice"]["sdp"].split("\r\nm=")[1:]
        assert ["usedtx=1" in section for section in sections] == [True] + [False] * 4
        slots = [(await voice.mic(True)) for voice in (ann, bo, cai)]
        assert slots == [
            {"on": True, "heard": True, "slot": 0},
            {"on": True, "heard": True, "slot": 1},
            {"on": True, "heard": True, "slot": 0},  # another lobby, its own slots
        ]
        told = await ann.session.next_event("voice.mic")
        assert told["on"] is True and told["member"] in {
            ann.joined["me"]["id"],
            bo.joined["me"]["id"],
        }
        await hears(ann, 1)  # Bo
        await hears(bo, 0)  # Ann
        # Nothing can mark the end of what did not come over RTP: Cai's tone has had as long as
        # the others' took to arrive, and a second more.
        await asyncio.sleep(1.0)
        assert cai.frames() == 0, "a member alone in another lobby hears nobody"
        assert slots_heard(ann) == {1} and slots_heard(bo) == {0}, "nobody hears self or Cai"
        # Bo turns the microphone off: Ann's slot goes quiet, and the lobby is told.
        assert (await bo.mic(False)) == {"on": False, "heard": False, "slot": None}
        assert (await mic_event(ann, on=False))["member"] == bo.joined["me"]["id"]
        # Audio stopping has no event either: what was under way has half a second to come in,
        # then a second in which nothing more may come.
        before = len(ann.pcm[1])
        await asyncio.sleep(0.5)
        settled = len(ann.pcm[1])
        await asyncio.sleep(1.0)
        assert len(ann.pcm[1]) == settled and settled - before < 40
    finally:
        await close_all(ann, bo, cai)
    await eventually(lambda: not node.voices.seats(show["id"]), 5)


async def test_quiet_during_the_show_intermission_and_a_lobby_on_stage(node: Node) -> None:
    show = await node.create_show()
    ann = await member(node, show["code"], "Ann", 440)
    bo = await member(node, show["code"], "Bo", 660)
    cai = await member(node, show["code"], "Cai", 550)
    performer = Performer(await Session.connect(node.url))
    stage_listener = Voice(performer.session)
    try:
        assert (await ann.mic(True))["heard"] is True
        await hears(bo, 0)
        await performer.start(
            show["id"], show["performer_token"], [TestPatternTrack(160, 120), ToneTrack()]
        )
        # The show is live: the foyer falls quiet, Ann's microphone is switched off for her.
        off = await mic_event(ann, on=False)
        assert off == {
            "type": "voice.mic",
            "lobby": ann.joined["lobby"]["id"],
            "member": ann.joined["me"]["id"],
            "on": False,
        }
        with pytest.raises(ProtocolError) as refused:
            await ann.mic(True)
        assert refused.value.code == "voice_closed"
        # A viewer cannot open an intermission.
        with pytest.raises(ProtocolError) as forbidden:
            await ann.session.request("voice.intermission", open=True)
        assert forbidden.value.code == "forbidden"

        state = await performer.session.request("voice.intermission", open=True)
        assert state == {"open": True, "intermission": True, "stage": None}
        event = await ann.session.next_event("voice.state")
        assert event["intermission"] is True
        await eventually(lambda: _try_mic(ann), 5)
        since = len(bo.pcm.get(0, []))
        await hears(bo, 0, since)
        await performer.session.request("voice.intermission", open=False)
        await mic_event(ann, on=False)  # off again

        # The performer invites Cai's lobby on stage: everyone hears Cai, the performer too.
        joined = await stage_listener.join(None, slots=4)
        assert joined["slot"] is None and joined["open"] is False
        cai_lobby = cai.joined["lobby"]["id"]
        with pytest.raises(ProtocolError) as unknown:
            await performer.session.request("voice.stage", lobby="no-such-lobby")
        assert unknown.value.code == "lobby_not_found"
        # In an intermission Cai talks in their own lobby; invited on stage, Cai's microphone
        # goes off first: nobody is put before the whole show unawares.
        await performer.session.request("voice.intermission", open=True)
        await eventually(lambda: _try_mic(cai), 5)
        state = await performer.session.request("voice.stage", lobby=cai_lobby)
        assert state["stage"] == cai_lobby
        assert (await mic_event(cai, on=False))["member"] == cai.joined["me"]["id"]
        await performer.session.request("voice.intermission", open=False)
        assert (await cai.mic(True))["heard"] is True  # on stage: heard during the show
        await hears(ann, 0, len(ann.pcm.get(0, [])))
        await hears(bo, 0, len(bo.pcm.get(0, [])))
        await hears(stage_listener, 0)
        with pytest.raises(ProtocolError) as closed:
            await ann.mic(True)  # only the lobby on stage speaks
        assert closed.value.code == "voice_closed"
        await performer.session.request("voice.stage", lobby=None)
        assert (await mic_event(cai, on=False))["member"] == cai.joined["me"]["id"]
    finally:
        await close_all(ann, bo, cai, stage_listener)
        await performer.stop()


async def _try_mic(voice: Voice) -> bool:
    try:
        result: dict[str, Any] = await voice.mic(True)
    except ProtocolError:
        return False
    return bool(result["heard"])


async def test_bad_voice_offers_get_precise_errors(node: Node) -> None:
    show = await node.create_show()
    session = await Session.connect(node.url)
    try:
        with pytest.raises(ProtocolError) as not_seated:
            await session.request("voice.join", sdp="v=0")
        assert not_seated.value.code == "invalid_input"
        await session.request("watch.join", code=show["code"], name="Ann")
        with pytest.raises(ProtocolError) as garbage:
            await session.request("voice.join", sdp="this is not sdp")
        assert garbage.value.code == "invalid_sdp"
        # found by tests/test_fuzz_ws.py: an m= line in capitals leaves the BUNDLE group naming
        # a section that is not there; aiortc failed on it twice (internal_error)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio", direction="sendrecv")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        mangled = pc.localDescription.sdp.replace("m=audio", "M=AUDIO", 1)
        await pc.close()
        with pytest.raises(ProtocolError) as unbundled:
            await session.request("voice.join", sdp=mangled)
        assert unbundled.value.code == "invalid_sdp"
        with pytest.raises(ProtocolError) as no_seat:
            await session.request("voice.mic", on=True)
        assert no_seat.value.code == "invalid_input"
        listener = Voice(session)
        await listener.join(None, slots=2)  # listening only
        with pytest.raises(ProtocolError) as no_mic:
            await listener.mic(True)
        assert no_mic.value.code == "invalid_input"
        await listener.close()
    finally:
        await session.close()


async def test_the_performer_lists_the_lobbies_to_invite_one(node: Node) -> None:
    show = await node.create_show()
    sessions = [await Session.connect(node.url) for _ in range(3)]
    host = await Session.connect(node.url)
    try:
        for n, session in enumerate(sessions):
            await session.request("watch.join", code=show["code"], name=f"Katsoja {n}")
        with pytest.raises(ProtocolError) as forbidden:
            await sessions[0].request("lobby.list")
        assert forbidden.value.code == "forbidden"
        await host.request("perform.host", show=show["id"], token=show["performer_token"])
        lobbies = (await host.request("lobby.list"))["lobbies"]
        assert sorted(len(lobby["members"]) for lobby in lobbies) == [1, 2]
        names = {m["name"] for lobby in lobbies for m in lobby["members"]}
        assert names == {"Katsoja 0", "Katsoja 1", "Katsoja 2"}
    finally:
        for session in (*sessions, host):
            await session.close()


async def test_a_voice_closed_by_the_browser_is_released_and_the_lobby_told(node: Node) -> None:
    show = await node.create_show()
    ann = await member(node, show["code"], "Ann", 440)
    bo = await member(node, show["code"], "Bo", 660)
    try:
        await ann.mic(True)
        await hears(bo, 0)
        await ann.close()  # the page closed its voice connection; the WebSocket stays
        off = await mic_event(bo, on=False)
        assert off["member"] == ann.joined["me"]["id"]
        await eventually(lambda: len(node.voices.seats(show["id"])) == 1, 5)
        with pytest.raises(ProtocolError) as gone:
            await ann.mic(True)
        assert gone.value.code == "invalid_input"
        # Joining again works, and the freed slot is taken again.
        await ann.join(ToneTrack(440), slots=4)
        assert (await ann.mic(True))["slot"] == 0
    finally:
        await close_all(ann, bo)


def test_a_speaker_is_held_to_what_a_voice_needs() -> None:
    from media.frame import EncodedFrame
    from media.voice import MAX_FRAME_BYTES, MAX_FRAMES_PER_SECOND, VoiceSeat

    seat = VoiceSeat("show", "lobby", "member", None, [], True, 1)  # type: ignore[arg-type]

    def frame(size: int) -> EncodedFrame:
        return EncodedFrame(
            kind="audio",
            mime_type="audio/opus",
            clock_rate=48000,
            data=bytes(size),
            pts=0,
            keyframe=True,
        )

    assert not seat.within_budget(frame(MAX_FRAME_BYTES + 1), 10.0)
    sent = sum(seat.within_budget(frame(120), 10.0 + n / 1000) for n in range(500))
    assert sent == MAX_FRAMES_PER_SECOND
    assert seat.within_budget(frame(120), 11.0)  # a new second, a new allowance
