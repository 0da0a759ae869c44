"""Small parts of the media package: frames, keyframe detection, queues, limiter, ICE, codecs."""

from __future__ import annotations

import asyncio
import fractions
import itertools
import time
from collections.abc import Callable
from typing import cast

import aioice.ice
import av
import pytest
from aiortc import RTCIceServer, RTCIceTransportPolicy

from media.buffer import FrameQueue
from media.codecs import ask_for_opus_dtx, codec_capabilities
from media.exceptions import FrameQueueClosed
from media.frame import (
    EncodedFrame,
    h264_size,
    is_h264_keyframe,
    is_keyframe,
    is_vp8_keyframe,
)
from media.ice import host_addresses, rtc_configuration, use_host_addresses
from media.keyframes import KeyframeRequests
from tests.helpers import eventually


def encode(codec_name: str, count: int) -> list[bytes]:
    """Real encoder output: the first frame is a keyframe, the rest are not."""
    context = cast(av.VideoCodecContext, av.CodecContext.create(codec_name, "w"))
    context.width, context.height = 64, 48
    context.pix_fmt = "yuv420p"
    context.time_base = fractions.Fraction(1, 30)
    context.framerate = fractions.Fraction(30, 1)
    context.options = {"g": "1000", "bf": "0"} if codec_name == "libx264" else {}
    packets: list[bytes] = []
    for i in range(count):
        frame = av.VideoFrame(64, 48, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes([(i * 20) % 256]) * plane.buffer_size)
        frame.pts = i
        packets += [bytes(p) for p in context.encode(frame)]
    packets += [bytes(p) for p in context.encode(None)]
    return packets


def test_vp8_keyframe_detection_on_encoder_output() -> None:
    packets = encode("libvpx", 5)
    assert [is_vp8_keyframe(p) for p in packets] == [True] + [False] * (len(packets) - 1)
    assert is_keyframe("video/VP8", packets[0])
    assert not is_vp8_keyframe(packets[0][:5])


def test_h264_keyframe_detection_on_encoder_output() -> None:
    packets = encode("libx264", 5)
    assert packets[0].startswith(b"\x00\x00\x00\x01")  # Annex-B, as aiortc depacketises it
    assert [is_h264_keyframe(p) for p in packets] == [True] + [False] * (len(packets) - 1)
    assert is_keyframe("video/h264", packets[0])
    assert not is_h264_keyframe(b"\x00\x00\x01\x41\x9a")  # a lone non-IDR slice
    assert is_h264_keyframe(b"\x00\x00\x01\x67\x42" + b"\x00\x00\x01\x68\xce")  # SPS first


@pytest.mark.parametrize(
    ("size", "profile"),
    [((1280, 720), "high"), ((640, 360), "baseline"), ((320, 180), "main"), ((854, 480), "high"),
     ((1920, 1080), "baseline"), ((176, 144), "high444")],
)  # fmt: skip
def test_h264_picture_size_from_the_sequence_parameter_set(
    size: tuple[int, int], profile: str
) -> None:
    # Sizes not a multiple of 16 (360, 180, 1080, 854) need the SPS's cropping read right.
    width, height = size
    context = cast(av.VideoCodecContext, av.CodecContext.create("libx264", "w"))
    context.width, context.height = width, height
    context.pix_fmt = "yuv444p" if profile == "high444" else "yuv420p"
    context.time_base = fractions.Fraction(1, 30)
    context.options = {"profile": profile, "preset": "ultrafast", "tune": "zerolatency"}
    frame = av.VideoFrame(width, height, context.pix_fmt)
    for plane in frame.planes:
        plane.update(bytes([90]) * plane.buffer_size)
    frame.pts = 0
    (first,) = [bytes(p) for p in context.encode(frame)]
    assert h264_size(first) == size
    assert h264_size(b"\x00\x00\x01\x41\x9a") is None  # no SPS
    assert h264_size(first[:12]) is None  # an SPS cut short


def test_audio_is_always_a_keyframe() -> None:
    assert is_keyframe("audio/opus", b"\x78")


def test_encoded_frame_validates_itself() -> None:
    frame = EncodedFrame("audio", "audio/opus", b"x", 960, 48000, True)
    assert frame.time_base == fractions.Fraction(1, 48000)
    with pytest.raises(ValueError, match="kind"):
        EncodedFrame("text", "text/plain", b"x", 0, 1, True)
    with pytest.raises(ValueError, match="does not match"):
        EncodedFrame("video", "audio/opus", b"x", 0, 90000, True)
    with pytest.raises(ValueError, match="clock rate"):
        EncodedFrame("audio", "audio/opus", b"x", 0, 0, True)


def vframe(pts: int, key: bool) -> EncodedFrame:
    return EncodedFrame("video", "video/VP8", b"v", pts, 90000, key)


async def test_video_queue_starts_at_keyframe_and_skips_to_next_on_overflow() -> None:
    asked: list[int] = []
    frames = FrameQueue("video", 3, on_keyframe_needed=lambda: asked.append(1))
    assert not frames.put(vframe(0, False))
    for pts in range(1, 4):
        assert frames.put(vframe(pts, pts == 1))
    assert not frames.put(vframe(4, False))  # full: everything goes, wait for a keyframe
    assert len(frames) == 0 and frames.awaiting_keyframe and asked == [1]
    assert not frames.put(vframe(5, False))
    assert frames.put(vframe(6, True))
    assert (await frames.get()).pts == 6
    assert frames.dropped == 6


