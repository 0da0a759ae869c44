"""A lower rendition of a show's video or sound, made once per show: the performer's frames
decoded once, scaled (or mixed down) and encoded once, in a thread of its own, for every viewer
whose link needs it.

Decoding, scaling, encoding and packetising all run in the rendition's thread (PyAV releases
the GIL inside the codec calls); the loop only queues the show's frames for it (never waiting)
and gets back each encoded frame with its RTP payloads, cut once for every viewer. Each frame
keeps the timestamp (pts) of the original frame it was made from, so a viewer moved between
the original and a rendition stays on one timeline.
"""

from __future__ import annotations

import asyncio
import fractions
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import structlog
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from .frame import EncodedFrame, is_keyframe

log = structlog.get_logger(__name__)

KEYFRAME_INTERVAL = 2.0  # seconds between the rendition's keyframes, besides those asked for
QUEUE_FRAMES = 8  # the show's frames waiting for the thread; more: skip to the next keyframe
VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000  # Opus's RTP clock, whatever the sound's own rate

# The encoder and decoder PyAV names per codec (the performer's codec is the viewers' codec).
_DECODERS = {"video/vp8": "vp8", "video/h264": "h264"}
_ENCODERS = {"video/vp8": "libvpx", "video/h264": "libx264"}


@dataclass(frozen=True, slots=True)
class RenditionSpec:
    """One rung of the ladder: its name on the wire, its picture size and its bitrate."""

    name: str
    width: int
    height: int
    bitrate: int  # bits per second
    fps: int = 30  # what the encoder's rate control plans for (frames keep the show's timing)

    def __post_init__(self) -> None:
        if not self.name or self.name == ORIGINAL:
            raise ValueError(f"a rendition needs a name other than {ORIGINAL!r}")
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise ValueError(
                f"picture size must be positive and even, not {self.width}x{self.height}"
            )
        if self.bitrate <= 0 or self.fps <= 0:
            raise ValueError("bitrate and frame rate must be positive")


@dataclass(frozen=True, slots=True)
class SoundSpec:
    """A lighter sound: mono Opus at a constant bitrate, in packets of ``frame_ms`` (longer
    packets carry fewer headers: at 40 ms, 24 kbit/s is ~40 kbit/s on the wire, where the
    browser's own 20 ms packets at 32 kbit/s take ~60)."""

    name: str
    bitrate: int
    frame_ms: int = 40

    def __post_init__(self) -> None:
        if not self.name or self.name == ORIGINAL:
            raise ValueError(f"a rendition needs a name other than {ORIGINAL!r}")
        if not 6_000 <= self.bitrate <= 510_000:
            raise ValueError("an Opus bitrate is 6–510 kbit/s")
        if self.frame_ms not in (10, 20, 40, 60):
            raise ValueError(f"Opus packets are 10, 20, 40 or 60 ms, not {self.frame_ms}")


ORIGINAL = "original"  # the performer's own picture or sound, forwarded as it came
DEFAULT_LADDER = (
    RenditionSpec("360p", 640, 360, 500_000),
    RenditionSpec("180p", 320, 180, 150_000),
)
LOW_SOUND = SoundSpec("low", 24_000)


