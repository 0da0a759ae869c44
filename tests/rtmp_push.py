"""An RTMP encoder for tests: FFmpeg (through PyAV) pushes generated H.264 + AAC in real time.

It runs as a separate process (``push`` starts ``python -m tests.rtmp_push URL SECONDS
[--bframes]``): PyAV's blocking network calls must not stall the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import struct
import sys
import time
from pathlib import Path
from typing import Any

import av

ROOT = Path(__file__).resolve().parent.parent


async def push(url: str, seconds: float, *extra: str) -> asyncio.subprocess.Process:
    """Start pushing to ``url`` for ``seconds`` (``--bframes``: with B-frames, as OBS may;
    ``--reconnect``: connect again after a drop, as OBS does); the process prints "pushed ..."
    when it got through ("reconnecting: ..." at each drop it rides through)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.rtmp_push",
        url,
        str(seconds),
        *extra,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


RECONNECT_DELAY = 2.0  # seconds, as OBS waits before connecting again (its default retry delay)


def main() -> int:
    url, seconds = sys.argv[1], float(sys.argv[2])
    bframes = "--bframes" in sys.argv
    reconnect = "--reconnect" in sys.argv  # as OBS does: the same URL again after a drop
    until = time.monotonic() + seconds
    frames = 0
    while True:
        try:
            frames += _push_once(url, until, bframes)
        except av.FFmpegError as exc:
            if not reconnect or time.monotonic() + RECONNECT_DELAY >= until:
                word = "refused" if frames == 0 and not reconnect else "dropped"
                print(f"{word}: {exc}", flush=True)
                return 3 if word == "refused" else 4
            print(f"reconnecting: {exc}", flush=True)
            time.sleep(RECONNECT_DELAY)
            continue
        except OSError as exc:
            print(f"dropped: {exc}", flush=True)
            return 4
        print(f"pushed {frames} video frames", flush=True)
        return 0


def _push_once(url: str, until: float, bframes: bool) -> int:
    """One connection: H.264 + AAC in real time until ``until``; the video frames sent."""
    out = av.open(url, "w", format="flv", timeout=5)
    try:
        return _push(out, until, bframes)
    finally:
        with contextlib.suppress(av.FFmpegError, OSError):
            out.close()


def _push(out: Any, until: float, bframes: bool) -> int:
    video = out.add_stream("libx264", rate=30)
    video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
    video.options = {"g": "30", "bf": "2" if bframes else "0", "preset": "ultrafast"}
    if not bframes:
        video.options["tune"] = "zerolatency"
    audio = out.add_stream("aac", rate=48000)
    audio.layout = "stereo"
    tone = struct.pack(
        "<2048h", *[int(6000 * math.sin(2 * math.pi * 440 * (i // 2) / 48000)) for i in range(2048)]
    )
    start = time.monotonic()
    v_count = a_count = 0
    while time.monotonic() < until:
        if v_count / 30 <= a_count * 1024 / 48000:
            frame = av.VideoFrame(320, 240, "yuv420p")
            frame.planes[0].update(bytes([16 + (v_count * 3) % 200]) * frame.planes[0].buffer_size)
            frame.planes[1].update(bytes([128]) * frame.planes[1].buffer_size)
            frame.planes[2].update(bytes([128]) * frame.planes[2].buffer_size)
            frame.pts, frame.time_base = v_count, fractions.Fraction(1, 30)
            for packet in video.encode(frame):
                out.mux(packet)
            v_count += 1
            delay = start + v_count / 30 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        else:
            sound = av.AudioFrame(format="s16", layout="stereo", samples=1024)
            sound.planes[0].update(tone)
            sound.sample_rate = 48000
            sound.pts, sound.time_base = a_count * 1024, fractions.Fraction(1, 48000)
            for packet in audio.encode(sound):
                out.mux(packet)
            a_count += 1
    return v_count


if __name__ == "__main__":
    raise SystemExit(main())
