"""Test rig for the media package: synthetic performer tracks, real aiortc peers on loopback."""

from __future__ import annotations

import asyncio
import fractions
import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from media.codecs import prefer_codec
from media.direct import DirectOutput, ViewerRtcp
from media.forward import Broadcast, Ingest, Viewer
from media.ice import rtc_configuration
from media.seams import take_rtcp
from media.stage import direct_output
from tests.helpers import eventually

WIDTH, HEIGHT = 320, 240
FPS = 20
AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms


class MovingPatternTrack(MediaStreamTrack):
    """Video of a bright bar sweeping across a dark 320×240 picture, paced at FPS."""

    kind = "video"

    def __init__(self, *, noise: bool = False) -> None:
        super().__init__()
        # With noise a box of fresh random pixels each frame: every frame needs several packets.
        self._noise = noise
        self._count = 0
        self._start: float | None = None
        self._chroma = bytes([128]) * (WIDTH // 2 * HEIGHT // 2)

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self._start + self._count / FPS - time.monotonic()))
        row = bytearray([16]) * WIDTH
        x = (self._count * 8) % WIDTH
        row[x : x + 32] = bytes([235]) * len(row[x : x + 32])
        frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
        luma = bytearray(bytes(row) * HEIGHT)
        if self._noise:
            box = os.urandom(96 * 96)
            for y in range(96):
                luma[(40 + y) * WIDTH + 40 : (40 + y) * WIDTH + 136] = box[y * 96 : (y + 1) * 96]
        frame.planes[0].update(bytes(luma))
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts = self._count * (90000 // FPS)
        frame.time_base = fractions.Fraction(1, 90000)
        self._count += 1
        return frame


class ToneTrack(MediaStreamTrack):
    """A 400 Hz tone, 48 kHz mono, in 20 ms frames paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._count = 0
        self._start: float | None = None
        # 400 Hz divides 48 kHz into whole periods, so one 20 ms frame repeats seamlessly.
        samples = [
            int(8000 * math.sin(2 * math.pi * 400 * i / AUDIO_RATE)) for i in range(AUDIO_SAMPLES)
        ]
        self._pcm = struct.pack(f"<{AUDIO_SAMPLES}h", *samples)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            delay = self._start + self._count * AUDIO_SAMPLES / AUDIO_RATE - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
        frame = AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        frame.planes[0].update(self._pcm)
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._count * AUDIO_SAMPLES
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._count += 1
        return frame


class GatedTrack(MediaStreamTrack):
    """Another track's frames, one each time the test calls :meth:`release`."""

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._gate = asyncio.Semaphore(0)

    def release(self) -> None:
        """Let the next frame go to the sender."""
        self._gate.release()

    async def recv(self) -> VideoFrame | AudioFrame:
        await self._gate.acquire()
        frame: VideoFrame | AudioFrame = await self._source.recv()
        return frame


@dataclass
class Consumer:
    """Reads (and thereby decodes) a viewer's remote track, keeping what the test checks."""

    track: MediaStreamTrack
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    pts: list[int] = field(default_factory=list)
    samples: list[int] = field(default_factory=list)  # of each audio frame
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                self.frames += 1
                if isinstance(frame, VideoFrame):
                    self.sizes.add((frame.width, frame.height))
                elif isinstance(frame, AudioFrame):
                    self.samples.append(frame.samples)
                if frame.pts is not None:
                    self.pts.append(frame.pts)
        except MediaStreamError:
            pass

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@dataclass
class PublisherRig:
    """A performer peer and the server's ingest peer for it."""

    performer: RTCPeerConnection
    server: RTCPeerConnection
    ingest: Ingest


@dataclass
class ViewerRig:
    """The server's peer for one viewer, the viewer's own peer, and what it decoded."""

    viewer: Viewer
    server: RTCPeerConnection
    client: RTCPeerConnection
    video: Consumer | None = None
    audio: Consumer | None = None
    outputs: list[DirectOutput] = field(default_factory=list)  # video then audio, if direct
    rtcp: ViewerRtcp | None = None  # if direct

    @property
    def consumers(self) -> list[Consumer]:
        return [c for c in (self.video, self.audio) if c is not None]


class ShowRig:
    """Performer → server ingest → Broadcast → viewers, all aiortc peers in this process."""

    def __init__(
        self, video_codec: str, broadcast: Broadcast | None = None, *, noise: bool = False
    ) -> None:
        self.video_codec = video_codec
        self.broadcast = broadcast or Broadcast()
        self.noise = noise

    async def start_publisher(
        self,
        *,
        tap_late: bool = False,
        video: MediaStreamTrack | None = None,
        audio: MediaStreamTrack | None = None,
    ) -> PublisherRig:
        performer = RTCPeerConnection(rtc_configuration())
        picture = video or MovingPatternTrack(noise=self.noise)
        prefer_codec(performer.addTransceiver(picture, direction="sendonly"), self.video_codec)
        sound = audio or ToneTrack()
        prefer_codec(performer.addTransceiver(sound, direction="sendonly"), "audio/opus")
        server = RTCPeerConnection(rtc_configuration())
        ingest = self.broadcast.open_ingest()
        await performer.setLocalDescription(await performer.createOffer())
        await server.setRemoteDescription(performer.localDescription)
        if not tap_late:
            # Tap before the connection starts, so aiortc's decoder thread never sees a frame.
            for transceiver in server.getTransceivers():
                ingest.attach(transceiver.receiver)
        await server.setLocalDescription(await server.createAnswer())
        await performer.setRemoteDescription(server.localDescription)
        if tap_late:
            await eventually(lambda: server.connectionState == "connected", 10, "ingest connected")
            await asyncio.sleep(0.3)  # let aiortc decode a few frames first
            for transceiver in server.getTransceivers():
                ingest.attach(transceiver.receiver)
        return PublisherRig(performer, server, ingest)

    async def stop_publisher(self, rig: PublisherRig) -> None:
        rig.ingest.close()
        await rig.performer.close()
        await rig.server.close()

    async def add_viewer(
        self, *, direct: bool = True, tap: Callable[[RTCRtpReceiver], object] | None = None
    ) -> ViewerRig:
        """A viewer sent to as the stage does it: through direct outputs, or aiortc's senders;
        with ``tap``, each of the viewer's receivers is handed to it instead of being decoded."""
        viewer = self.broadcast.add_viewer(direct=direct)
        server = RTCPeerConnection(rtc_configuration(max_bundle=True))
        video = server.addTransceiver(viewer.video, direction="sendonly")
        prefer_codec(video, self.video_codec)
        audio = server.addTransceiver(viewer.audio, direction="sendonly")
        prefer_codec(audio, "audio/opus")
        viewer.forward_keyframe_requests(video.sender)
        client = RTCPeerConnection(rtc_configuration())
        rig = ViewerRig(viewer, server, client)

        @client.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            consumer = Consumer(track)
            consumer.start()
            if track.kind == "video":
                rig.video = consumer
            else:
                rig.audio = consumer

        await server.setLocalDescription(await server.createOffer())
        if direct:
            offer = aiortc_sdp.SessionDescription.parse(server.localDescription.sdp)
            for transceiver, track in ((video, viewer.video), (audio, viewer.audio)):
                output = direct_output(transceiver, offer)
                self.broadcast.attach_direct(track, output)
                rig.outputs.append(output)
            # As the stage does: the viewer's RTCP handled where it arrives.
            rig.rtcp = ViewerRtcp(rig.outputs, viewer.keyframe_requests())
            take_rtcp(server, rig.rtcp.handle)
        await client.setRemoteDescription(server.localDescription)
        if tap is not None:
            for transceiver in client.getTransceivers():
                tap(transceiver.receiver)
        await client.setLocalDescription(await client.createAnswer())
        await server.setRemoteDescription(client.localDescription)
        return rig

    async def remove_viewer(self, rig: ViewerRig) -> None:
        self.broadcast.remove_viewer(rig.viewer)
        await rig.server.close()
        await rig.client.close()
        for consumer in rig.consumers:
            await consumer.stop()
