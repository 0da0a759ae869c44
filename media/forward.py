"""Per-show broadcast hub: one performer's encoded frames fan out to every viewer's tracks."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import av
import structlog
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .buffer import FrameQueue
from .direct import DirectOutput, FrameOut, Packetizer
from .exceptions import FrameQueueClosed
from .frame import EncodedFrame, MediaKind, h264_size, vp8_size
from .keyframes import DEFAULT_MIN_INTERVAL, KeyframeRequests
from .receiver import EncodedReceiver
from .rendition import DEFAULT_LADDER, LOW_SOUND, ORIGINAL, Rendition, RenditionSpec, SoundSpec
from .seams import on_keyframe_request

log = structlog.get_logger(__name__)

# About two seconds of 30 fps video / 20 ms Opus: enough for scheduling hiccups, bounded memory.
DEFAULT_VIDEO_BUFFER = 64
DEFAULT_AUDIO_BUFFER = 100
# A joining viewer starts from the cached keyframe if it is at most this old, instead of a PLI.
DEFAULT_START_WINDOW = 0.5


class FrameTap(Protocol):
    """Something that takes every frame of a broadcast once (its recording); never waits."""

    def offer(self, frame: EncodedFrame, generation: int, now: float) -> None: ...


class ViewerTrack(MediaStreamTrack):
    """One viewer's audio or video: the show's encoded frames as av.Packets for its RTCRtpSender."""

    def __init__(
        self,
        kind: MediaKind,
        buffer_size: int,
        *,
        on_keyframe_needed: Callable[[], object],
        on_stop: Callable[[ViewerTrack], None],
        direct: bool = False,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.direct = direct
        self.media_kind: MediaKind = kind
        self._on_keyframe_needed = on_keyframe_needed
        needed = weakref.WeakMethod(self._keyframe_needed)  # no cycle through the queue
        self._queue = FrameQueue(
            kind, buffer_size, on_keyframe_needed=lambda: (bound := needed()) and bound()
        )
        self._on_stop: Callable[[ViewerTrack], None] | None = on_stop
        self._generation: int | None = None
        self._offset = 0
        self._last_pts: int | None = None
        self._last_wall = 0.0
        # Direct mode: frames go straight to the viewer's socket (media/direct.py) and aiortc's
        # sender task for this track never gets one; recv() just waits for the track to stop.
        self.output: DirectOutput | None = None
        self._frame_out: Callable[[EncodedFrame], FrameOut] | None = None
        self._on_bound: Callable[[ViewerTrack], None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        # Off: frames keep the track's timeline going but none is sent (a viewer listening to
        # the sound alone); the sequence numbers simply continue when they are sent again.
        self._sending = True
        # The picture sent now (the original or a rendition) and the one to switch to at its
        # next keyframe; the viewer's stream (SSRC, sequence numbers, timeline) goes on.
        self.layer = ORIGINAL
        self.target = ORIGINAL
        self._ask_layer: Callable[[str], object] | None = None  # a rendition's keyframe
        self._on_switched: Callable[[ViewerTrack, str], None] | None = None

    def use_layers(
        self, ask: Callable[[str], object], on_switched: Callable[[ViewerTrack, str], None]
    ) -> None:
        """How to ask a rendition for a keyframe, and whom to tell of a switch (old layer)."""
        self._ask_layer = ask
        self._on_switched = on_switched

    def switch_to(self, layer: str) -> None:
        """Send ``layer`` from its next keyframe on (asked for now); what is sent meanwhile goes
        on, so the picture never stops for a switch."""
        if layer == self.target:
            return
        self.target = layer
        if layer == self.layer:
            return  # a switch called off before it happened
        unbound = self.direct and (self.output is None or not self.output.bound)
        if not self._sending or unbound:
            self._switched()  # nothing on screen to keep: the picture starts at a keyframe
            self._queue.wait_for_keyframe()
        else:
            self.request_keyframe(layer)

    def request_keyframe(self, layer: str | None = None) -> None:
        """Ask the source of ``layer`` (by default the one awaited) for a keyframe."""
        if self.media_kind == "audio":
            return  # every Opus packet is one to start at
        layer = self.target if layer is None else layer
        if layer == ORIGINAL or self._ask_layer is None:
            self._on_keyframe_needed()
        else:
            self._ask_layer(layer)

    def _keyframe_needed(self) -> None:
        self.request_keyframe()

    def _switched(self) -> None:
        old, self.layer = self.layer, self.target
        if self._on_switched is not None:
            self._on_switched(self, old)

    def use_direct(
        self,
        output: DirectOutput,
        frame_out: Callable[[EncodedFrame], FrameOut],
        on_bound: Callable[[ViewerTrack], None],
    ) -> None:
        """Send this track's frames through ``output`` from now on."""
        self.output = output
        self._frame_out = frame_out
        self._on_bound = on_bound

    @property
    def sending(self) -> bool:
        """Whether the show's frames go to the viewer (off: sound only, for a video track)."""
        return self._sending

    def set_sending(self, on: bool) -> None:
        """Stop sending frames, or start again from the next keyframe (asked for at once)."""
        if on == self._sending:
            return
        self._sending = on
        if on:
            self._queue.wait_for_keyframe()

    @property
    def buffered(self) -> int:
        """Frames waiting for the sender."""
        return len(self._queue)

    @property
    def dropped(self) -> int:
        """Frames dropped because the sender fell behind or a keyframe was awaited."""
        return self._queue.dropped

    @property
    def awaiting_keyframe(self) -> bool:
        """Whether video is held back until the next keyframe."""
        return self._queue.awaiting_keyframe

    def offer(
        self,
        frame: EncodedFrame,
        generation: int,
        now: float,
        layer: str = ORIGINAL,
        out: FrameOut | None = None,
    ) -> bool:
        """Queue a frame of the given publisher generation, never waiting; False if dropped.

        ``layer`` names the picture the frame belongs to (a rendition's come with their
        payloads, ``out``): only the layer sent now goes on, until the one switched to brings
        a keyframe.
        """
        if layer != self.layer:
            if layer != self.target or not frame.keyframe:
                return False
            self._switched()
        if generation != self._generation:
            self._rebase(frame, generation, now)
        pts = frame.pts + self._offset
        if self._last_pts is not None and pts <= self._last_pts:
            # Timestamps must grow for the viewer's jitter buffer whatever the source does.
            pts = self._last_pts + 1
            self._offset = pts - frame.pts
        self._last_pts = pts
        self._last_wall = now
        if not self._sending:
            return False
        if self.output is not None:
            return self._send_direct(frame, pts, out)
        return self._queue.put(dataclasses.replace(frame, pts=pts))

    def _send_direct(self, frame: EncodedFrame, pts: int, out: FrameOut | None = None) -> bool:
        output, queue = self.output, self._queue
        assert output is not None and self._frame_out is not None
        if not output.ready:
            if not output.bind():
                queue.dropped += 1  # not connected yet: video keeps waiting for a keyframe
                return False
            if self._on_bound is not None and queue.awaiting_keyframe and not frame.keyframe:
                on_bound, self._on_bound = self._on_bound, None
                on_bound(self)  # catch up from the show's latest keyframe, or ask for one
                if not queue.awaiting_keyframe:
                    return self._send_direct(frame, self._next_pts(frame), out)
        if queue.awaiting_keyframe:
            if not frame.keyframe:
                queue.dropped += 1
                return False
            queue.awaiting_keyframe = False
        if output.send(out if out is not None else self._frame_out(frame), pts):
            return True
        # The viewer's socket is backed up: skip to the next keyframe instead of queueing.
        queue.dropped += 1
        queue.wait_for_keyframe()
        return False

    def _next_pts(self, frame: EncodedFrame) -> int:
        pts = max(frame.pts + self._offset, (self._last_pts or 0) + 1)
        self._offset = pts - frame.pts
        self._last_pts = pts
        return pts

    def _rebase(self, frame: EncodedFrame, generation: int, now: float) -> None:
        # A new performer starts its own clock at zero: continue this track's timeline instead,
        # advanced by the wall time that passed, so the viewer never renegotiates or stalls.
        if self._last_pts is None:
            self._offset = -frame.pts
        else:
            elapsed = max(1, round((now - self._last_wall) * frame.clock_rate))
            self._offset = self._last_pts + elapsed - frame.pts
        if self._generation is not None:
            self._queue.wait_for_keyframe()
        self._generation = generation

    async def recv(self) -> av.Packet[Any]:
        """Next encoded frame as a packet with this track's pts; MediaStreamError once stopped."""
        if self.readyState != "live":
            raise MediaStreamError
        if self.direct:
            if self._stopped is None:
                self._stopped = asyncio.get_running_loop().create_future()
            await self._stopped
            raise MediaStreamError
        try:
            frame = await self._queue.get()
        except FrameQueueClosed:
            self.stop()
            raise MediaStreamError from None
        packet = av.Packet(frame.data)
        packet.pts = frame.pts
        packet.time_base = frame.time_base
        return packet

    def stop(self) -> None:
        """End the track; its sender stops and the broadcast forgets it."""
        super().stop()
        self._queue.close()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        on_stop, self._on_stop = self._on_stop, None
        if on_stop is not None:
            on_stop(self)


