"""The lighter sound (media/rendition.py, ``SoundSpec``): the show's Opus decoded once, mixed
down to mono and encoded again at a constant low bitrate in 40 ms packets, in a thread, for the
viewers listening to the sound alone on a link too weak for the original."""

from __future__ import annotations

import fractions
import itertools
import math
import struct
import threading

import av
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs.opus import OpusEncoder
from aiortc.stats import RTCInboundRtpStreamStats
from helpers import ShowRig

from media.forward import Broadcast
from media.frame import EncodedFrame, opus_samples
from media.rendition import LOW_SOUND, Rendition, SoundSpec
from tests.helpers import eventually

RATE = 48_000
SAMPLES = 960  # a browser's 20 ms packets


def tone_frames(count: int, *, start: int = 0) -> list[EncodedFrame]:
    """``count`` 20 ms Opus packets of a 440 Hz tone (stereo, 96 kbit/s: aiortc's encoder), with
    RTP timestamps from ``start``."""
    encoder = OpusEncoder()
    frames = []
    for index in range(count):
        pcm = struct.pack(
            f"<{SAMPLES}h",
            *(int(9000 * math.sin(2 * math.pi * 440 * (index * SAMPLES + i) / RATE))
              for i in range(SAMPLES)),
        )  # fmt: skip
        sound = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        sound.planes[0].update(pcm)
        sound.sample_rate = RATE
        sound.pts = index * SAMPLES
        sound.time_base = fractions.Fraction(1, RATE)
        for data in encoder.encode(sound)[0]:
            pts = start + index * SAMPLES
            frames.append(EncodedFrame("audio", "audio/opus", data, pts, RATE, True))
    return frames


class Collected:
    def __init__(self) -> None:
        self.frames: list[EncodedFrame] = []
        self.threads: set[str] = set()

    def on_frame(self, frame: EncodedFrame, payloads: list[bytes], generation: int) -> None:
        assert payloads == [frame.data]  # an Opus packet is its own RTP payload
        self.threads.add(threading.current_thread().name)
        self.frames.append(frame)


async def offer(rendition: Rendition, frame: EncodedFrame) -> None:
    """One frame for the rendition, as fast as its thread takes them (a performer's come 50 a
    second; offered all at once they would overflow its queue and be dropped)."""
    rendition.offer(frame, 1)
    await eventually(lambda: rendition.queued < 4, 5, interval=0.002)


def test_opus_samples_reads_the_packet_length() -> None:
    (twenty,) = tone_frames(1)
    assert opus_samples(twenty.data) == SAMPLES
    assert opus_samples(b"") == 0
    assert opus_samples(bytes([0x03 << 3 | 0x00])) == 2880  # SILK 60 ms, one frame
    assert opus_samples(bytes([0x1F << 3 | 0x01])) == 1920  # CELT 20 ms, two frames
    assert opus_samples(bytes([0x1F << 3 | 0x03, 0x03])) == 2880  # three frames, code 3
    assert opus_samples(bytes([0x1F << 3 | 0x03])) == 0  # code 3 without its count


def test_a_sound_spec_checks_what_opus_can_do() -> None:
    with pytest.raises(ValueError):
        SoundSpec("original", 24_000)
    with pytest.raises(ValueError):
        SoundSpec("low", 1_000)
    with pytest.raises(ValueError):
        SoundSpec("low", 24_000, frame_ms=30)
    with pytest.raises(ValueError):
        Broadcast(sounds=(SoundSpec("180p", 24_000),))  # a picture's name
    broadcast = Broadcast()
    viewer = broadcast.add_viewer(direct=True)
    with pytest.raises(ValueError):
        viewer.choose_sound("180p")  # a picture is not a sound
    with pytest.raises(ValueError):
        viewer.choose_picture("low")  # nor the other way round
    broadcast.close()


