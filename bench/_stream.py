"""The bench's test stream: 1280×720 30 fps VP8 (~1.5 Mbit/s) and an Opus tone, encoded once.

The clip is encoded at the start of a run (a few seconds of CPU, before anything is measured),
written to a small file, and looped by the publisher with rewritten timestamps, so the publisher
costs almost nothing while the servers are measured. Every ``KEYFRAME_INTERVAL`` frames is a
keyframe and the clip starts with one, so the loop seam is clean for a decoder. A looping
publisher cannot answer a PLI with a fresh keyframe; the short, fixed interval is its answer.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

WIDTH, HEIGHT, FPS = 1280, 720, 30
VIDEO_BITRATE = 1_500_000
KEYFRAME_INTERVAL = FPS  # one keyframe a second
CLIP_SECONDS = 4
VIDEO_CLOCK = 90_000
VIDEO_STEP = VIDEO_CLOCK // FPS  # RTP ticks per frame
AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms Opus frames
AUDIO_BITRATE = 64_000

_MAGIC = b"LAMPIOB1"
_RECORD = struct.Struct("<BBqI")  # kind (0 video, 1 audio), keyframe, pts, length


@dataclass(frozen=True, slots=True)
class Clip:
    """Encoded frames of both kinds, each list in presentation order with pts from 0."""

    video: list[tuple[int, bool, bytes]]  # (pts in 1/90000, keyframe, VP8 frame)
    audio: list[tuple[int, bytes]]  # (pts in 1/48000, Opus packet)

    @property
    def video_bitrate(self) -> float:
        """Average video bits per second over the clip."""
        return sum(len(data) for _, _, data in self.video) * 8 * FPS / max(1, len(self.video))

    @property
    def keyframes(self) -> int:
        return sum(1 for _, key, _ in self.video if key)


def _luma(index: int, texture: bytes) -> bytes:
    """A diagonal ramp scrolling right, a noisy box moving across, a bright bar sweeping down."""
    shift = (index * 6) % 256
    rows = []
    for y in range(HEIGHT):
        start = (y + shift) % 256
        rows.append(texture[start : start + WIDTH])
    plane = bytearray(b"".join(rows))
    # Fresh noise every frame in a 192×108 box: the encoder spends about 1.5 Mbit/s on it.
    box_w, box_h = 192, 108
    bx = (index * 8) % (WIDTH - box_w)
    by = (index * 3) % (HEIGHT - box_h)
    noise = os.urandom(box_w * box_h)
    for row in range(box_h):
        offset = (by + row) * WIDTH + bx
        plane[offset : offset + box_w] = noise[row * box_w : (row + 1) * box_w]
    bar = (index * 12) % (HEIGHT - 24)
    plane[bar * WIDTH : (bar + 24) * WIDTH] = b"\xeb" * (24 * WIDTH)
    return bytes(plane)


def encode_video(frames: int = CLIP_SECONDS * FPS) -> list[tuple[int, bool, bytes]]:
    """Encode the moving pattern with libvpx (VP8), one packet per frame, fixed keyframes."""
    codec: Any = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = WIDTH, HEIGHT
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, FPS)
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.bit_rate = VIDEO_BITRATE
    codec.gop_size = KEYFRAME_INTERVAL
    # Real-time settings as a live encoder would use; no lag, so no hidden alt-ref packets.
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "auto-alt-ref": "0",
        "minrate": str(VIDEO_BITRATE),
        "maxrate": str(VIDEO_BITRATE),
        "b": str(VIDEO_BITRATE),
        "bufsize": str(VIDEO_BITRATE),
    }
    texture = bytes(int(16 + 200 * (i % 256) / 255) for i in range(WIDTH + 256))
    chroma_u = bytes([110]) * (WIDTH // 2 * HEIGHT // 2)
    chroma_v = bytes([150]) * (WIDTH // 2 * HEIGHT // 2)
    encoded: list[tuple[int, bool, bytes]] = []
    for index in range(frames):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        frame.planes[0].update(_luma(index, texture))
        frame.planes[1].update(chroma_u)
        frame.planes[2].update(chroma_v)
        frame.pts = index
        frame.time_base = codec.time_base
        if index % KEYFRAME_INTERVAL == 0:
            frame.pict_type = av.video.frame.PictureType.I
        for packet in codec.encode(frame):
            encoded.append((len(encoded) * VIDEO_STEP, packet.is_keyframe, bytes(packet)))
    for packet in codec.encode(None):
        encoded.append((len(encoded) * VIDEO_STEP, packet.is_keyframe, bytes(packet)))
    if len(encoded) != frames or not encoded[0][1]:
        raise RuntimeError(f"expected {frames} packets starting with a keyframe")
    return encoded


def encode_audio(seconds: float = CLIP_SECONDS) -> list[tuple[int, bytes]]:
    """A 440 Hz tone (whole periods per 20 ms frame, so the loop is seamless) in Opus."""
    codec: Any = av.CodecContext.create("libopus", "w")
    codec.sample_rate = AUDIO_RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = AUDIO_BITRATE
    codec.time_base = fractions.Fraction(1, AUDIO_RATE)
    samples = [
        int(6000 * math.sin(2 * math.pi * 400 * i / AUDIO_RATE)) for i in range(AUDIO_SAMPLES)
    ]
    pcm = struct.pack(f"<{AUDIO_SAMPLES}h", *samples)
    packets: list[tuple[int, bytes]] = []
    count = int(seconds * AUDIO_RATE / AUDIO_SAMPLES)
    for index in range(count + 4):
        frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        frame.planes[0].update(pcm)
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * AUDIO_SAMPLES
        frame.time_base = codec.time_base
        packets.extend((len(packets) * AUDIO_SAMPLES, bytes(p)) for p in codec.encode(frame))
    return packets[:count]


def encode_clip() -> Clip:
    """Encode both kinds (takes a few seconds of CPU)."""
    return Clip(encode_video(), encode_audio())


def save_clip(clip: Clip, path: Path) -> None:
    """Write the clip in a small length-prefixed format."""
    parts = [_MAGIC]
    for pts, key, data in clip.video:
        parts += [_RECORD.pack(0, key, pts, len(data)), data]
    for pts, data in clip.audio:
        parts += [_RECORD.pack(1, 0, pts, len(data)), data]
    path.write_bytes(b"".join(parts))


def load_clip(path: Path) -> Clip:
    """Read a clip written by :func:`save_clip`."""
    raw = path.read_bytes()
    if not raw.startswith(_MAGIC):
        raise ValueError(f"{path} is not a bench clip")
    video: list[tuple[int, bool, bytes]] = []
    audio: list[tuple[int, bytes]] = []
    pos = len(_MAGIC)
    while pos < len(raw):
        kind, key, pts, length = _RECORD.unpack_from(raw, pos)
        pos += _RECORD.size
        data = raw[pos : pos + length]
        pos += length
        if kind == 0:
            video.append((pts, bool(key), data))
        else:
            audio.append((pts, data))
    return Clip(video, audio)


class SharedStart:
    """The wall-clock start of a stream, set by whichever track the sender asks first."""

    def __init__(self) -> None:
        self.at: float | None = None

    def get(self) -> float:
        if self.at is None:
            self.at = time.monotonic()
        return self.at


class LoopTrack(MediaStreamTrack):
    """Sends a clip's encoded frames in real time, looping, as av.Packets (no encoding).

    aiortc's RTCRtpSender hands anything that is not an av.Frame to the codec's ``pack()``.
    Timestamps continue across loops (frame k of the stream has pts k × step), so a receiver sees
    one unbroken stream. ``on_sent(kind, index, t)`` is told of every frame handed to the sender.
    """

    def __init__(
        self,
        kind: str,
        frames: list[tuple[int, bytes]],
        step: int,
        rate: int,
        clock_rate: int,
        start: SharedStart,
        on_sent: Callable[[str, int, float], None] | None = None,
        align: int = 1,
    ) -> None:
        super().__init__()
        self._align = align
        self.kind = kind
        self._frames = frames
        self._step = step
        self._interval = 1.0 / rate
        self._time_base = fractions.Fraction(1, clock_rate)
        self._start = start
        self._index = 0
        self._on_sent = on_sent

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        start = self._start.get()
        due = start + self._index * self._interval
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -1.0:
            # Far behind (the machine stalled): skip ahead instead of bursting, to the next
            # keyframe for video so that the stream stays decodable.
            behind = int((time.monotonic() - start) / self._interval)
            self._index = -(-behind // self._align) * self._align
        _, data = self._frames[self._index % len(self._frames)]
        packet = av.Packet(data)
        packet.pts = self._index * self._step
        packet.time_base = self._time_base
        if self._on_sent is not None:
            self._on_sent(self.kind, self._index, time.monotonic())
        self._index += 1
        return packet


def video_track(
    clip: Clip, start: SharedStart, on_sent: Callable[[str, int, float], None] | None = None
) -> LoopTrack:
    frames = [(pts, data) for pts, _, data in clip.video]
    return LoopTrack(
        "video", frames, VIDEO_STEP, FPS, VIDEO_CLOCK, start, on_sent, KEYFRAME_INTERVAL
    )


def audio_track(
    clip: Clip, start: SharedStart, on_sent: Callable[[str, int, float], None] | None = None
) -> LoopTrack:
    rate = AUDIO_RATE // AUDIO_SAMPLES
    return LoopTrack("audio", clip.audio, AUDIO_SAMPLES, rate, AUDIO_RATE, start, on_sent)
