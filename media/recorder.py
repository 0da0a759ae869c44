"""A show's recording: the broadcast's encoded frames muxed into a file as they came, never
re-encoded (VP8 + Opus → WebM, H.264 + Opus → fragmented MP4), and the captions typed meanwhile.

The broadcast hands every frame to :meth:`Recorder.offer` once per show, on the event loop; it
only computes the frame's time and puts it in a bounded queue. A thread muxes and writes. If the
disk cannot keep up the queue fills, frames are dropped (video then waits for a keyframe) and the
show goes on untouched.

Pauses are cut: a performer's new session (a new generation of the broadcast) continues the
recording where the last frame ended, not after the wall time that passed.
"""

from __future__ import annotations

import asyncio
import fractions
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import structlog

from media.frame import EncodedFrame
from rooms.recordings import CAPTIONS, webvtt, write_meta

log = structlog.get_logger(__name__)

QUEUE_FRAMES = 1024  # about 10 s of 30 fps video and 20 ms Opus
VIDEO_RATE, AUDIO_RATE = 90000, 48000
FRAME_SECONDS = {"video": 1 / 30, "audio": 0.02}  # how long a frame lasts, for the end of a part
# per video codec: the container, the file's name, its media type and the stream's codec. The
# stream's encoder is opened (PyAV opens a stream's codec for the header) but never fed.
CONTAINERS = {
    "video/vp8": ("webm", "show.webm", "video/webm", "libvpx", {}),
    "video/h264": (
        "mp4",
        "show.mp4",
        "video/mp4",
        "libx264",
        # fragments: a file cut short by a crash still plays; the index makes it seekable
        {"movflags": "frag_keyframe+empty_moov+default_base_moof+global_sidx"},
    ),
}


@dataclass(frozen=True, slots=True)
class Written:
    """What a recording holds once closed."""

    media: str  # the file's name
    media_type: str
    duration_s: float
    video_frames: int
    audio_frames: int
    dropped: int
    cues: int
    failed: bool


@dataclass(slots=True)
class _Item:
    kind: str
    data: bytes
    pts: int
    keyframe: bool


