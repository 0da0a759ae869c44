"""Direct output: headers a standard RTP parser reads back, NACKs answered, slow sockets skipped,
a frame's packets in one segmented send where the kernel takes it."""

from __future__ import annotations

import asyncio
import errno
import struct
from typing import Any

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import RTCP_RTPFB_NACK, HeaderExtensionsMap, RtcpRtpfbPacket, RtpPacket
from helpers import ShowRig, ViewerRig
from pylibsrtp import Policy, Session

from media import direct
from media.direct import (
    ABS_SEND_TIME_URI,
    MAX_WRITE_BUFFER,
    MID_URI,
    FrameOut,
    _header_template,
    abs_send_time,
    ntp_time,
)
from media.forward import Broadcast
from media.seams import send_pli, srtp_in_place
from tests.helpers import eventually


@pytest.mark.parametrize("mid", ["0", "1", "video-long-mid"])
def test_header_template_parses_as_rtp_with_mid_and_abs_send_time(mid: str) -> None:
    ids = {MID_URI: 4, ABS_SEND_TIME_URI: 2}
    header, offset = _header_template(mid, ids)
    value = abs_send_time()
    header[offset : offset + 3] = value.to_bytes(3, "big")
    struct.pack_into("!BHII", header, 1, 0x80 | 96, 4242, 123456, 0xDEADBEEF)
    packet = RtpPacket.parse(bytes(header) + b"payload", _extension_map(ids))
    assert (packet.payload_type, packet.marker) == (96, 1)
    assert (packet.sequence_number, packet.timestamp, packet.ssrc) == (4242, 123456, 0xDEADBEEF)
    assert packet.extensions.mid == mid
    assert packet.extensions.abs_send_time == value
    assert packet.payload == b"payload"


def test_header_template_without_extensions_is_a_plain_header() -> None:
    header, offset = _header_template("0", {})
    assert len(header) == 12 and offset == 0 and header[0] == 0x80


def _extension_map(ids: dict[str, int]) -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for u, i in ids.items()]
        )
    )
    return extensions


def video_frames(rig: ViewerRig) -> int:
    return 0 if rig.video is None else rig.video.frames


@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"])
async def test_direct_viewer_decodes_and_nacks_are_answered(codec: str) -> None:
    show = ShowRig(codec, Broadcast())
    publisher = await show.start_publisher()
    rig = await show.add_viewer()
    try:
        await eventually(lambda: video_frames(rig) >= 10, 20, "media")
        video_out = rig.outputs[0]
        assert video_out.sent_packets > 0
        # a NACK for a recent packet is answered from history; one for an unknown packet is not
        recent = (video_out._seq - 1) & 0xFFFF
        await video_out._retransmit(recent)
        await video_out._retransmit((video_out._seq + 1000) & 0xFFFF)
        assert video_out.retransmitted == 1
        before = video_frames(rig)
        await eventually(lambda: video_frames(rig) > before + 5, 10, "still decoding")
    finally:
        await show.remove_viewer(rig)
        await show.stop_publisher(publisher)


async def test_backed_up_socket_skips_to_the_next_keyframe() -> None:
    show = ShowRig("video/VP8", Broadcast())
    publisher = await show.start_publisher()
    rig = await show.add_viewer()
    try:
        await eventually(lambda: video_frames(rig) >= 5, 20, "media")
        video_out, track = rig.outputs[0], rig.viewer.video
        # Stand-in for a kernel that refuses more: loopback UDP never backs up by itself here.
        real = video_out._transport
        video_out._transport = _BackedUp(real)
        sent, dropped = video_out.sent_packets, track.dropped  # frames dropped while connecting
        await eventually(lambda: track.dropped > dropped, 20, "frames dropped")
        assert video_out.sent_packets == sent
        assert track.awaiting_keyframe
        video_out._transport = real
        await eventually(lambda: not track.awaiting_keyframe, 30, "keyframe resumes")
        assert video_out.sent_packets > sent
    finally:
        await show.remove_viewer(rig)
        await show.stop_publisher(publisher)