async def test_opus_in_lighter_mono_opus_out_on_the_same_timeline() -> None:
    got = Collected()
    rendition = Rendition(
        LOW_SOUND, "audio/opus", on_frame=got.on_frame, request_source_keyframe=lambda: None
    )
    rendition.start()
    source = tone_frames(100, start=123_456)  # 2 s
    try:
        for frame in source:
            await offer(rendition, frame)
        await eventually(lambda: len(got.frames) >= 49, 10, "the lighter sound")
    finally:
        await rendition.close()
    assert got.threads == {threading.current_thread().name}  # handed back on the loop
    # 40 ms packets, timestamps continuing the show's own from its first packet.
    assert [f.pts for f in got.frames[:3]] == [123_456, 123_456 + 1920, 123_456 + 3840]
    assert {opus_samples(f.data) for f in got.frames} == {1920}
    # Constant bitrate: 24 kbit/s is 120 bytes per 40 ms (the original's were ~240 per 20 ms).
    assert {len(f.data) for f in got.frames} == {120}
    assert sum(len(f.data) for f in source) / len(source) > 200
    # A decoder makes mono 40 ms sound of it, with the tone's energy (not silence).
    decoder = av.CodecContext.create("libopus", "r")
    decoder.format, decoder.layout, decoder.sample_rate = "s16", "mono", RATE
    heard = []
    for frame in got.frames[5:]:
        for sound in decoder.decode(av.Packet(frame.data)):
            heard.append(sound)
    assert heard and {s.samples for s in heard} == {1920}
    last = heard[-1]
    pcm = struct.unpack(f"<{last.samples}h", bytes(last.planes[0])[: last.samples * 2])
    assert math.sqrt(sum(x * x for x in pcm) / len(pcm)) > 1000  # the tone's RMS is ~6400
    assert rendition.frames_out == len(got.frames) and rendition.cpu_seconds > 0


async def test_a_gap_in_the_performers_sound_starts_the_packets_again_there() -> None:
    got = Collected()
    rendition = Rendition(
        LOW_SOUND, "audio/opus", on_frame=got.on_frame, request_source_keyframe=lambda: None
    )
    rendition.start()
    try:
        for frame in tone_frames(20) + tone_frames(20, start=RATE * 5):  # 5 s later
            await offer(rendition, frame)
        await eventually(lambda: any(f.pts >= RATE * 5 for f in got.frames), 10)
    finally:
        await rendition.close()
    later = [f.pts for f in got.frames if f.pts >= RATE * 5]
    assert later[0] == RATE * 5  # not the first sound's timeline carried on across the gap
    assert all(b - a == 1920 for a, b in itertools.pairwise(later))


async def inbound_audio(client: RTCPeerConnection) -> RTCInboundRtpStreamStats:
    (transceiver,) = [t for t in client.getTransceivers() if t.kind == "audio"]
    stats = await transceiver.receiver.getStats()
    (inbound,) = [s for s in stats.values() if s.type == "inbound-rtp"]
    assert isinstance(inbound, RTCInboundRtpStreamStats)
    return inbound


async def test_a_viewer_switches_to_the_lighter_sound_and_back_on_one_stream() -> None:
    rig = ShowRig("video/VP8")
    publisher = await rig.start_publisher()
    viewer = await rig.add_viewer()
    other = await rig.add_viewer()
    sounds: list[str] = []
    viewer.viewer.on_sound = sounds.append
    try:
        assert viewer.audio is not None and other.audio is not None
        audio = viewer.audio
        await eventually(lambda: len(audio.samples) >= 20, 20, "the original sound")
        assert set(audio.samples) == {SAMPLES}
        before = await inbound_audio(viewer.client)
        viewer.viewer.send_video(False)
        viewer.viewer.choose_sound("low")
        rendition = rig.broadcast.rendition("low")
        assert rendition is not None and rendition.running
        await eventually(lambda: audio.samples[-10:] == [1920] * 10, 10, "the lighter sound")
        assert sounds == ["low"] and viewer.viewer.sound == "low"
        viewer.viewer.choose_sound("original")
        viewer.viewer.send_video(True)
        await eventually(lambda: audio.samples[-10:] == [SAMPLES] * 10, 10, "the original")
        assert sounds == ["low", "original"]
        after = await inbound_audio(viewer.client)
        # One RTP stream throughout: same SSRC, nothing lost, timestamps growing.
        assert after.ssrc == before.ssrc and after.packetsLost == 0
        assert audio.pts == sorted(audio.pts) and len(set(audio.pts)) == len(audio.pts)
        assert rig.broadcast.rendition("low") is None and not rendition.running
        assert set(other.audio.samples) == {SAMPLES}  # the other viewer: the original all along
    finally:
        await rig.remove_viewer(viewer)
        await rig.remove_viewer(other)
        await rig.stop_publisher(publisher)
        rig.broadcast.close()


def test_the_performers_rates_are_measured() -> None:
    now = [0.0]
    broadcast = Broadcast(clock=lambda: now[0])
    ingest = broadcast.open_ingest()
    assert broadcast.bitrate("audio") is None
    for index in range(150):  # 3 s of 20 ms packets of 200 bytes: 80 kbit/s
        now[0] = index * 0.02
        ingest.push(EncodedFrame("audio", "audio/opus", b"\xfc" * 200, index * SAMPLES, RATE, True))
    assert broadcast.bitrate("audio") == pytest.approx(80_000, rel=0.02)
    assert broadcast.bitrate("video") is None