class Recorder:
    """One show's recording, fed by its broadcast."""

    def __init__(
        self,
        directory: Path,
        codecs: Mapping[str, str],
        *,
        request_keyframe: Callable[[], object],
        retention: float,
        queue_frames: int = QUEUE_FRAMES,
    ) -> None:
        self.directory = directory
        self._video = codecs.get("video")
        key = (self._video or "video/vp8").lower()
        self._format, self.media, self.media_type, self._video_codec, self._options = CONTAINERS[
            key
        ]
        self._request_keyframe = request_keyframe
        self._retention = retention
        self._queue: queue.Queue[_Item | None] = queue.Queue(queue_frames)
        self._thread = threading.Thread(target=self._write, name="recorder", daemon=True)
        self._generation: int | None = None
        self._base = 0.0  # recording time where the current part starts
        self._end = 0.0  # recording time where the last frame written ends
        self._part_start: float | None = None  # wall time of the part's first frame
        self._first: dict[str, tuple[int, float]] = {}  # per kind: first pts, its wall offset
        self._last_pts: dict[str, int] = {}
        self._waiting = self._video is not None  # for a keyframe: a part starts with one
        self._lines: list[tuple[float, str]] = []
        self.frames = {"video": 0, "audio": 0}
        self.dropped = 0
        self.failed = False
        self._closed = False

    def start(self) -> None:
        """Start the writing thread."""
        self._thread.start()

    @property
    def position(self) -> float:
        """Seconds recorded so far (pauses cut)."""
        return self._end

    def caption(self, text: str) -> None:
        """A caption line shown now, at the recording's current time."""
        if not self._closed:
            self._lines.append((self._end, text))

    def offer(self, frame: EncodedFrame, generation: int, now: float) -> None:
        """One frame of the broadcast; never waits."""
        if self._closed or self.failed:
            return
        if generation != self._generation:
            # A new performer session: the pause (if any) is cut; video restarts at a keyframe.
            self._generation = generation
            self._base = self._end
            self._part_start = None
            self._first = {}
            self._waiting = self._video is not None
        kind = frame.kind
        if self._waiting:
            if kind != "video" or not frame.keyframe:
                if kind == "video":
                    self._request_keyframe()
                return  # audio too, so that both start together
            self._waiting = False
        if self._part_start is None:
            self._part_start = now
        first = self._first.get(kind)
        if first is None:
            first = self._first[kind] = (frame.pts, now - self._part_start)
        at = self._base + first[1] + (frame.pts - first[0]) / frame.clock_rate
        rate = VIDEO_RATE if kind == "video" else AUDIO_RATE
        pts = round(at * rate)
        last = self._last_pts.get(kind)
        if last is not None and pts <= last:
            pts = last + 1
        try:
            self._queue.put_nowait(_Item(kind, frame.data, pts, frame.keyframe))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 500 == 0:
                log.warning("recording.dropping", dir=self.directory.name, dropped=self.dropped)
            if kind == "video":
                self._waiting = True  # a decoder needs the next keyframe
                self._generation = generation  # the same part: its timeline goes on
                self._request_keyframe()
            return
        self._last_pts[kind] = pts
        self.frames[kind] += 1
        self._end = max(self._end, at + FRAME_SECONDS[kind])

    async def close(self) -> Written:
        """Stop recording; the file, its captions and its note are complete when this returns."""
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._queue.put, None)
            await asyncio.to_thread(self._thread.join)
            await asyncio.to_thread(self._finish)
        return Written(
            media=self.media,
            media_type=self.media_type,
            duration_s=self._end,
            video_frames=self.frames["video"],
            audio_frames=self.frames["audio"],
            dropped=self.dropped,
            cues=sum(1 for _, text in self._lines if text),
            failed=self.failed,
        )

    def _finish(self) -> None:
        if not self.directory.is_dir():
            return  # nothing was ever written
        (self.directory / CAPTIONS).write_text(webvtt(self._lines, self._end), encoding="utf-8")
        meta = {"media": self.media, "media_type": self.media_type, "duration_s": self._end}
        write_meta(self.directory, meta, self._retention)

    # -- the writing thread -----------------------------------------------------------------------

    def _write(self) -> None:
        container: Any = None
        streams: dict[str, Any] = {}
        try:
            while (item := self._queue.get()) is not None:
                if self.failed:
                    continue  # keep draining, so that the show's side never finds the queue full
                try:
                    if container is None:
                        container, streams = self._open(item)
                    packet = av.Packet(item.data)
                    packet.stream = streams[item.kind]
                    packet.pts = packet.dts = item.pts
                    rate = VIDEO_RATE if item.kind == "video" else AUDIO_RATE
                    packet.time_base = fractions.Fraction(1, rate)
                    packet.is_keyframe = item.keyframe
                    container.mux(packet)
                except Exception:
                    log.exception("recording.failed", dir=self.directory.name)
                    self.failed = True
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:
                    log.exception("recording.close_failed", dir=self.directory.name)
                    self.failed = True

    def _open(self, first: _Item) -> tuple[Any, dict[str, Any]]:
        self.directory.mkdir(parents=True, exist_ok=True)
        container = av.open(
            str(self.directory / self.media), "w", format=self._format, options=self._options
        )
        streams: dict[str, Any] = {}
        if self._video is not None:
            width, height = picture_size(self._video, first.data)
            video = container.add_stream(self._video_codec, rate=30)
            context = video.codec_context
            assert isinstance(context, av.VideoCodecContext)
            context.width, context.height = width, height
            context.pix_fmt = "yuv420p"
            context.time_base = fractions.Fraction(1, VIDEO_RATE)
            video.time_base = fractions.Fraction(1, VIDEO_RATE)
            if self._video.lower() == "video/h264":
                context.open()
                # the performer's parameter sets, not those of the idle encoder
                context.extradata = h264_parameter_sets(first.data)
            streams["video"] = video
        audio = container.add_stream("libopus", rate=AUDIO_RATE)
        audio.codec_context.layout = "stereo"  # what WebRTC's Opus declares
        audio.time_base = fractions.Fraction(1, AUDIO_RATE)
        streams["audio"] = audio
        return container, streams


def picture_size(mime_type: str, keyframe: bytes) -> tuple[int, int]:
    """Width and height of a keyframe (VP8: its frame header; H.264: decoded once)."""
    if mime_type.lower() == "video/vp8":
        # RFC 6386 9.1: after the 3-byte frame tag and the start code, 14 bits each
        width = int.from_bytes(keyframe[6:8], "little") & 0x3FFF
        height = int.from_bytes(keyframe[8:10], "little") & 0x3FFF
        return width, height
    decoder = av.CodecContext.create("h264", "r")
    for frame in decoder.decode(av.Packet(keyframe)):
        return frame.width, frame.height
    for frame in decoder.decode(None):
        return frame.width, frame.height
    raise ValueError("the keyframe did not decode")


def h264_parameter_sets(access_unit: bytes) -> bytes:
    """The Annex-B SPS and PPS NAL units of an access unit (what MP4's avcC is made from)."""
    out = []
    for nal in access_unit.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01"):
        if nal and nal[0] & 0x1F in (7, 8):
            out.append(b"\x00\x00\x00\x01" + nal.rstrip(b"\x00"))
    return b"".join(out)