class Rendition:
    """One show's video at one rung of the ladder (or its sound, lighter: a :class:`SoundSpec`),
    encoded in a thread while it is running.

    ``on_frame(frame, payloads, generation)`` is called on the loop for every encoded frame;
    ``request_source_keyframe()`` (on the loop) when the decoder needs the performer's next
    keyframe to go on.
    """

    def __init__(
        self,
        spec: RenditionSpec | SoundSpec,
        mime_type: str,
        *,
        on_frame: Callable[[EncodedFrame, list[bytes], int], None],
        request_source_keyframe: Callable[[], object],
        keyframe_interval: float = KEYFRAME_INTERVAL,
    ) -> None:
        codec = mime_type.lower()
        self.kind = "audio" if isinstance(spec, SoundSpec) else "video"
        if codec not in (("audio/opus",) if self.kind == "audio" else _DECODERS):
            raise ValueError(f"no rendition of {mime_type}")
        self.spec = spec
        self.mime_type = mime_type
        self._codec = codec
        self._on_frame = on_frame
        self._request_source_keyframe = request_source_keyframe
        self._keyframe_ticks = round(keyframe_interval * VIDEO_CLOCK)
        self._queue: queue.SimpleQueue[tuple[EncodedFrame, int] | None] = queue.SimpleQueue()
        self._queued = 0  # frames in the queue (read and written on the loop's side only)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._force_keyframe = False
        self._waiting_source_keyframe = True
        self.frames_in = 0  # the show's frames taken
        self.frames_out = 0  # frames encoded
        self.keyframes = 0
        self.dropped = 0  # the show's frames skipped (queue full, or waiting for a keyframe)
        self.cpu_seconds = 0.0  # the thread's own CPU time, all told

    @property
    def queued(self) -> int:
        """The show's frames waiting for the thread."""
        return self._queued

    @property
    def running(self) -> bool:
        """Whether the rendition's thread takes frames."""
        return self._thread is not None

    def start(self) -> None:
        """Start the thread; it begins at the performer's next keyframe (asked for now)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._queue = queue.SimpleQueue()
        self._queued = 0
        self._waiting_source_keyframe = True
        self._force_keyframe = True
        self._thread = threading.Thread(
            target=self._run, args=(self._queue,), name=f"rendition-{self.spec.name}", daemon=True
        )
        self._thread.start()
        if self.kind == "video":
            self._request_source_keyframe()
        log.info("rendition.started", rendition=self.spec.name, codec=self.mime_type)

    def stop(self) -> threading.Thread | None:
        """Stop taking frames; the thread ends after the frame at hand (returned, to join)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            log.info("rendition.stopped", rendition=self.spec.name, frames=self.frames_out)
        return thread

    async def close(self) -> None:
        """Stop and wait for the thread to end (off the loop)."""
        thread = self.stop()
        if thread is not None:
            await asyncio.to_thread(thread.join, 5)

    def offer(self, frame: EncodedFrame, generation: int) -> None:
        """One of the show's video frames, on the loop; never waits."""
        if self._thread is None or frame.kind != self.kind:
            return
        if self._waiting_source_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                return
            self._waiting_source_keyframe = False
        if self._queued >= QUEUE_FRAMES:
            # The thread cannot keep up: drop what waits behind it and start again at a keyframe.
            self.dropped += 1
            self._waiting_source_keyframe = True
            self._request_source_keyframe()
            return
        self._queued += 1
        self.frames_in += 1
        self._queue.put((frame, generation))

    def request_keyframe(self) -> None:
        """The next frame the rendition encodes is a keyframe (a viewer asked, or is joining)."""
        self._force_keyframe = True

    # The thread's side.

    def _run(self, frames: queue.SimpleQueue[tuple[EncodedFrame, int] | None]) -> None:
        started = time.thread_time()
        worker: _Worker | _SoundWorker
        worker = _SoundWorker(self) if self.kind == "audio" else _Worker(self)
        try:
            while (item := frames.get()) is not None:
                frame, generation = item
                self._call_soon(self._taken)
                try:
                    worker.take(frame, generation)
                except Exception:
                    log.exception("rendition.frame_failed", rendition=self.spec.name)
                    worker.reset()
                    self._call_soon(self._needs_source_keyframe)
                with self._lock:
                    self.cpu_seconds = time.thread_time() - started
        finally:
            with self._lock:
                self.cpu_seconds = time.thread_time() - started

    def _call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(callback, *args)
            except RuntimeError:
                pass  # the loop closed meanwhile: the show is over

    def _taken(self) -> None:
        self._queued = max(0, self._queued - 1)

    def _needs_source_keyframe(self) -> None:
        if self._thread is not None:
            self._waiting_source_keyframe = True
            self._request_source_keyframe()

    def _deliver(self, frame: EncodedFrame, payloads: list[bytes], generation: int) -> None:
        if self._thread is None:
            return  # stopped meanwhile: nobody wants it
        self.frames_out += 1
        if frame.keyframe:
            self.keyframes += 1
        self._on_frame(frame, payloads, generation)

    def _take_force_keyframe(self) -> bool:
        force, self._force_keyframe = self._force_keyframe, False
        return force


