"""Renditions (media/rendition.py): the show's frames in, decodable lower-resolution frames out,
encoded in a thread while someone needs them."""

from __future__ import annotations

import asyncio
import fractions
import threading

import av
import pytest
from aiortc import RTCPeerConnection
from aiortc.stats import RTCInboundRtpStreamStats
from helpers import HEIGHT, WIDTH, Consumer, ShowRig

from media.forward import Broadcast
from media.frame import EncodedFrame, is_keyframe
from media.rendition import Rendition, RenditionSpec
from tests.helpers import eventually

SOURCE = (1280, 720)
SPEC = RenditionSpec("360p", 640, 360, 500_000)
ENCODERS = {"video/VP8": "libvpx", "video/H264": "libx264"}
DECODERS = {"video/VP8": "vp8", "video/H264": "h264"}


def source_frames(mime_type: str, count: int, *, keyframe_every: int = 1000) -> list[EncodedFrame]:
    """``count`` encoded 720p frames of a moving gradient, 30 fps, as a performer sends them."""
    encoder = av.CodecContext.create(ENCODERS[mime_type], "w")
    encoder.width, encoder.height = SOURCE
    encoder.pix_fmt = "yuv420p"
    encoder.bit_rate = 1_500_000
    encoder.time_base = fractions.Fraction(1, 90000)
    encoder.framerate = fractions.Fraction(30, 1)
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    if mime_type == "video/H264":
        encoder.options = {"tune": "zerolatency", "preset": "ultrafast"}
    width, height = SOURCE
    chroma = bytes([128]) * (width // 2 * height // 2)
    frames = []
    for index in range(count):
        row = bytes((x + index * 8) % 256 for x in range(width))
        video = av.VideoFrame(width, height, "yuv420p")
        video.planes[0].update(row * height)
        video.planes[1].update(chroma)
        video.planes[2].update(chroma)
        video.pts = index * 3000
        video.time_base = fractions.Fraction(1, 90000)
        if index % keyframe_every == 0:
            video.pict_type = av.video.frame.PictureType.I
        for packet in encoder.encode(video):
            data = bytes(packet)
            frames.append(
                EncodedFrame(
                    "video", mime_type, data, index * 3000, 90000, is_keyframe(mime_type, data)
                )
            )
    return frames


class Collected:
    """What a rendition handed back on the loop, and on which thread."""

    def __init__(self) -> None:
        self.frames: list[EncodedFrame] = []
        self.payloads: list[list[bytes]] = []
        self.threads: set[str] = set()
        self.source_keyframes = 0

    def on_frame(self, frame: EncodedFrame, payloads: list[bytes], generation: int) -> None:
        self.threads.add(threading.current_thread().name)
        self.frames.append(frame)
        self.payloads.append(payloads)

    def ask(self) -> None:
        self.source_keyframes += 1


@pytest.mark.parametrize("mime_type", ["video/VP8", "video/H264"])
async def test_frames_in_lower_resolution_frames_out(mime_type: str) -> None:
    frames = source_frames(mime_type, 90)
    got = Collected()
    rendition = Rendition(SPEC, mime_type, on_frame=got.on_frame, request_source_keyframe=got.ask)
    rendition.start()
    assert got.source_keyframes == 1  # it starts at the performer's next keyframe
    for frame in frames:
        rendition.offer(frame, 1)
        await eventually(lambda: rendition._queued < 2, 10)  # as fast as it goes
    await eventually(lambda: len(got.frames) >= 85, 20, "the rendition's frames")
    assert got.threads == {threading.current_thread().name}  # handed back on the loop
    assert all(p and max(len(x) for x in p) <= 1300 for p in got.payloads)
    decoder = av.CodecContext.create(DECODERS[mime_type], "r")
    sizes = set()
    for frame in got.frames:
        for picture in decoder.decode(av.Packet(frame.data)):
            sizes.add((picture.width, picture.height))
    assert sizes == {(640, 360)}
    # The first frame is a keyframe, then one every 2 s (60 frames at 30 fps); pts as they came.
    keys = [i for i, frame in enumerate(got.frames) if frame.keyframe]
    assert keys[0] == 0 and len(keys) >= 2 and keys[1] - keys[0] >= 55
    assert [f.pts for f in got.frames] == sorted({f.pts for f in got.frames})
    assert {f.pts for f in got.frames} <= {f.pts for f in frames}
    await rendition.close()
    assert not rendition.running
    assert rendition.cpu_seconds > 0


async def test_a_keyframe_on_request_and_the_thread_ends_when_stopped() -> None:
    frames = source_frames("video/VP8", 40)
    got = Collected()
    rendition = Rendition(SPEC, "video/VP8", on_frame=got.on_frame, request_source_keyframe=got.ask)
    rendition.start()
    for frame in frames[:20]:
        rendition.offer(frame, 1)
        await eventually(lambda: rendition._queued < 2, 10)  # as fast as it goes
    await eventually(lambda: len(got.frames) >= 20, 10)
    rendition.request_keyframe()
    rendition.offer(frames[20], 1)
    await eventually(lambda: len(got.frames) >= 21, 10)
    assert got.frames[20].keyframe and not any(f.keyframe for f in got.frames[1:20])
    thread = rendition.stop()
    assert thread is not None
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()
    # Stopped, it takes nothing and hands nothing back.
    rendition.offer(frames[21], 1)
    await asyncio.sleep(0.2)
    assert len(got.frames) == 21
    assert not [t for t in threading.enumerate() if t.name.startswith("rendition-")]


async def test_a_rendition_starts_at_the_performers_keyframe_and_a_new_performer() -> None:
    frames = source_frames("video/VP8", 30, keyframe_every=10)
    got = Collected()
    rendition = Rendition(SPEC, "video/VP8", on_frame=got.on_frame, request_source_keyframe=got.ask)
    rendition.start()
    for frame in frames[3:]:  # joins mid-stream: frames 3-9 cannot be decoded
        rendition.offer(frame, 1)
        await eventually(lambda: rendition._queued < 2, 10)  # as fast as it goes
    assert rendition.dropped == 7
    await eventually(lambda: len(got.frames) >= 20, 10)
    assert got.frames[0].pts == frames[10].pts and got.frames[0].keyframe
    # A new performer: a new stream whose clock starts again; the rendition follows it.
    for frame in frames[:10]:
        rendition.offer(frame, 2)
        await eventually(lambda: rendition._queued < 2, 10)  # as fast as it goes
    await eventually(lambda: len(got.frames) >= 30, 10)
    assert got.frames[20].keyframe and got.frames[20].pts == 0
    await rendition.close()


def test_a_spec_checks_itself() -> None:
    with pytest.raises(ValueError):
        RenditionSpec("original", 640, 360, 500_000)
    with pytest.raises(ValueError):
        RenditionSpec("odd", 641, 360, 500_000)
    with pytest.raises(ValueError):
        RenditionSpec("none", 640, 360, 0)


class Gaps:
    """The longest pause between two decoded frames of a consumer, sampled every 20 ms."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.longest = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        frames, since = self.consumer.frames, loop.time()
        while True:
            await asyncio.sleep(0.02)
            now = loop.time()
            if self.consumer.frames != frames:
                frames, since = self.consumer.frames, now
            self.longest = max(self.longest, now - since)

    async def stop(self) -> float:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.longest


async def inbound_video(client: RTCPeerConnection) -> RTCInboundRtpStreamStats:
    (transceiver,) = [t for t in client.getTransceivers() if t.kind == "video"]
    stats = await transceiver.receiver.getStats()
    (inbound,) = [s for s in stats.values() if s.type == "inbound-rtp"]
    assert isinstance(inbound, RTCInboundRtpStreamStats)
    return inbound


async def test_a_viewer_switches_to_a_rendition_and_back_on_one_stream() -> None:
    rig = ShowRig("video/VP8", Broadcast(ladder=(RenditionSpec("small", 160, 120, 100_000),)))
    publisher = await rig.start_publisher()
    viewer = await rig.add_viewer()
    other = await rig.add_viewer()
    pictures: list[str] = []
    viewer.viewer.on_picture = pictures.append
    try:
        assert rig.broadcast.layers() == ["original", "small"]
        await eventually(lambda: viewer.video and viewer.video.frames >= 20, 20)
        assert viewer.video is not None and other.video is not None
        assert viewer.video.sizes == {(WIDTH, HEIGHT)}
        before = await inbound_video(viewer.client)
        gaps = Gaps(viewer.video)
        viewer.viewer.choose_picture("small")
        rendition = rig.broadcast.rendition("small")
        assert rendition is not None and rendition.running
        await eventually(lambda: (160, 120) in viewer.video.sizes, 10, "the rendition")
        assert pictures == ["small"] and viewer.viewer.picture == "small"
        frames = viewer.video.frames
        await eventually(lambda: viewer.video.frames >= frames + 20, 10)
        # Back to the original, at the performer's next keyframe (asked for).
        viewer.viewer.choose_picture("original")
        viewer.video.sizes.clear()
        await eventually(lambda: (WIDTH, HEIGHT) in viewer.video.sizes, 10, "the original")
        frames = viewer.video.frames
        await eventually(lambda: viewer.video.frames >= frames + 10, 10)
        assert pictures == ["small", "original"]
        assert await gaps.stop() < 1.0
        after = await inbound_video(viewer.client)
        # One RTP stream throughout: same SSRC, no sequence number missing, timestamps growing.
        assert after.ssrc == before.ssrc and after.packetsLost == 0
        assert viewer.video.pts == sorted(viewer.video.pts)
        assert len(set(viewer.video.pts)) == len(viewer.video.pts)
        # Nobody needs the rendition now: its thread has ended; the other viewer saw the original.
        assert rig.broadcast.rendition("small") is None and not rendition.running
        await eventually(
            lambda: not [t for t in threading.enumerate() if t.name == "rendition-small"], 5
        )
        assert other.video.sizes == {(WIDTH, HEIGHT)}
    finally:
        await rig.remove_viewer(viewer)
        await rig.remove_viewer(other)
        await rig.stop_publisher(publisher)
        rig.broadcast.close()


async def test_a_rendition_runs_while_a_viewer_needs_it() -> None:
    broadcast = Broadcast(ladder=(RenditionSpec("small", 160, 120, 100_000),))
    one, two = broadcast.add_viewer(direct=True), broadcast.add_viewer(direct=True)
    with pytest.raises(ValueError):
        one.choose_picture("huge")
    one.choose_picture("small")
    two.choose_picture("small")
    rendition = broadcast.rendition("small")
    assert rendition is not None and rendition.running
    assert one.picture == "small"  # nothing on screen yet: switched at once
    one.choose_picture("original")
    assert broadcast.rendition("small") is rendition
    two.close()  # the last viewer who needed it leaves
    assert broadcast.rendition("small") is None and not rendition.running
    one.close()
    broadcast.close()


@pytest.mark.parametrize("mime_type", ["video/VP8", "video/H264"])
def test_only_rungs_smaller_than_the_performers_picture_are_offered(mime_type: str) -> None:
    broadcast = Broadcast()
    assert broadcast.layers() == ["original", "360p", "180p"]  # size not known yet: every rung
    ingest = broadcast.open_ingest()
    (keyframe, *_) = source_frames(mime_type, 1)
    ingest.push(keyframe)
    assert broadcast.video_size == SOURCE
    assert broadcast.layers() == ["original", "360p", "180p"]  # 720p: both are smaller
    small = av.CodecContext.create(ENCODERS[mime_type], "w")
    small.width, small.height, small.pix_fmt = 640, 360, "yuv420p"
    small.time_base = fractions.Fraction(1, 90000)
    picture = av.VideoFrame(640, 360, "yuv420p")
    picture.pts = 0
    data, *_ = [bytes(p) for p in [*small.encode(picture), *small.encode(None)]]
    ingest.push(EncodedFrame("video", mime_type, data, 3000, 90000, True))
    assert broadcast.video_size == (640, 360)
    assert broadcast.layers() == ["original", "180p"]  # no 360p of a 360p picture
    broadcast.close()
