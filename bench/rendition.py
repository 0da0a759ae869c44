"""CPU of one rendition per show: 720p30 frames of a moving picture, encoded once beforehand as
a performer sends them, fed in real time to media/rendition.py's thread (decode, scale,
encode, packetise); the thread's own CPU time per second of show, as a share of one core.

    python bench/rendition.py [--seconds 10] [--codec video/VP8]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import av

from media.frame import EncodedFrame, is_keyframe
from media.rendition import DEFAULT_LADDER, Rendition

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--codec", default="both", choices=["video/VP8", "video/H264", "both"])
    args = parser.parse_args()
    for codec in ["video/VP8", "video/H264"] if args.codec == "both" else [args.codec]:
        asyncio.run(run(codec, args.seconds))


if __name__ == "__main__":
    main()
