"""Bench lobby members with cameras (one worker process hosting them all): each joins a show's
lobby and its cameras; the first ``cameras`` of each lobby send a pre-encoded 320×240 15 fps VP8
clip (no encoding while measured) and turn their camera on; everyone counts the frames that reach
their tile slots, without decoding (``media.receiver.EncodedReceiver`` taps).

JSON lines on stdout as bench/_lobby_members.py says; ``joined`` carries the clip's RTP packets a
second (``packets_per_second``).
"""

from __future__ import annotations

import asyncio
import fractions
from typing import Any

import av
from _lobby_members import Member, loopback, parser, run
from _stream import LoopTrack, SharedStart
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from clients.client import Session
from media.codecs import prefer_codec
from media.ice import rtc_configuration

WIDTH, HEIGHT, FPS = 320, 240, 15
BITRATE = 250_000
CLOCK = 90_000
SLOTS = 6


def encode_clip(seconds: int = 2) -> list[tuple[int, bytes]]:
    """A moving bar over a gradient with a little noise: what a webcam tile sends, roughly."""
    codec: Any = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = fractions.Fraction(1, FPS)
    codec.bit_rate = BITRATE
    codec.gop_size = FPS
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    frames: list[tuple[int, bytes]] = []
    chroma = bytes([128]) * (WIDTH // 2 * HEIGHT // 2)
    for index in range(seconds * FPS):
        luma = bytearray((x + index * 6) % 200 + 16 for x in range(WIDTH)) * HEIGHT
        picture = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        picture.planes[0].update(bytes(luma))
        picture.planes[1].update(chroma)
        picture.planes[2].update(chroma)
        picture.pts = index
        if index % FPS == 0:
            picture.pict_type = av.video.frame.PictureType.I
        for packet in [*codec.encode(picture)]:
            frames.append((len(frames) * CLOCK // FPS, bytes(packet)))
    return frames


def packets_per_second(clip: list[tuple[int, bytes]]) -> float:
    """RTP packets a second the clip makes, cut as aiortc's VP8 packetiser cuts it."""
    packer = get_encoder(RTCRtpCodecParameters(mimeType="video/VP8", clockRate=CLOCK))
    total = 0
    for pts, data in clip:
        packet = av.Packet(data)
        packet.pts, packet.time_base = pts, fractions.Fraction(1, CLOCK)
        total += len(packer.pack(packet)[0])
    return total * FPS / len(clip)


async def join(member: Member, url: str, code: str, clip: list[tuple[int, bytes]]) -> None:
    session = member.session = await Session.connect(url)
    await session.request("watch.join", code=code, name=f"Jäsen {member.index}")
    pc = member.pc = RTCPeerConnection(rtc_configuration(session.ice_servers, max_bundle=True))
    track = LoopTrack("video", clip, CLOCK // FPS, FPS, CLOCK, SharedStart(), align=FPS)
    camera = pc.addTransceiver(track if member.sends else "video", direction="sendonly")
    prefer_codec(camera, "video/VP8")
    receiving = [pc.addTransceiver("video", direction="recvonly") for _ in range(SLOTS)]
    for transceiver in receiving:
        prefer_codec(transceiver, "video/VP8")
    await pc.setLocalDescription(await pc.createOffer())
    answer = await session.request("camera.join", sdp=pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    member.tap(pc, receiving)


async def camera_on(member: Member) -> None:
    assert member.session is not None
    await member.session.request("camera.set", on=True)


def main() -> None:
    args = parser(__doc__, "cameras").parse_args()
    loopback()
    clip = encode_clip()
    count = args.lobbies * args.members
    members = [Member(n, sends=n % args.members < args.sending) for n in range(count)]
    asyncio.run(
        run(
            members, lambda m: join(m, args.url, args.code, clip), camera_on, args.max_seconds,
            packets_per_second=packets_per_second(clip),
        )
    )  # fmt: skip


if __name__ == "__main__":
    main()
