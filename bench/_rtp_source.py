"""Bench RTP source (own process): loops the pre-encoded clip as plain RTP to two UDP ports.

    .venv/bin/python bench/_rtp_source.py --clip CLIP --video-port P --audio-port Q

What a Janus streaming mountpoint of type "rtp" ingests: VP8 (payload type 96) and Opus (111),
unencrypted, each to its own port on 127.0.0.1, at real-time pace (30 frames and 50 Opus packets a
second). Each VP8 frame is cut into payloads by aiortc's packetiser
(``aiortc.codecs.get_encoder(...).pack(av.Packet)``), as the node's ``media.direct.Packetizer``
cuts it, and sent when due, its packets back to back, as aiortc's sender does. Timestamps run on
across loops (frame k has RTP timestamp origin + k × 3000), so a receiver sees one unbroken stream.

JSON lines on stdout, as bench/_publisher.py: ``publishing`` after the first video frame, and
``result`` (send time of every video frame) when told to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import random
import socket
import struct
import time
from pathlib import Path
from typing import Any

import av
from _procs import emit, until_stopped
from _stream import (
    AUDIO_RATE,
    AUDIO_SAMPLES,
    FPS,
    KEYFRAME_INTERVAL,
    VIDEO_CLOCK,
    VIDEO_STEP,
    load_clip,
)
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

VIDEO_PT = 96
AUDIO_PT = 111
_HEADER = struct.Struct("!BBHII")  # V=2, M/PT, sequence number, timestamp, SSRC


class RtpStream:
    """One kind's RTP: payloads made by aiortc's packetiser, our own header, one UDP socket."""

    def __init__(self, mime_type: str, clock_rate: int, payload_type: int, port: int) -> None:
        codec = RTCRtpCodecParameters(
            mimeType=mime_type, clockRate=clock_rate, payloadType=payload_type
        )
        self._encoder = get_encoder(codec)
        self._time_base = fractions.Fraction(1, clock_rate)
        self._pt = payload_type
        self._seq = random.getrandbits(16)
        self._ts_origin = random.getrandbits(32)
        self._ssrc = random.getrandbits(32)
        self._addr = ("127.0.0.1", port)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.packets = 0

    def send(self, data: bytes, pts: int) -> None:
        """Packetise one encoded frame and send its packets, the marker bit on the last."""
        packet: Any = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        payloads, _ = self._encoder.pack(packet)
        ts = (self._ts_origin + pts) & 0xFFFFFFFF
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            mpt = self._pt | 0x80 if i == last else self._pt
            header = _HEADER.pack(0x80, mpt, self._seq, ts, self._ssrc)
            self._sock.sendto(header + payload, self._addr)
            self._seq = (self._seq + 1) & 0xFFFF
        self.packets += len(payloads)

    def close(self) -> None:
        self._sock.close()


async def loop_video(
    clip: list[bytes],
    stream: RtpStream,
    start: float,
    sent: list[tuple[int, float]],
    first: asyncio.Event,
) -> None:
    index = 0
    while True:
        delay = start + index / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -1.0:
            # Far behind (the machine stalled): on to the next keyframe rather than a burst.
            behind = int((time.monotonic() - start) * FPS)
            index = -(-behind // KEYFRAME_INTERVAL) * KEYFRAME_INTERVAL
        sent.append((index, round(time.monotonic(), 5)))
        stream.send(clip[index % len(clip)], index * VIDEO_STEP)
        first.set()
        index += 1


async def loop_audio(clip: list[bytes], stream: RtpStream, start: float) -> None:
    index = 0
    rate = AUDIO_RATE / AUDIO_SAMPLES
    while True:
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -1.0:
            index = int((time.monotonic() - start) * rate)
        stream.send(clip[index % len(clip)], index * AUDIO_SAMPLES)
        index += 1


async def run(args: argparse.Namespace) -> None:
    clip = load_clip(Path(args.clip))
    video = RtpStream("video/VP8", VIDEO_CLOCK, VIDEO_PT, args.video_port)
    audio = RtpStream("audio/opus", AUDIO_RATE, AUDIO_PT, args.audio_port)
    sent: list[tuple[int, float]] = []
    first = asyncio.Event()
    start = time.monotonic()
    frames = [data for _, _, data in clip.video]
    tasks = [
        asyncio.create_task(loop_video(frames, video, start, sent, first)),
        asyncio.create_task(loop_audio([data for _, data in clip.audio], audio, start)),
    ]
    try:
        await first.wait()
        emit("publishing", at=time.monotonic())
        await until_stopped(args.max_seconds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        emit(
            "result",
            video_sent=sent,
            audio_sent=audio.packets,
            video_packets=video.packets,
            keyframe_requests=0,  # plain RTP: the mountpoint has no RTCP port to ask on
        )
        video.close()
        audio.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clip", required=True)
    parser.add_argument("--video-port", type=int, required=True)
    parser.add_argument("--audio-port", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=300)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