class Viewer:
    """A viewer's video and audio tracks on one broadcast."""

    def __init__(self, broadcast: Broadcast, video: ViewerTrack, audio: ViewerTrack) -> None:
        self.broadcast = broadcast
        self.video = video
        self.audio = audio
        # Told the picture's layer whenever a switch happens (at the new layer's keyframe), and
        # the sound's (at its next packet).
        self.on_picture: Callable[[str], object] | None = None
        self.on_sound: Callable[[str], object] | None = None

    @property
    def picture(self) -> str:
        """The picture sent now: ``original`` or a rendition's name."""
        return self.video.layer

    def choose_picture(self, layer: str) -> None:
        """Switch to ``layer`` (``original`` or a rendition of the broadcast's ladder) at its
        next keyframe; ValueError for a layer the show does not have."""
        self.broadcast.switch(self.video, layer)

    @property
    def sound(self) -> str:
        """The sound sent now: ``original`` or the lighter sound's name."""
        return self.audio.layer

    def choose_sound(self, layer: str) -> None:
        """Switch to ``layer`` (``original`` or the broadcast's lighter sound) at its next
        packet; ValueError for a sound the show does not have."""
        self.broadcast.switch(self.audio, layer)

    def request_keyframe(self) -> None:
        """The viewer lost its picture (PLI/FIR): a keyframe from what it is sent, or is about
        to be."""
        self.video.request_keyframe()

    @property
    def tracks(self) -> tuple[ViewerTrack, ViewerTrack]:
        """Video then audio."""
        return (self.video, self.audio)

    @property
    def video_on(self) -> bool:
        """Whether the picture is sent (off: the viewer listens to the sound alone)."""
        return self.video.sending

    def send_video(self, on: bool) -> None:
        """Send the picture, or only the sound; the picture comes back from a keyframe."""
        self.video.set_sending(on)

    def forward_keyframe_requests(self, sender: RTCRtpSender) -> None:
        """Pass PLI/FIR that the viewer sends to this sender on to the performer, rate limited."""
        # aiortc's own answer to them only concerns its encoder, which forwarded frames skip.
        on_keyframe_request(sender, self.keyframe_requests())

    def keyframe_requests(self) -> Callable[[], None]:
        """:meth:`request_keyframe`, held weakly: what the viewer's sender and transports keep
        must not make a cycle through the viewer (it would wait for the cyclic collector to
        free a departed viewer's peer)."""
        method = weakref.WeakMethod(self.request_keyframe)

        def request() -> None:
            if (bound := method()) is not None:
                bound()

        return request

    def close(self) -> None:
        """Stop both tracks and leave the broadcast."""
        for track in self.tracks:
            track.stop()


