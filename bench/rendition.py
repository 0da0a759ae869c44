"""CPU of one rendition per show: 720p30 frames of a moving picture, encoded once beforehand as
a performer sends them, fed in real time to media/rendition.py's thread (decode, scale,
encode, packetise); the thread's own CPU time per second of show, as a share of one core. Then
the lighter sound: 20 ms Opus packets of music-like sound (a chord with a beat), decoded and
encoded again at 24 kbit/s mono in 40 ms packets, beside decoding them alone.

    python bench/rendition.py [--seconds 10] [--codec video/VP8|video/H264|audio/opus]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import math
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import av

from media.frame import EncodedFrame, is_keyframe
from media.rendition import DEFAULT_LADDER, LOW_SOUND, Rendition

ENCODERS = {"video/VP8": "libvpx", "video/H264": "libx264"}
WIDTH, HEIGHT, FPS = 1280, 720, 30


def source(codec: str, count: int) -> list[EncodedFrame]:
    """``count`` 720p frames at ~1.5 Mbit/s: a moving bar over a gradient, with a noisy box."""
    encoder = av.CodecContext.create(ENCODERS[codec], "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.bit_rate = 1_500_000
    encoder.time_base = fractions.Fraction(1, 90000)
    encoder.framerate = fractions.Fraction(FPS, 1)
    encoder.options = (
        {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        if codec == "video/VP8"
        else {"tune": "zerolatency", "preset": "ultrafast"}
    )
    chroma = bytes([128]) * (WIDTH // 2 * HEIGHT // 2)
    frames = []
    for index in range(count):
        row = bytearray((x // 5 + index * 4) % 256 for x in range(WIDTH))
        luma = bytearray(bytes(row) * HEIGHT)
        box = os.urandom(128 * 128)
        for y in range(128):
            start = (200 + y) * WIDTH + 300
            luma[start : start + 128] = box[y * 128 : (y + 1) * 128]
        picture = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        picture.planes[0].update(bytes(luma))
        picture.planes[1].update(chroma)
        picture.planes[2].update(chroma)
        picture.pts = index * 3000
        picture.time_base = fractions.Fraction(1, 90000)
        if index % (2 * FPS) == 0:  # a performer's keyframe every 2 s (or on PLI)
            picture.pict_type = av.video.frame.PictureType.I
        for packet in encoder.encode(picture):
            data = bytes(packet)
            frames.append(
                EncodedFrame("video", codec, data, index * 3000, 90000, is_keyframe(codec, data))
            )
    return frames


async def run(codec: str, seconds: float) -> None:
    frames = source(codec, int(seconds * FPS))
    size = sum(len(f.data) for f in frames) * 8 / seconds / 1000
    print(f"{codec} {WIDTH}x{HEIGHT}@{FPS}, {size:.0f} kbit/s in, {seconds:.0f} s each")
    # Baseline in the same run: decoding the original alone, in this thread.
    decoder = av.CodecContext.create({"video/VP8": "vp8", "video/H264": "h264"}[codec], "r")
    started = time.process_time()
    for frame in frames:
        decoder.decode(av.Packet(frame.data))
    decode = (time.process_time() - started) / seconds
    print(f"  decode only: {decode:.1%} of a core")
    for spec in DEFAULT_LADDER:
        out: list[int] = []
        take = out.append
        rendition = Rendition(
            spec,
            codec,
            on_frame=lambda f, p, g, take=take: take(len(f.data)),
            request_source_keyframe=lambda: None,
        )
        rendition.start()
        begin = time.monotonic()
        for index, frame in enumerate(frames):
            await asyncio.sleep(max(0.0, begin + index / FPS - time.monotonic()))
            rendition.offer(frame, 1)
        await asyncio.sleep(0.3)
        await rendition.close()
        kbit = sum(out) * 8 / seconds / 1000
        print(
            f"  {spec.name} ({spec.width}x{spec.height}, {spec.bitrate // 1000} kbit/s): "
            f"{rendition.cpu_seconds / seconds:.1%} of a core, {len(out)}/{len(frames)} frames, "
            f"{kbit:.0f} kbit/s out, {rendition.dropped} dropped"
        )


SAMPLES = 960  # 20 ms at 48 kHz, a browser's packets


def sound(count: int) -> list[EncodedFrame]:
    """``count`` 20 ms stereo Opus packets at 64 kbit/s of a chord that swells with a beat."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48_000, "stereo", "s16"
    encoder.bit_rate = 64_000
    encoder.time_base = fractions.Fraction(1, 48_000)
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=48_000, frame_size=SAMPLES)
    frames = []
    pts = 0
    for index in range(count):
        values = []
        for i in range(SAMPLES):
            t = (index * SAMPLES + i) / 48_000
            beat = 0.5 + 0.5 * math.sin(2 * math.pi * 2 * t)
            tone = sum(math.sin(2 * math.pi * f * t) for f in (220, 277, 330, 440))
            values.append(int(5000 * beat * tone))
        pcm = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        pcm.planes[0].update(struct.pack(f"<{SAMPLES}h", *values))
        pcm.sample_rate = 48_000
        pcm.pts = index * SAMPLES
        pcm.time_base = fractions.Fraction(1, 48_000)
        for piece in resampler.resample(pcm):
            for packet in encoder.encode(piece):
                frames.append(EncodedFrame("audio", "audio/opus", bytes(packet), pts, 48_000, True))
                pts += SAMPLES
    return frames


async def run_sound(seconds: float) -> None:
    frames = sound(int(seconds * 50))
    size = sum(len(f.data) for f in frames) * 8 / seconds / 1000
    print(f"audio/opus stereo 20 ms, {size:.0f} kbit/s in, {seconds:.0f} s")
    decoder = av.CodecContext.create("libopus", "r")
    started = time.process_time()
    for frame in frames:
        decoder.decode(av.Packet(frame.data))
    decode = (time.process_time() - started) / seconds
    print(f"  decode only: {decode:.2%} of a core")
    out: list[int] = []
    rendition = Rendition(
        LOW_SOUND,
        "audio/opus",
        on_frame=lambda f, p, g: out.append(len(f.data)),
        request_source_keyframe=lambda: None,
    )
    rendition.start()
    begin = time.monotonic()
    for index, frame in enumerate(frames):
        await asyncio.sleep(max(0.0, begin + index * 0.02 - time.monotonic()))
        rendition.offer(frame, 1)
    await asyncio.sleep(0.3)
    await rendition.close()
    kbit = sum(out) * 8 / seconds / 1000
    print(
        f"  {LOW_SOUND.name} ({LOW_SOUND.bitrate // 1000} kbit/s mono, {LOW_SOUND.frame_ms} ms): "
        f"{rendition.cpu_seconds / seconds:.2%} of a core, {len(out)} packets, "
        f"{kbit:.0f} kbit/s out, {rendition.dropped} dropped"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--codec", default="all", choices=["video/VP8", "video/H264", "audio/opus", "all"]
    )
    args = parser.parse_args()
    for codec in ["video/VP8", "video/H264", "audio/opus"] if args.codec == "all" else [args.codec]:
        if codec == "audio/opus":
            asyncio.run(run_sound(args.seconds))
        else:
            asyncio.run(run(codec, args.seconds))


if __name__ == "__main__":
    main()