async def test_audio_queue_drops_oldest() -> None:
    frames = FrameQueue("audio", 2)
    for pts in range(5):
        frames.put(EncodedFrame("audio", "audio/opus", b"a", pts, 48000, True))
    assert [(await frames.get()).pts, (await frames.get()).pts] == [3, 4]
    assert frames.dropped == 3


async def test_closing_queue_wakes_consumer() -> None:
    frames = FrameQueue("audio", 2)
    waiting = asyncio.get_running_loop().create_task(frames.get())
    await asyncio.sleep(0)
    frames.close()
    with pytest.raises(FrameQueueClosed):
        await asyncio.wait_for(waiting, 1)


def recorder(sent: list[float]) -> Callable[[], bool]:
    def send() -> bool:
        sent.append(time.monotonic())
        return True

    return send


async def test_limiter_coalesces_and_retries_unanswered_requests() -> None:
    sent: list[float] = []
    limiter = KeyframeRequests(recorder(sent), min_interval=0.2)
    try:
        for _ in range(50):
            limiter.request()
        assert len(sent) == 1  # one PLI for a burst
        # Never answered: asked again once per interval while someone still waits.
        await eventually(lambda: len(sent) >= 3, 2)
        limiter.keyframe_arrived()
        count = len(sent)
        # Nothing wanted: no more requests go out. A request not sent has no event to wait
        # for; 0.5 s is more than two intervals in which one would have gone.
        await asyncio.sleep(0.5)
        assert len(sent) == count
        assert all(b - a >= 0.19 for a, b in itertools.pairwise(sent))
    finally:
        limiter.close()


async def test_limiter_sends_nothing_while_keyframe_on_its_way() -> None:
    sent: list[float] = []
    limiter = KeyframeRequests(recorder(sent), min_interval=0.2)
    try:
        limiter.request()
        await asyncio.sleep(0.05)
        limiter.request()  # keyframe not here yet: the one on its way will do
        limiter.keyframe_arrived()
        # No event marks a request not sent: 0.3 s is past the interval at which it would go.
        await asyncio.sleep(0.3)
        assert len(sent) == 1
    finally:
        limiter.close()


async def test_limiter_without_publisher_keeps_quiet() -> None:
    limiter = KeyframeRequests(lambda: False, min_interval=0.05)
    limiter.request()
    assert limiter.sent == 0 and limiter.wanted
    limiter.close()


def test_host_addresses_are_exactly_the_configured_ones() -> None:
    use_host_addresses(["127.0.0.1", "::1"])
    assert host_addresses() == ["127.0.0.1", "::1"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    with pytest.raises(ValueError):
        use_host_addresses(["localhost"])
    use_host_addresses(None)
    assert "127.0.0.1" not in host_addresses()  # aioice's own rule is back


def test_rtc_configuration_never_defaults_to_public_stun() -> None:
    assert rtc_configuration().iceServers == []
    server = RTCIceServer("turn:127.0.0.1:3478", username="u", credential="p")
    assert rtc_configuration([server]).iceServers == [server]
    assert rtc_configuration().iceTransportPolicy == RTCIceTransportPolicy.ALL
    assert rtc_configuration([server], relay_only=True).iceTransportPolicy == (
        RTCIceTransportPolicy.RELAY
    )


def test_codec_capabilities() -> None:
    h264 = codec_capabilities("video", "video/h264")
    assert {c.parameters["profile-level-id"] for c in h264 if c.name == "H264"} == {
        "42001f",
        "42e01f",
    }
    assert h264[-1].mimeType == "video/rtx"
    assert [c.mimeType for c in codec_capabilities("audio", "audio/opus")] == ["audio/opus"]
    with pytest.raises(ValueError):
        codec_capabilities("video", "video/AV1")


def nested_amf0(levels: int, container: bytes) -> bytes:
    """``levels`` AMF0 objects or strict arrays inside each other, a null innermost."""
    if container == b"\x0a":  # strict array of one item
        return b"\x0a\x00\x00\x00\x01" * levels + b"\x05"
    return b"\x03\x00\x01k" * levels + b"\x05" + b"\x00\x00\x09" * levels  # object {"k": ...}


@pytest.mark.parametrize("container", [b"\x0a", b"\x03"], ids=["strict_array", "object"])
def test_amf0_nesting_is_bounded(container: bytes) -> None:
    from media import amf0

    inner: object = amf0.decode_all(nested_amf0(amf0.MAX_DEPTH, container))[0]
    for _ in range(amf0.MAX_DEPTH):  # 32 levels decode as they came
        assert isinstance(inner, list | dict)
        inner = inner[0] if isinstance(inner, list) else inner["k"]
    assert inner is None
    for levels in (amf0.MAX_DEPTH + 1, 1000, 5000):  # deeper is refused, never a RecursionError
        with pytest.raises(amf0.AmfError, match="nested"):
            amf0.decode_all(nested_amf0(levels, container))


def test_the_answer_asks_for_opus_dtx_on_the_microphone_only() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 96",
            "a=mid:0",
            "a=rtpmap:96 opus/48000/2",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "a=mid:1",
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 minptime=10;useinbandfec=1",
            "",
        ]
    )
    first = ask_for_opus_dtx(sdp, "0").split("\r\n")
    assert first[3:5] == ["a=rtpmap:96 opus/48000/2", "a=fmtp:96 usedtx=1"]
    assert "a=fmtp:111 minptime=10;useinbandfec=1" in first  # another section: untouched
    second = ask_for_opus_dtx(sdp, "1")
    assert "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1" in second
    assert ask_for_opus_dtx(second, "1") == second  # once
    assert ask_for_opus_dtx(sdp, "7") == sdp  # no such section