class Ingest:
    """One performer's session on a broadcast; a newer session makes this one stale."""

    def __init__(
        self,
        broadcast: Broadcast,
        generation: int,
        request_keyframe: Callable[[], bool] | None,
    ) -> None:
        self.broadcast = broadcast
        self.generation = generation
        self.receivers: list[EncodedReceiver] = []
        self._request_keyframe = request_keyframe
        self._closed = False
        self.video_arrived = asyncio.Event()  # set by the session's first video frame

    @property
    def active(self) -> bool:
        """Whether frames pushed here still reach viewers."""
        return not self._closed and self.broadcast.generation == self.generation

    def attach(self, receiver: RTCRtpReceiver) -> EncodedReceiver:
        """Tap a publisher peer's receiver (best before its connection starts) into this ingest."""
        tapped = EncodedReceiver(receiver, on_frame=self.push)
        self.receivers.append(tapped)
        return tapped

    def push(self, frame: EncodedFrame) -> None:
        """Hand one encoded frame from the performer to the broadcast."""
        if self.active:
            if frame.kind == "video" and not self.video_arrived.is_set():
                self.video_arrived.set()
            self.broadcast._fan_out(frame, self.generation)

    def request_keyframe(self) -> bool:
        """Ask the performer for a keyframe now (unlimited: the broadcast rate-limits callers)."""
        if not self.active:
            return False
        if self._request_keyframe is not None:
            return self._request_keyframe()
        asked = [tapped.request_keyframe() for tapped in self.receivers if tapped.kind == "video"]
        return any(asked)

    def close(self) -> None:
        """End this performer's session; viewers keep their tracks and wait for the next one."""
        if self._closed:
            return
        self._closed = True
        for tapped in self.receivers:
            tapped.close()
        self.broadcast._ingest_closed(self)