class _BackedUp:
    def __init__(self, real: Any) -> None:
        self._real = real

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return MAX_WRITE_BUFFER + 1

    def sendto(self, data: bytes, addr: Any) -> None:
        raise AssertionError("nothing is sent while backed up")


def test_a_frame_of_equal_payloads_is_sent_segmented() -> None:
    assert FrameOut.of([b"a" * 1200, b"b" * 1200, b"c" * 300]).uniform
    assert not FrameOut.of([b"a" * 1200]).uniform  # one packet: nothing to segment
    assert not FrameOut.of([b"a" * 1200, b"b" * 1100, b"c" * 300]).uniform
    assert not FrameOut.of([b"a" * 1200, b"b" * 1300]).uniform  # the last may not be longer
    out = FrameOut.of([b"x"], now=1.0)
    assert out.abs_send_time == abs_send_time(1.0).to_bytes(3, "big")
    assert out.ntp == ntp_time(1.0)


async def test_video_goes_out_in_one_segmented_send_per_frame() -> None:
    show = ShowRig("video/VP8", Broadcast(), noise=True)
    publisher = await show.start_publisher()
    rig = await show.add_viewer()
    try:
        await eventually(lambda: video_frames(rig) >= 10, 20, "media")
        video_out = rig.outputs[0]
        # Each VP8 frame of the noisy picture is several packets; loopback takes UDP GSO.
        assert video_out.gso and video_out.segmented > 0
        assert video_out.sent_packets > video_out.segmented
    finally:
        await show.remove_viewer(rig)
        await show.stop_publisher(publisher)


@pytest.mark.parametrize(
    "refusal", [OSError(errno.EIO, "no segmentation offload"), BlockingIOError()]
)
async def test_a_socket_that_refuses_keeps_the_viewer_watching(refusal: OSError) -> None:
    """A path that cannot segment turns GSO off for that viewer; a kernel buffer that is full
    hands the frame's packets to asyncio's transport, which sends them in order later."""
    show = ShowRig("video/VP8", Broadcast(), noise=True)
    publisher = await show.start_publisher()
    rig = await show.add_viewer()
    try:
        await eventually(lambda: video_frames(rig) >= 5, 20, "media")
        video_out = rig.outputs[0]
        refusing = _Refusing(video_out._sock, refusal)
        video_out._sock = refusing  # type: ignore[assignment]
        before = video_frames(rig)
        await eventually(lambda: video_frames(rig) > before + 10, 20, "still decoding")
        assert refusing.refused > 0
        if isinstance(refusal, BlockingIOError):
            assert video_out.gso  # a full buffer says nothing about the path
        else:
            assert not video_out.gso and refusing.refused == 1  # tried once, then packet by packet
    finally:
        await show.remove_viewer(rig)
        await show.stop_publisher(publisher)


class _Refusing:
    """The viewer's socket, refusing segmented sends (and, when full, every send)."""

    def __init__(self, real: Any, refusal: OSError) -> None:
        self._real = real
        self._refusal = refusal
        self.refused = 0

    def sendmsg(self, *args: Any) -> int:
        self.refused += 1
        raise self._refusal

    def sendto(self, data: bytes, addr: Any) -> int:
        if isinstance(self._refusal, BlockingIOError):
            self.refused += 1
            raise self._refusal
        result: int = self._real.sendto(data, addr)
        return result


