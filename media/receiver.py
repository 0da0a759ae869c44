"""Encoded-frame tap on an aiortc RTCRtpReceiver: the performer's frames, depacketised, not decoded.

aiortc has no public way to receive encoded media: :func:`media.seams.tap_depayloaded_frames`
takes the receiver's depacketised frames before its decoder thread, and this module turns each one
into an :class:`EncodedFrame` on the event loop. The decoder thread still starts but only ever
reads the end-of-stream marker, so nothing is decoded and the remote track's unbounded queue
receives nothing but that marker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from .buffer import FrameQueue
from .exceptions import FrameQueueClosed, UnsupportedReceiverError
from .frame import EncodedFrame, MediaKind, is_keyframe
from .seams import rtx_ssrcs, send_pli, tap_depayloaded_frames

__all__ = ["EncodedFrame", "EncodedReceiver"]

log = structlog.get_logger(__name__)


class EncodedReceiver:
    """Delivers a publisher receiver's frames encoded, to a callback or an async iterator."""

    def __init__(
        self,
        receiver: RTCRtpReceiver,
        on_frame: Callable[[EncodedFrame], None] | None = None,
        *,
        queue_size: int = 128,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        track = receiver.track
        if track is None or track.kind not in ("audio", "video"):
            raise UnsupportedReceiverError("receiver has no remote audio or video track")
        self.kind: MediaKind = "audio" if track.kind == "audio" else "video"
        self.frames = 0
        self.keyframe_requests = 0
        self.ended = asyncio.Event()
        self._receiver = receiver
        self._on_frame = on_frame
        self._on_end = on_end
        self._queue = (
            FrameQueue(self.kind, queue_size, on_keyframe_needed=self.request_keyframe)
            if on_frame is None
            else None
        )
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        tap_depayloaded_frames(receiver, self._deliver, self._end)

    @property
    def receiver(self) -> RTCRtpReceiver:
        """The tapped aiortc receiver."""
        return self._receiver

    def request_keyframe(self) -> bool:
        """Send a PLI to the publisher for the stream being received; False if none to ask."""
        if self._closed or self.kind != "video":
            return False
        ssrc = self._media_ssrc()
        if ssrc is None:
            return False
        self.keyframe_requests += 1
        task = asyncio.get_running_loop().create_task(send_pli(self._receiver, ssrc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def close(self) -> None:
        """Stop delivering frames; the receiver stays tapped, so it never starts decoding."""
        self._closed = True
        if self._queue is not None:
            self._queue.close()
        for task in self._tasks:
            task.cancel()

    def __aiter__(self) -> EncodedReceiver:
        return self

    async def __anext__(self) -> EncodedFrame:
        if self._queue is None:
            raise TypeError("frames go to the on_frame callback, not to an iterator")
        try:
            return await self._queue.get()
        except FrameQueueClosed:
            raise StopAsyncIteration from None

    def _media_ssrc(self) -> int | None:
        # aiortc records RTX SSRCs as active sources too; a PLI must name the media stream.
        rtx = rtx_ssrcs(self._receiver)
        sources = [
            source
            for source in self._receiver.getSynchronizationSources()
            if source.source not in rtx
        ]
        if not sources:
            return None
        newest = max(sources, key=lambda source: source.timestamp)
        ssrc: int = newest.source
        return ssrc

    def _deliver(self, codec: RTCRtpCodecParameters, jitter_frame: JitterFrame) -> None:
        # Runs inside aiortc's packet handler: an exception here would break the transport.
        if self._closed:
            return
        try:
            data = bytes(jitter_frame.data)
            frame = EncodedFrame(
                kind=self.kind,
                mime_type=codec.mimeType,
                data=data,
                pts=jitter_frame.timestamp,
                clock_rate=codec.clockRate,
                keyframe=is_keyframe(codec.mimeType, data),
            )
            self.frames += 1
            if self._on_frame is not None:
                self._on_frame(frame)
            elif self._queue is not None:
                self._queue.put(frame)
        except Exception:
            log.exception("encoded frame delivery failed", kind=self.kind)

    def _end(self) -> None:
        if self.ended.is_set():
            return
        self.ended.set()
        if self._queue is not None:
            self._queue.close(discard=False)
        if self._on_end is not None:
            try:
                self._on_end()
            except Exception:
                log.exception("encoded receiver end callback failed", kind=self.kind)
