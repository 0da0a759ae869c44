"""Broadcast fan-out with a fake performer: keyframe coalescing, slow viewers, timestamps."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from typing import Any

from media.forward import Broadcast, Ingest, Viewer, ViewerTrack
from media.frame import EncodedFrame
from tests.helpers import eventually


def video(pts: int, key: bool, data: bytes | None = None) -> EncodedFrame:
    payload = data if data is not None else (b"K" if key else b"D") + pts.to_bytes(8, "big")
    return EncodedFrame("video", "video/VP8", payload, pts, 90000, key)


def audio(pts: int) -> EncodedFrame:
    return EncodedFrame("audio", "audio/opus", b"A" + pts.to_bytes(8, "big"), pts, 48000, True)


class FakePerformer:
    """Sends 30 fps video; answers a keyframe request with a keyframe on its next frame."""

    def __init__(self, broadcast: Broadcast) -> None:
        self.requests = 0
        self.frames = 0
        self.ingest: Ingest = broadcast.open_ingest(self.request_keyframe)
        self._key_due = True
        self._pts = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    def request_keyframe(self) -> bool:
        self.requests += 1
        self._key_due = True
        return True

    async def _run(self) -> None:
        while True:
            self.ingest.push(video(self._pts, self._key_due))
            self.frames += 1
            self._key_due = False
            self._pts += 3000
            await asyncio.sleep(1 / 30)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def first_packet(track: ViewerTrack) -> bytes:
    packet: Any = await asyncio.wait_for(track.recv(), 1)
    return bytes(packet)


async def test_wave_of_joins_costs_at_most_two_keyframe_requests() -> None:
    broadcast = Broadcast()
    performer = FakePerformer(broadcast)
    # the show is under way, past its first keyframe, before the audience arrives
    await eventually(lambda: performer.frames >= 3, 2, "the performer sent three frames")
    viewers: list[Viewer] = []
    try:
        for _ in range(50):  # 50 joins spread over one second
            viewers.append(broadcast.add_viewer())
            await asyncio.sleep(0.02)
        await eventually(lambda: all(v.video.buffered > 0 for v in viewers), 2, "video started")
        assert performer.requests <= 2, performer.requests
        for viewer in viewers:
            assert (await first_packet(viewer.video)).startswith(b"K")
    finally:
        await performer.stop()
        broadcast.close()


async def test_slow_viewer_stays_bounded_and_does_not_delay_others() -> None:
    broadcast = Broadcast(video_buffer=16, audio_buffer=20)
    ingest = broadcast.open_ingest(lambda: True)
    slow = broadcast.add_viewer()
    fast = broadcast.add_viewer()
    received: list[int] = []

    async def read_fast() -> None:
        while True:
            received.append((await fast.video.recv()).size)
            await fast.audio.recv()

    reader = asyncio.get_running_loop().create_task(read_fast())
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            # 20 kB frames: a slow viewer holding them all would need 20 MB.
            ingest.push(video(i * 3000, i % 100 == 0, os.urandom(20_000)))
            ingest.push(audio(i * 960))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert fast.video.buffered <= 1  # the fast viewer gets each frame at once
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        broadcast.close()
    assert slow.video.buffered <= 16
    assert slow.audio.buffered <= 20
    assert slow.video.dropped > 900
    assert len(received) == 1000 and fast.video.dropped == 0
    assert grown < 2_000_000, grown


async def test_timestamps_continue_across_performers() -> None:
    now = [100.0]
    broadcast = Broadcast(clock=lambda: now[0])
    first = broadcast.open_ingest(lambda: True)
    viewer = broadcast.add_viewer()
    for i in range(10):
        first.push(video(50_000 + i * 3000, i == 0))
        now[0] += 1 / 30
    first.close()
    now[0] += 2.0  # two seconds without a performer
    second = broadcast.open_ingest(lambda: True)
    second.push(video(0, False))  # not a keyframe: a fresh decoder could not start here
    second.push(video(3000, True))
    first.push(video(999_999, True))  # a stale performer no longer reaches viewers

    pts = []
    while viewer.video.buffered:
        packet: Any = await viewer.video.recv()
        pts.append(packet.pts)
        assert packet.time_base.denominator == 90000
    assert pts[:10] == [i * 3000 for i in range(10)]
    # One keyframe from the second performer, its own frame step after the wall time that passed.
    assert len(pts) == 11
    assert abs(pts[10] - (pts[9] + round((2.0 + 1 / 30) * 90000) + 3000)) <= 1
    broadcast.close()


async def test_viewer_starts_from_recent_keyframe_without_request() -> None:
    now = [0.0]
    broadcast = Broadcast(clock=lambda: now[0])
    requests: list[float] = []

    def request_keyframe() -> bool:
        requests.append(now[0])
        return True

    ingest = broadcast.open_ingest(request_keyframe)
    ingest.push(video(0, True))
    ingest.push(video(3000, False))
    now[0] = 0.1
    viewer = broadcast.add_viewer()
    assert requests == []
    assert (await first_packet(viewer.video)).startswith(b"K")
    assert viewer.video.buffered == 1  # the delta after the cached keyframe
    now[0] = 5.0
    late = broadcast.add_viewer()  # the cached keyframe is too old now
    assert requests == [5.0]
    assert late.video.awaiting_keyframe
    broadcast.close()


async def test_other_codec_from_new_performer_is_not_forwarded() -> None:
    broadcast = Broadcast()
    viewer = broadcast.add_viewer()
    broadcast.open_ingest(lambda: True).push(video(0, True))
    h264 = broadcast.open_ingest(lambda: True)
    h264.push(EncodedFrame("video", "video/H264", b"\x00\x00\x00\x01\x65", 0, 90000, True))
    assert broadcast.codec("video") == "video/VP8"
    assert broadcast.codec_mismatches == 1
    assert viewer.video.buffered == 1
    broadcast.close()


async def test_stopping_tracks_removes_viewer() -> None:
    broadcast = Broadcast()
    viewer = broadcast.add_viewer()
    assert broadcast.viewers == 1
    viewer.video.stop()
    assert broadcast.viewers == 1
    viewer.audio.stop()
    assert broadcast.viewers == 0
    broadcast.close()


async def test_viewer_waiting_before_performer_gets_keyframe_requested_once_frames_flow() -> None:
    broadcast = Broadcast()
    viewer = broadcast.add_viewer()  # no performer yet: nobody to ask
    answers: list[bool] = []
    packets_seen = [False]

    def request_keyframe() -> bool:
        # Like EncodedReceiver: no PLI possible before the first packet names the stream.
        answers.append(packets_seen[0])
        return packets_seen[0]

    ingest = broadcast.open_ingest(request_keyframe)
    assert answers == [False]
    packets_seen[0] = True
    ingest.push(video(0, False))  # its first keyframe was lost
    ingest.push(video(3000, False))
    assert answers == [False, True]
    ingest.push(video(6000, True))
    assert not viewer.video.awaiting_keyframe
    broadcast.close()