async def test_no_sender_reports_until_something_was_sent() -> None:
    """A track that has sent nothing (a voice slot nobody speaks on, a show not yet on air) is no
    RTP sender: its viewer gets no Sender Report until media flows, then gets them."""

    async def reported(rig: ViewerRig) -> set[str]:
        stats = await rig.client.getStats()
        return {s.kind for s in stats.values() if s.type == "remote-outbound-rtp"}

    show = ShowRig("video/VP8", Broadcast())
    rig = await show.add_viewer()
    publisher = None
    try:
        await eventually(lambda: rig.client.connectionState == "connected", 10, "connected")
        # aiortc reports every 0.5–1.5 s: two seconds hold at least one report of each track.
        await asyncio.sleep(2.0)
        assert await reported(rig) == set()
        publisher = await show.start_publisher()
        await eventually(lambda: video_frames(rig) >= 5, 20, "media")
        found: set[str] = set()

        async def both() -> bool:
            found.update(await reported(rig))
            return found == {"video", "audio"}

        await eventually(both, 10, "sender reports once media flows")
        # What they say is what the outputs counted when aiortc reported.
        stats = await rig.client.getStats()
        sent = {s.kind: s.packetsSent for s in stats.values() if s.type == "remote-outbound-rtp"}
        for output, kind in zip(rig.outputs, ("video", "audio"), strict=True):
            assert 0 < sent[kind] <= output.sent_packets
    finally:
        await show.remove_viewer(rig)
        if publisher is not None:
            await show.stop_publisher(publisher)


async def test_the_viewers_rtcp_is_handled_where_it_arrives() -> None:
    """Receiver reports and REMB land on the outputs they name, a PLI becomes the show's keyframe
    request, a NACK is answered from the output's history; aiortc's receive task sees none."""
    show = ShowRig("video/VP8", Broadcast(), noise=True)
    publisher = await show.start_publisher()
    rig = await show.add_viewer()
    try:
        await eventually(lambda: video_frames(rig) >= 10, 20, "media")
        assert rig.rtcp is not None
        video_out, audio_out = rig.outputs
        # aiortc's receivers report about once a second, and estimate the bandwidth (REMB).
        await eventually(lambda: rig.rtcp.packets >= 4 and video_out.remb_bps, 10, "reports")  # type: ignore[union-attr]
        assert (await rig.server.getStats()).values() and not [
            s for s in (await rig.server.getStats()).values() if s.type == "remote-inbound-rtp"
        ], "aiortc's RTCP handling was skipped"
        (video_in,) = [r for r in publisher.ingest.receivers if r.kind == "video"]
        before = video_in.keyframe_requests
        client_video = next(t for t in rig.client.getTransceivers() if t.kind == "video")
        await send_pli(client_video.receiver, video_out.ssrc)
        await eventually(lambda: video_in.keyframe_requests > before, 5, "PLI passed up")
        recent = (video_out._seq - 2) & 0xFFFF
        rig.rtcp.handle(
            [RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=video_out.ssrc, lost=[recent])]
        )
        assert (video_out.retransmitted, audio_out.retransmitted) == (1, 0)
    finally:
        await show.remove_viewer(rig)
        await show.stop_publisher(publisher)


def test_protecting_in_place_matches_session_protect() -> None:
    """libsrtp protecting a packet where it lies in the scratch buffer gives the bytes
    Session.protect gives, packet after packet (the rollover state moves the same way)."""
    key = bytes(range(30))

    def session() -> Session:
        return Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))

    reference, in_place_session = session(), session()
    in_place = srtp_in_place(in_place_session)
    assert in_place is not None
    for seq in (65534, 65535, 0, 1):  # across a rollover
        plain = struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, 0x1234ABCD) + bytes(range(200))
        offset = 100
        in_place.view[offset : offset + len(plain)] = plain
        in_place.length[0] = len(plain)
        assert in_place.call(in_place.context, in_place.base + offset, in_place.length) == 0
        protected = bytes(in_place.view[offset : offset + in_place.length[0]])
        assert protected == reference.protect(plain)


async def test_without_pylibsrtps_binding_packets_are_protected_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(direct, "srtp_in_place", lambda session: None)
    show = ShowRig("video/VP8", Broadcast(), noise=True)
    publisher = await show.start_publisher()
    rig = await show.add_viewer()
    try:
        await eventually(lambda: video_frames(rig) >= 10, 20, "media")
        video_out = rig.outputs[0]
        assert isinstance(video_out._in_place, direct._Copying)
        assert video_out.segmented > 0  # still in one segmented send per frame
    finally:
        await show.remove_viewer(rig)
        await show.stop_publisher(publisher)