class _Worker:
    """What the rendition's thread holds: the decoder, the encoder and the packetiser."""

    def __init__(self, rendition: Rendition) -> None:
        self.rendition = rendition
        spec = rendition.spec
        assert isinstance(spec, RenditionSpec)
        self.spec = spec
        self.decoder: Any = None
        self.encoder: Any = None
        self.generation: int | None = None
        self.last_pts: int | None = None
        self.last_keyframe: int | None = None
        codec = RTCRtpCodecParameters(
            mimeType=rendition.mime_type, clockRate=VIDEO_CLOCK, payloadType=96
        )
        self.packer = get_encoder(codec)

    def reset(self) -> None:
        """Start again at the performer's next keyframe, with fresh codecs."""
        self.decoder = self.encoder = None
        self.last_pts = self.last_keyframe = None

    def take(self, frame: EncodedFrame, generation: int) -> None:
        if generation != self.generation:
            self.reset()  # a new performer: its own stream, maybe its own picture size
            self.generation = generation
        if self.decoder is None:
            if not frame.keyframe:
                return
            self.decoder = av.CodecContext.create(_DECODERS[self.rendition._codec], "r")
        packet = av.Packet(frame.data)
        packet.pts = frame.pts
        for picture in self.decoder.decode(packet):
            self._encode(picture, frame.pts, frame.clock_rate, generation)

    def _open_encoder(self) -> Any:
        spec = self.spec
        codec = self.rendition._codec
        encoder: Any = av.CodecContext.create(_ENCODERS[codec], "w")
        encoder.width, encoder.height = spec.width, spec.height
        encoder.pix_fmt = "yuv420p"
        encoder.bit_rate = spec.bitrate
        encoder.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        encoder.framerate = fractions.Fraction(spec.fps, 1)
        encoder.thread_count = 1
        if codec == "video/vp8":
            # As aiortc's own VP8 encoder: real time, constant bitrate, keyframes when we say.
            encoder.gop_size = 3000
            encoder.qmin, encoder.qmax = 2, 63  # a weak link wants the bitrate kept, not detail
            encoder.options = {
                "bufsize": str(spec.bitrate),
                "minrate": str(spec.bitrate),
                "maxrate": str(spec.bitrate),
                "cpu-used": "-6",
                "deadline": "realtime",
                "lag-in-frames": "0",
                "noise-sensitivity": "4",
                "overshoot-pct": "15",
                "undershoot-pct": "100",
                "static-thresh": "1",
                "partitions": "0",
            }
        else:
            # Constrained baseline at level 3.1, what aiortc offers viewers (42e01f).
            encoder.gop_size = 3000
            encoder.profile = "Baseline"
            encoder.options = {
                "level": "31",
                "tune": "zerolatency",
                "preset": "veryfast",
                "forced-idr": "1",
                "x264-params": "scenecut=0",  # keyframes when we say, not on a cut
                "maxrate": str(spec.bitrate),
                "bufsize": str(spec.bitrate),
            }
        return encoder

    def _encode(self, picture: Any, pts: int, clock_rate: int, generation: int) -> None:
        if self.last_pts is not None and pts <= self.last_pts:
            return  # an encoder wants its timestamps to grow
        if self.encoder is None:
            self.encoder = self._open_encoder()
        spec = self.spec
        scaled = picture.reformat(width=spec.width, height=spec.height, format="yuv420p")
        scaled.pts = pts
        scaled.time_base = fractions.Fraction(1, clock_rate)
        due = (
            self.last_keyframe is None or pts - self.last_keyframe >= self.rendition._keyframe_ticks
        )
        if self.rendition._take_force_keyframe() or due:
            scaled.pict_type = av.video.frame.PictureType.I
        else:
            scaled.pict_type = av.video.frame.PictureType.NONE
        self.last_pts = pts
        for packet in self.encoder.encode(scaled):
            data = bytes(packet)
            if not data:
                continue
            keyframe = is_keyframe(self.rendition.mime_type, data)
            if keyframe:
                self.last_keyframe = pts
            out = av.Packet(data)
            out.pts = pts
            out.time_base = fractions.Fraction(1, clock_rate)
            payloads, _ = self.packer.pack(out)
            frame = EncodedFrame("video", self.rendition.mime_type, data, pts, clock_rate, keyframe)
            self.rendition._call_soon(self.rendition._deliver, frame, payloads, generation)


