"""Direct output: headers a standard RTP parser reads back, NACKs answered, slow sockets skipped."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

import pytest
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from helpers import ShowRig

from media.direct import (
    ABS_SEND_TIME_URI,
    MAX_WRITE_BUFFER,
    MID_URI,
    DirectOutput,
    _header_template,
    abs_send_time,
)
from media.forward import Broadcast
from media.stage import direct_output
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


async def _direct_viewer(rig: ShowRig) -> Any:
    """A viewer whose server side sends through direct outputs, as the stage sets it up."""
    from aiortc import RTCPeerConnection

    from media.codecs import prefer_codec
    from media.ice import rtc_configuration

    viewer = rig.broadcast.add_viewer(direct=True)
    server = RTCPeerConnection(rtc_configuration())
    video = server.addTransceiver(viewer.video, direction="sendonly")
    prefer_codec(video, rig.video_codec)
    audio = server.addTransceiver(viewer.audio, direction="sendonly")
    prefer_codec(audio, "audio/opus")
    await server.setLocalDescription(await server.createOffer())
    offer = aiortc_sdp.SessionDescription.parse(server.localDescription.sdp)
    outputs: list[DirectOutput] = []
    for transceiver, track in ((video, viewer.video), (audio, viewer.audio)):
        output = direct_output(transceiver, offer)
        rig.broadcast.attach_direct(track, output)
        outputs.append(output)
    client = RTCPeerConnection(rtc_configuration())
    frames = {"video": 0, "audio": 0}
    readers: set[asyncio.Task[None]] = set()

    @client.on("track")
    def on_track(track: Any) -> None:
        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()
                    frames[track.kind] += 1

        readers.add(asyncio.ensure_future(read()))

    await client.setRemoteDescription(server.localDescription)
    await client.setLocalDescription(await client.createAnswer())
    await server.setRemoteDescription(client.localDescription)
    return viewer, server, client, outputs, frames


@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"])
async def test_direct_viewer_decodes_and_nacks_are_answered(codec: str) -> None:
    rig = ShowRig(codec, Broadcast())
    publisher = await rig.start_publisher()
    viewer, server, client, outputs, frames = await _direct_viewer(rig)
    try:
        await eventually(lambda: frames["video"] >= 10 and frames["audio"] >= 10, 20, "media")
        video_out = outputs[0]
        assert video_out.sent_packets > 0
        # a NACK for a recent packet is answered from history; one for an unknown packet is not
        recent = (video_out._seq - 1) & 0xFFFF
        await video_out._retransmit(recent)
        await video_out._retransmit((video_out._seq + 1000) & 0xFFFF)
        assert video_out.retransmitted == 1
        before = frames["video"]
        await eventually(lambda: frames["video"] > before + 5, 10, "still decoding")
    finally:
        await rig.stop_publisher(publisher)
        viewer.close()
        await server.close()
        await client.close()


async def test_backed_up_socket_skips_to_the_next_keyframe() -> None:
    rig = ShowRig("video/VP8", Broadcast())
    publisher = await rig.start_publisher()
    viewer, server, client, outputs, frames = await _direct_viewer(rig)
    try:
        await eventually(lambda: frames["video"] >= 5, 20, "media")
        video_out = outputs[0]
        # Stand-in for a kernel that refuses more: loopback UDP never backs up by itself here.
        real = video_out._transport
        video_out._transport = _BackedUp(real)
        sent = video_out.sent_packets
        await eventually(lambda: viewer.video.dropped > 0, 20, "frames dropped")
        assert video_out.sent_packets == sent
        assert viewer.video.awaiting_keyframe
        video_out._transport = real
        await eventually(lambda: not viewer.video.awaiting_keyframe, 30, "keyframe resumes")
        assert video_out.sent_packets > sent
    finally:
        await rig.stop_publisher(publisher)
        viewer.close()
        await server.close()
        await client.close()


class _BackedUp:
    def __init__(self, real: Any) -> None:
        self._real = real

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return MAX_WRITE_BUFFER + 1

    def sendto(self, data: bytes, addr: Any) -> None:
        raise AssertionError("nothing is sent while backed up")