class Broadcast:
    """Fan-out of one show's encoded media: one performer at a time, any number of viewers."""

    def __init__(
        self,
        *,
        video_buffer: int = DEFAULT_VIDEO_BUFFER,
        audio_buffer: int = DEFAULT_AUDIO_BUFFER,
        keyframe_interval: float = DEFAULT_MIN_INTERVAL,
        start_window: float = DEFAULT_START_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        ladder: tuple[RenditionSpec, ...] = DEFAULT_LADDER,
        sounds: tuple[SoundSpec, ...] = (LOW_SOUND,),
    ) -> None:
        self.generation = 0
        # Lower renditions of the picture and a lighter sound, each encoded once while some
        # viewer needs it.
        self.ladder = {spec.name: spec for spec in ladder}
        self.sounds = {spec.name: spec for spec in sounds}
        if set(self.ladder) & set(self.sounds):
            raise ValueError("a picture and a sound cannot share a name")
        # What the performer sends, in bits per second, measured over the last few seconds.
        self._rates: dict[MediaKind, _Rate] = {"video": _Rate(), "audio": _Rate()}
        self._renditions: dict[str, Rendition] = {}
        self._rendition_tracks: dict[str, set[ViewerTrack]] = {}
        self.video_size: tuple[int, int] | None = None  # the original's, where the codec says
        self.keyframes = KeyframeRequests(self._ask_performer, min_interval=keyframe_interval)
        self._video_buffer = video_buffer
        self._audio_buffer = audio_buffer
        self._start_window = start_window
        self._clock = clock
        self._ingest: Ingest | None = None
        self._viewers: set[Viewer] = set()
        self._tracks: dict[MediaKind, set[ViewerTrack]] = {"video": set(), "audio": set()}
        self._viewer_of: dict[ViewerTrack, Viewer] = {}
        self._codecs: dict[MediaKind, str] = {}
        # Frames since the latest keyframe, so a joining viewer can start without a PLI.
        self._gop: list[EncodedFrame] = []
        self._gop_started = -float("inf")
        self._gop_limit = max(1, video_buffer // 2)
        self.codec_mismatches = 0
        self._packetizers: dict[MediaKind, Packetizer] = {}
        # Tracks of each kind with a direct output: while there are any, each frame of the
        # original is packetised in the fan-out, once, not looked up by every track.
        self._direct_tracks: dict[MediaKind, int] = {"video": 0, "audio": 0}
        # The show's recording (media/recorder.py), fed once per show, if it is being recorded.
        self.recorder: FrameTap | None = None

    @property
    def viewers(self) -> int:
        """Number of viewers."""
        return len(self._viewers)

    @property
    def ingest(self) -> Ingest | None:
        """The current performer's session, if any."""
        return self._ingest

    def codec(self, kind: MediaKind) -> str | None:
        """Mime type viewers of this kind receive, once known from the performer's frames."""
        return self._codecs.get(kind)

    def open_ingest(self, request_keyframe: Callable[[], bool] | None = None) -> Ingest:
        """Start a performer's session, replacing any current one; viewers carry on."""
        if self._ingest is not None:
            self._ingest.close()
        self.generation += 1
        self._ingest = Ingest(self, self.generation, request_keyframe)
        self._gop = []
        if not self._viewers:
            # Nobody has negotiated a codec yet, so the new performer may bring another one.
            self._codecs.clear()
        if any(track.awaiting_keyframe for track in self._tracks["video"]):
            self.keyframes.request()
        return self._ingest

    def add_viewer(self, *, direct: bool = False) -> Viewer:
        """New viewer tracks; video starts at a keyframe (cached if recent, else requested).

        With ``direct`` the tracks send through :meth:`attach_direct` outputs, not aiortc's
        sender tasks; they start once the viewer's connection is up.
        """
        viewer = Viewer(
            self,
            ViewerTrack(
                "video",
                self._video_buffer,
                on_keyframe_needed=self.request_keyframe,
                on_stop=self._track_stopped,
                direct=direct,
            ),
            ViewerTrack(
                "audio",
                self._audio_buffer,
                on_keyframe_needed=self.request_keyframe,
                on_stop=self._track_stopped,
                direct=direct,
            ),
        )
        self._viewers.add(viewer)
        viewer.video.use_layers(self._layer_keyframe, self._switched)
        viewer.audio.use_layers(self._layer_keyframe, self._switched)
        for track in viewer.tracks:
            self._tracks[track.media_kind].add(track)
            self._viewer_of[track] = viewer
        if not direct:
            self._start_video(viewer.video)
        return viewer

    def attach_direct(self, track: ViewerTrack, output: DirectOutput) -> None:
        """Send ``track``'s frames through ``output``, packetised once per show."""
        if track.output is None and track in self._tracks[track.media_kind]:
            self._direct_tracks[track.media_kind] += 1
        track.use_direct(output, self._packetize, self._start_video)

    def _packetize(self, frame: EncodedFrame) -> FrameOut:
        packetizer = self._packetizers.get(frame.kind)
        if packetizer is None or packetizer.mime_type != frame.mime_type:
            packetizer = self._packetizers[frame.kind] = Packetizer(
                frame.mime_type, frame.clock_rate
            )
        return packetizer.frame_out(frame)

    def layers(self) -> list[str]:
        """The pictures a viewer may get, best first: the original, then each rendition smaller
        than it (all of them while its size is not known)."""
        size = self.video_size
        return [ORIGINAL] + [
            name for name, spec in self.ladder.items() if size is None or spec.height < size[1]
        ]

    def rendition(self, layer: str) -> Rendition | None:
        """The rendition of that name while it runs."""
        return self._renditions.get(layer)

    def bitrate(self, kind: MediaKind) -> float | None:
        """What the performer sends of ``kind`` now (encoded bits per second, over the last few
        seconds); None before it is known."""
        return self._rates[kind].bps

    def switch(self, track: ViewerTrack, layer: str) -> None:
        """Move a viewer's video (or sound) to ``layer`` at its next keyframe (a rendition
        starts for it if none runs)."""
        if layer != ORIGINAL:
            specs = self.ladder if track.media_kind == "video" else self.sounds
            if layer not in specs:
                raise ValueError(f"no {track.media_kind} called {layer!r}")
            self._need_rendition(layer).add(track)
        previous = track.target
        track.switch_to(layer)
        if previous not in (layer, track.layer):
            self._release(track, previous)  # a switch to it called off before it happened

    def _need_rendition(self, layer: str) -> set[ViewerTrack]:
        tracks = self._rendition_tracks.setdefault(layer, set())
        if layer not in self._renditions:
            spec: RenditionSpec | SoundSpec
            if layer in self.ladder:
                spec, codec = self.ladder[layer], self._codecs.get("video") or "video/VP8"
            else:
                spec, codec = self.sounds[layer], self._codecs.get("audio") or "audio/opus"
            rendition = Rendition(
                spec,
                codec,
                on_frame=lambda frame, payloads, generation: self._rendition_frame(
                    layer, frame, payloads, generation
                ),
                request_source_keyframe=self.request_keyframe,
            )
            self._renditions[layer] = rendition
            rendition.start()
        return tracks

    def _release(self, track: ViewerTrack, layer: str) -> None:
        """``track`` no longer needs ``layer``: a rendition nobody needs stops."""
        if layer == ORIGINAL or layer in (track.layer, track.target):
            return
        tracks = self._rendition_tracks.get(layer)
        if tracks is None:
            return
        tracks.discard(track)
        if not tracks:
            del self._rendition_tracks[layer]
            rendition = self._renditions.pop(layer, None)
            if rendition is not None:
                rendition.stop()

    def _switched(self, track: ViewerTrack, old: str) -> None:
        self._release(track, old)
        viewer = self._viewer_of.get(track)
        if viewer is None:
            return
        tell = viewer.on_picture if track.media_kind == "video" else viewer.on_sound
        if tell is not None:
            tell(track.layer)

    def _layer_keyframe(self, layer: str) -> None:
        rendition = self._renditions.get(layer)
        if rendition is not None:
            rendition.request_keyframe()

    def _rendition_frame(
        self, layer: str, frame: EncodedFrame, payloads: list[bytes], generation: int
    ) -> None:
        if generation != self.generation:
            return  # made from a performer who has gone since
        out = FrameOut.of(payloads)
        now = self._clock()
        for track in list(self._rendition_tracks.get(layer, ())):
            track.offer(frame, generation, now, layer, out)

    def _start_video(self, track: ViewerTrack) -> None:
        """Start a viewer's video at the show's latest keyframe if recent, else ask for one."""
        if track.layer != ORIGINAL:
            self._layer_keyframe(track.layer)
            return
        now = self._clock()
        if self._gop and now - self._gop_started <= self._start_window:
            for frame in self._gop:
                track.offer(frame, self.generation, now)
        else:
            self.request_keyframe()

    def remove_viewer(self, viewer: Viewer) -> None:
        """Stop a viewer's tracks; their senders end on their own."""
        viewer.close()

    def request_keyframe(self) -> None:
        """Ask the performer for a keyframe, coalesced with every other request."""
        self.keyframes.request()

    def close(self) -> None:
        """End the show: the performer's session and every viewer's tracks."""
        if self._ingest is not None:
            self._ingest.close()
        for viewer in list(self._viewers):
            viewer.close()
        self.keyframes.close()
        for rendition in self._renditions.values():
            rendition.stop()
        self._renditions.clear()
        self._rendition_tracks.clear()

    def _fan_out(self, frame: EncodedFrame, generation: int) -> None:
        codec = self._codecs.setdefault(frame.kind, frame.mime_type)
        if codec != frame.mime_type:
            # Viewers negotiated the first performer's codec; repacketising into another is
            # impossible without transcoding, which this path never does.
            self.codec_mismatches += 1
            if self.codec_mismatches == 1:
                log.warning("performer codec differs", got=frame.mime_type, want=codec)
            return
        now = self._clock()
        self._rates[frame.kind].add(len(frame.data), now)
        if frame.kind == "video":
            if frame.keyframe:
                size = (vp8_size if codec.lower() == "video/vp8" else h264_size)(frame.data)
                if size is not None:
                    self.video_size = size
                self.keyframes.keyframe_arrived()
                self._gop = [frame]
                self._gop_started = now
            else:
                if self._gop:
                    if len(self._gop) < self._gop_limit:
                        self._gop.append(frame)
                    else:
                        self._gop = []
                if self.keyframes.wanted:
                    # A request may have found no one to ask (performer not yet sending); the
                    # limiter drops the repeat if a request is already under way.
                    self.keyframes.request()
        out = self._packetize(frame) if self._direct_tracks[frame.kind] else None
        for track in self._tracks[frame.kind]:
            track.offer(frame, generation, now, ORIGINAL, out)
        for rendition in self._renditions.values():
            rendition.offer(frame, generation)  # each takes its own kind
        if self.recorder is not None:
            self.recorder.offer(frame, generation, now)

    def _ask_performer(self) -> bool:
        return self._ingest is not None and self._ingest.request_keyframe()

    def _ingest_closed(self, ingest: Ingest) -> None:
        if self._ingest is ingest:
            self._ingest = None
            self._gop = []

    def _track_stopped(self, track: ViewerTrack) -> None:
        if track in self._tracks[track.media_kind] and track.output is not None:
            self._direct_tracks[track.media_kind] -= 1
        self._tracks[track.media_kind].discard(track)
        for layer in {track.layer, track.target} - {ORIGINAL}:
            track.layer = track.target = ORIGINAL
            self._release(track, layer)
        viewer = self._viewer_of.pop(track, None)
        if viewer is not None and all(t.readyState == "ended" for t in viewer.tracks):
            self._viewers.discard(viewer)


class _Rate:
    """Bytes counted over windows of a few seconds: the rate of the last whole window."""

    WINDOW = 2.0

    __slots__ = ("bps", "bytes", "start")

    def __init__(self) -> None:
        self.bytes = 0
        self.start: float | None = None
        self.bps: float | None = None

    def add(self, size: int, now: float) -> None:
        if self.start is None:
            self.start = now
        elif now - self.start >= self.WINDOW:
            self.bps = self.bytes * 8 / (now - self.start)
            self.start, self.bytes = now, 0
        self.bytes += size
