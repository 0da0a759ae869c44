"""Bounded per-consumer frame queue that skips to the next keyframe instead of growing."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from .exceptions import FrameQueueClosed
from .frame import EncodedFrame, MediaKind


class FrameQueue:
    """Frames for one consumer: the producer never waits and the queue never outgrows maxsize."""

    def __init__(
        self,
        kind: MediaKind,
        maxsize: int,
        *,
        on_keyframe_needed: Callable[[], object] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize}")
        self.kind: MediaKind = kind
        self.maxsize = maxsize
        self.dropped = 0
        self._frames: deque[EncodedFrame] = deque()
        self._on_keyframe_needed = on_keyframe_needed
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        # A video decoder can only start at a keyframe, so a fresh queue waits for one.
        self.awaiting_keyframe = kind == "video"

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    def put(self, frame: EncodedFrame) -> bool:
        """Queue a frame without waiting; False if it was dropped."""
        if self._closed:
            return False
        if self.awaiting_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                return False
            self.awaiting_keyframe = False
        if len(self._frames) >= self.maxsize:
            if self.kind == "audio":
                # Opus packets stand alone: losing the oldest costs a click, not the stream.
                self._frames.popleft()
                self.dropped += 1
            else:
                # Deltas after a gap would decode to garbage, so drop everything up to a keyframe.
                self.dropped += len(self._frames)
                self._frames.clear()
                if not frame.keyframe:
                    self.dropped += 1
                    self.wait_for_keyframe()
                    return False
        self._frames.append(frame)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        return True

    def wait_for_keyframe(self) -> None:
        """Accept no video frame until the next keyframe (after a gap or a change of source)."""
        if self.kind != "video":
            return
        self.awaiting_keyframe = True
        if self._on_keyframe_needed is not None:
            self._on_keyframe_needed()

    async def get(self) -> EncodedFrame:
        """Next frame, waiting for one; raises FrameQueueClosed once closed."""
        while not self._frames:
            if self._closed:
                raise FrameQueueClosed
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._frames.popleft()

    def close(self, *, discard: bool = True) -> None:
        """Accept no more frames; the consumer gets FrameQueueClosed once the queue is empty."""
        self._closed = True
        if discard:
            self._frames.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