class _SoundWorker:
    """The sound rendition's thread: Opus decoded, mixed down to mono, cut into packets of the
    spec's length and encoded again; each packet keeps the timestamp of the sound it carries."""

    def __init__(self, rendition: Rendition) -> None:
        self.rendition = rendition
        spec = rendition.spec
        assert isinstance(spec, SoundSpec)
        self.spec = spec
        self.samples = spec.frame_ms * AUDIO_CLOCK // 1000
        self.generation: int | None = None
        self.decoder: Any = None
        self.encoder: Any = None
        self.resampler: Any = None
        self.expected: int | None = None  # the timestamp the next decoded sound should have
        self.next_pts = 0  # the timestamp of the next packet cut for the encoder
        self.pending: deque[int] = deque()  # timestamps of what the encoder holds

    def reset(self) -> None:
        """Start again with fresh codecs (a new performer, or a failure)."""
        self.decoder = self.encoder = self.resampler = None
        self.expected = None
        self.pending.clear()

    def _open(self) -> None:
        self.decoder = av.CodecContext.create("libopus", "r")
        self.decoder.sample_rate = AUDIO_CLOCK
        self.decoder.layout = "stereo"
        self.decoder.format = "s16"
        self._open_encoder()

    def _open_encoder(self) -> None:
        encoder: Any = av.CodecContext.create("libopus", "w")
        encoder.sample_rate = AUDIO_CLOCK
        encoder.layout = "mono"
        encoder.format = "s16"
        encoder.bit_rate = self.spec.bitrate
        encoder.time_base = fractions.Fraction(1, AUDIO_CLOCK)
        # Constant bitrate: what a weak link must carry is known in advance.
        encoder.options = {
            "application": "audio",
            "frame_duration": str(self.spec.frame_ms),
            "vbr": "off",
            "compression_level": "5",  # of 10: a third less CPU (bench/rendition.py)
        }
        self.encoder = encoder
        self.resampler = av.AudioResampler(
            format="s16", layout="mono", rate=AUDIO_CLOCK, frame_size=self.samples
        )
        self.pending.clear()

    def take(self, frame: EncodedFrame, generation: int) -> None:
        if generation != self.generation:
            self.reset()
            self.generation = generation
        if self.decoder is None:
            self._open()
        packet = av.Packet(frame.data)
        packet.pts = frame.pts
        packet.time_base = fractions.Fraction(1, frame.clock_rate)
        for sound in self.decoder.decode(packet):
            pts = frame.pts * AUDIO_CLOCK // frame.clock_rate
            if self.expected is None or abs(pts - self.expected) > self.samples:
                # The first sound, or a gap in the performer's: the packets start again here
                # (what the encoder still held of before goes).
                self._open_encoder()
                self.next_pts = pts
            self.expected = pts + sound.samples
            sound.pts = None
            for piece in self.resampler.resample(sound):
                self.pending.append(self.next_pts)
                self.next_pts += piece.samples
                piece.pts = None
                for out in self.encoder.encode(piece):
                    self._deliver(bytes(out))

    def _deliver(self, data: bytes) -> None:
        if not data or not self.pending:
            return
        pts = self.pending.popleft()
        frame = EncodedFrame("audio", self.rendition.mime_type, data, pts, AUDIO_CLOCK, True)
        self.rendition._call_soon(self.rendition._deliver, frame, [data], self.generation or 0)
