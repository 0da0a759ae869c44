"""Direct output: headers a standard RTP parser reads back, NACKs answered, slow sockets skipped."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from helpers import ShowRig, ViewerRig

from media.direct import (
    ABS_SEND_TIME_URI,
    MAX_WRITE_BUFFER,
    MID_URI,
    _header_template,
    abs_send_time,
)
from media.forward import Broadcast
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
