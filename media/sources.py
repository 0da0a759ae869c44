"""Synthetic media made by the project itself: a test pattern with a clock, and a gentle tone.

Used by the demo performer (``lampio-stream serve --demo``) and by tests; no downloaded assets.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import struct
import time
from datetime import datetime

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_SAMPLES = 960  # 20 ms

# 3×5 pixel digits (and the colon), one string of 15 bits per glyph, row by row.
_GLYPHS = {
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001010010010",
    "8": "111101111101111",
    "9": "111101111001111",
    ":": "000010000010000",
}


class _Pacer:
    """Paces frames in real time from the first one on."""

    def __init__(self) -> None:
        self._start: float | None = None

    async def wait(self, seconds_from_start: float) -> None:
        if self._start is None:
            self._start = time.monotonic()
            return
        await asyncio.sleep(max(0.0, self._start + seconds_from_start - time.monotonic()))


class TestPatternTrack(MediaStreamTrack):
    """Colour bars with a bar sweeping across and the wall clock (HH:MM:SS) drawn on top."""

    __test__ = False  # a media source, not a pytest test class
    kind = "video"

    def __init__(self, width: int = 640, height: int = 360, fps: int = 20) -> None:
        super().__init__()
        if width % 2 or height % 2:
            raise ValueError("width and height must be even")
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._pacer = _Pacer()
        # Eight vertical bars of luma and chroma, built once: only the sweep and clock change.
        bars_y = [235, 210, 170, 145, 106, 81, 41, 16]
        bars_u = [128, 16, 166, 54, 202, 90, 240, 128]
        bars_v = [128, 146, 16, 34, 222, 240, 110, 128]
        self._row_y = _bars(bars_y, width)
        self._row_u = _bars(bars_u, width // 2)
        self._row_v = _bars(bars_v, width // 2)
        self._scale = max(2, height // 40)
        self._text_len = len("00:00:00")
        self._plane_u = self._neutral_box(self._row_u * (height // 2))
        self._plane_v = self._neutral_box(self._row_v * (height // 2))

    def _box(self) -> tuple[int, int, int, int]:
        """Left, top, right, bottom of the clock's dark box, in luma pixels."""
        s = self._scale
        width = 4 * s * self._text_len
        left = (self.width - width) // 2
        top = (self.height - 5 * s) // 2
        return left - s, top - s, left + width, top + 6 * s

    def _neutral_box(self, plane: bytes) -> bytes:
        # Grey chroma under the clock, so the digits stay white on any bar.
        left, top, right, bottom = (v // 2 for v in self._box())
        out = bytearray(plane)
        half = self.width // 2
        for y in range(top, bottom):
            out[y * half + left : y * half + right] = b"\x80" * (right - left)
        return bytes(out)

    async def recv(self) -> VideoFrame:
        """The next frame, paced at ``fps``."""
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait(self._count / self.fps)
        luma = bytearray(self._row_y * self.height)
        bar = (self._count * 6) % self.width
        bar_width = max(8, self.width // 40)
        for y in range(self.height):
            start = y * self.width + bar
            end = min(start + bar_width, (y + 1) * self.width)
            luma[start:end] = b"\xff" * (end - start)
        self._draw_text(luma, datetime.now().strftime("%H:%M:%S"))
        frame = VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(self._plane_u)
        frame.planes[2].update(self._plane_v)
        frame.pts = self._count * (VIDEO_CLOCK // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._count += 1
        return frame

    def _draw_text(self, luma: bytearray, text: str) -> None:
        s = self._scale
        glyph_w = 4 * s
        box_left, box_top, box_right, box_bottom = self._box()
        left, top = box_left + s, box_top + s
        # A dark box behind the digits keeps them readable over any bar.
        for y in range(box_top, box_bottom):
            row = y * self.width
            luma[row + box_left : row + box_right] = b"\x10" * (box_right - box_left)
        for index, char in enumerate(text):
            bits = _GLYPHS.get(char)
            if bits is None:
                continue
            for cell, bit in enumerate(bits):
                if bit == "1":
                    gx = left + index * glyph_w + (cell % 3) * s
                    gy = top + (cell // 3) * s
                    for y in range(gy, gy + s):
                        luma[y * self.width + gx : y * self.width + gx + s] = b"\xeb" * s


class ToneTrack(MediaStreamTrack):
    """A soft 440 Hz tone: a short chime every second, quiet in between (48 kHz mono)."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0) -> None:
        super().__init__()
        self._count = 0
        self._pacer = _Pacer()
        frames_per_second = AUDIO_RATE // AUDIO_SAMPLES
        chime_frames = frames_per_second // 5  # 200 ms of tone
        self._frames: list[bytes] = []
        for n in range(frames_per_second):
            if n < chime_frames:
                samples = [
                    int(
                        6000
                        * math.sin(2 * math.pi * frequency * (n * AUDIO_SAMPLES + i) / AUDIO_RATE)
                        * (1 - (n * AUDIO_SAMPLES + i) / (chime_frames * AUDIO_SAMPLES))
                    )
                    for i in range(AUDIO_SAMPLES)
                ]
            else:
                samples = [0] * AUDIO_SAMPLES
            self._frames.append(struct.pack(f"<{AUDIO_SAMPLES}h", *samples))

    async def recv(self) -> AudioFrame:
        """The next 20 ms of sound, paced in real time."""
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait(self._count * AUDIO_SAMPLES / AUDIO_RATE)
        frame = AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        frame.planes[0].update(self._frames[self._count % len(self._frames)])
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._count * AUDIO_SAMPLES
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._count += 1
        return frame


def _bars(levels: list[int], width: int) -> bytes:
    row = bytearray()
    for i, level in enumerate(levels):
        end = (i + 1) * width // len(levels)
        row += bytes([level]) * (end - len(row))
    return bytes(row)
