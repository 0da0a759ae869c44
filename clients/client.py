"""The Python client: speaks the WebSocket protocol and WebRTC like a browser would.

Used by tests, load generators and bots. A viewer joins by code and receives media, decoding frames
or only counting them; a performer publishes any aiortc tracks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from media.codecs import prefer_codec
from media.frame import EncodedFrame
from media.ice import rtc_configuration
from media.receiver import EncodedReceiver
from media.seams import release_peer


class ProtocolError(Exception):
    """The server answered a request with an error envelope."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.details = details


class Session:
    """One WebSocket to a node: requests with ids, replies matched to them, events queued."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, http: aiohttp.ClientSession) -> None:
        self.ws = ws
        self._http = http
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.hello: dict[str, Any] = {}
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        base_url: str,
        *,
        origin: str | None = None,
        headers: dict[str, str] | None = None,
        local_address: str | None = None,
    ) -> Session:
        """Open a session to ``base_url`` (http://host:port) and wait for the server's hello.

        ``local_address`` binds this end of the socket to that address: on loopback, clients
        spread over 127.0.0.0/8 are different addresses to the node (its limits are per address).
        """
        connector = (
            None if local_address is None else aiohttp.TCPConnector(local_addr=(local_address, 0))
        )
        http = aiohttp.ClientSession(connector=connector)
        headers = {**(headers or {}), **({"Origin": origin} if origin else {})} or None
        try:
            ws = await http.ws_connect(base_url.rstrip("/") + "/ws", headers=headers)
        except Exception:
            await http.close()
            raise
        session = cls(ws, http)
        session.hello = await ws.receive_json(timeout=10)
        session._reader = asyncio.get_running_loop().create_task(session._read())
        return session

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                if raw.type is not aiohttp.WSMsgType.TEXT:
                    continue
                message = raw.json()
                future = self._pending.pop(message.get("id"), None) if "id" in message else None
                if future is not None and not future.done():
                    future.set_result(message)
                elif message.get("type") != "result":
                    self.events.put_nowait(message)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the connection closed"))
            self._pending.clear()
            self.events.put_nowait({"type": "closed", "code": self.ws.close_code})

    async def request(self, type_: str, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
        """Send a command and return its result, or raise :class:`ProtocolError`."""
        if "id" in fields or "type" in fields:
            raise ValueError("'id' and 'type' belong to the envelope")
        msg_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        await self.ws.send_json({"id": msg_id, "type": type_, **fields})
        # Not asyncio.wait_for: on Python 3.11 it returns a reply that came as the caller was
        # cancelled and drops the cancellation (CPython gh-86296), so a cancelled caller ran on.
        async with asyncio.timeout(timeout):
            reply = await future
        if not reply.get("success"):
            error = reply.get("error", {})
            raise ProtocolError(error.get("code", "error"), error.get("message", ""), error)
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def next_event(self, type_: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the next event of a type, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if event.get("type") in (type_, "closed"):
                    return event

    @property
    def ice_servers(self) -> list[RTCIceServer]:
        """The ICE servers the server offered in its hello (none unless configured)."""
        return [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in self.hello.get("ice_servers", [])
        ]

    def stall(self) -> None:
        """Stop reading, and so answering the server's pings, as a client whose network went
        away without a word: the server finds out by its heartbeat. Only :meth:`close` is of use
        afterwards."""
        if self._reader is not None:
            self._reader.cancel()

    async def drop(self) -> None:
        """End the connection without a close frame, as a failing network does (the server sees
        the socket end), then close the HTTP session."""
        sock = self.ws.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        await self.close()

    async def close(self) -> None:
        """Close the WebSocket and the HTTP session."""
        await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._http.close()


async def mono_pcm(track: MediaStreamTrack, sink: Callable[[bytes], object]) -> None:
    """Every audio frame of ``track``, decoded by aiortc, to ``sink`` as 48 kHz mono s16."""
    import av  # local: only listeners need the resampler

    resampler = av.AudioResampler(format="s16", layout="mono", rate=48000)
    with contextlib.suppress(MediaStreamError):
        while True:
            frame = await track.recv()
            for mono in resampler.resample(frame):  # type: ignore[arg-type]
                sink(bytes(mono.planes[0])[: 2 * mono.samples])


async def _close_peer(pc: RTCPeerConnection | None, tasks: set[asyncio.Task[None]]) -> None:
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if pc is not None:
        await asyncio.shield(pc.close())
        release_peer(pc)  # freed now, not whenever the cyclic collector runs


@dataclass
class TrackStats:
    """What a viewer received on one track."""

    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    first_frame_at: float | None = None


class Watcher:
    """A viewer: joins a show by code and receives its media, decoding or only counting frames.

    With ``decode=False`` nothing is decoded at all: each receiver is tapped before media flows
    (:class:`media.receiver.EncodedReceiver`) and whole encoded frames are counted as aiortc's
    jitter buffer completes them, so many viewers cost one process little (no ``sizes`` then, and
    no audience sound kept as PCM, only counted).
    """

    def __init__(self, session: Session, *, decode: bool = True) -> None:
        self.session = session
        self.decode = decode
        self.pc: RTCPeerConnection | None = None
        self.show: dict[str, Any] = {}
        self.video = TrackStats()
        self.audio = TrackStats()
        self.hall = TrackStats()
        self.hall_pcm: list[tuple[float, bytes]] = []  # (arrival, s16 mono) of the audience sound
        self._audio_tracks = 0
        self.started_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._taps: list[EncodedReceiver] = []

    async def join(self, code: str) -> dict[str, Any]:
        """Join by code; returns the show's public facts and whether it is live."""
        joined = await self.session.request("watch.join", code=code)
        self.show = joined["show"]
        return joined

    async def start(self, *, hall: bool = False) -> None:
        """Take the server's offer, answer it and start receiving (with ``hall``, the audience
        sound too, as ``hall_frames``)."""
        self.started_at = time.monotonic()
        offer = await self.session.request("watch.start", hall=hall)
        if self.pc is not None:
            await _close_peer(self.pc, set())
        config = rtc_configuration(self.session.ice_servers, max_bundle=True)
        pc = self.pc = RTCPeerConnection(config)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if not self.decode:
                return  # counted by the taps, never decoded
            if track.kind == "video":
                work = self._consume(track, self.video)
            elif self._audio_tracks == 0:  # sections come in order: the show's sound first,
                work = self._consume(track, self.audio)
                self._audio_tracks += 1
            else:  # then the audience sound if asked
                work = self._listen(track)
            task = asyncio.get_running_loop().create_task(work)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        if not self.decode:
            self._count_encoded(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        await self.session.request("watch.answer", sdp=pc.localDescription.sdp)

    def _count_encoded(self, pc: RTCPeerConnection) -> None:
        # After setRemoteDescription the receivers have their tracks, and aiortc's decoder thread
        # starts only once the connection does: tapped now, it never sees a frame.
        for tap in self._taps:
            tap.close()
        self._taps = []
        audio = 0
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":
                stats = self.video
            else:  # sections come in order: the show's sound, then the audience sound if asked
                stats = self.audio if audio == 0 else self.hall
                audio += 1
            self._taps.append(
                EncodedReceiver(transceiver.receiver, on_frame=functools.partial(_count, stats))
            )

    async def _consume(self, track: MediaStreamTrack, stats: TrackStats) -> None:
        # aiortc decodes in its receiver; "counting only" still reads, so queues stay drained.
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                stats.frames += 1
                if stats.first_frame_at is None:
                    stats.first_frame_at = time.monotonic()
                if self.decode and isinstance(frame, VideoFrame):
                    stats.sizes.add((frame.width, frame.height))

    async def _listen(self, track: MediaStreamTrack) -> None:
        # The audience sound, counted and kept as mono s16 for measuring its level.
        def heard(pcm: bytes) -> None:
            self.hall.frames += 1
            self.hall_pcm.append((time.monotonic(), pcm))

        await mono_pcm(track, heard)

    async def close(self) -> None:
        """Leave and close the peer connection (the session stays open)."""
        for tap in self._taps:
            tap.close()
        await _close_peer(self.pc, self._tasks)
        self.pc = None


def _count(stats: TrackStats, frame: EncodedFrame) -> None:
    stats.frames += 1
    if stats.first_frame_at is None:
        stats.first_frame_at = time.monotonic()


class Performer:
    """A performer: publishes aiortc tracks to a show with its performer token."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pc: RTCPeerConnection | None = None
        self.codecs: dict[str, str] = {}
        self.hall_pcm: list[tuple[float, bytes]] = []  # (arrival, s16 mono) of the audience sound
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self,
        show_id: str,
        token: str,
        tracks: Sequence[MediaStreamTrack],
        video_codec: str | None = None,
        *,
        hall: bool = False,
    ) -> dict[str, str]:
        """Offer the tracks (optionally forcing a video codec, and asking for the audience sound
        with ``hall``) and apply the server's answer."""
        if self.pc is not None:
            await _close_peer(self.pc, set())
        # max-bundle: see media.ice.rtc_configuration (a second audio section would not connect)
        config = rtc_configuration(self.session.ice_servers, max_bundle=True)
        pc = self.pc = RTCPeerConnection(config)
        for track in tracks:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            if track.kind == "video" and video_codec is not None:
                prefer_codec(transceiver, video_codec)
        if hall:
            pc.addTransceiver("audio", direction="recvonly")

            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                task = asyncio.get_running_loop().create_task(self._listen(track))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        await pc.setLocalDescription(await pc.createOffer())
        result = await self.session.request(
            "perform.start", show=show_id, token=token, sdp=pc.localDescription.sdp
        )
        await pc.setRemoteDescription(RTCSessionDescription(result["sdp"], "answer"))
        self.codecs = result["codecs"]
        return self.codecs

    async def _listen(self, track: MediaStreamTrack) -> None:
        # The audience sound, kept as mono s16 for measuring its level.
        await mono_pcm(track, lambda pcm: self.hall_pcm.append((time.monotonic(), pcm)))

    async def stop(self) -> None:
        """Stop broadcasting (the show pauses)."""
        with contextlib.suppress(ProtocolError, ConnectionError):
            await self.session.request("perform.stop")
        if self.pc is not None:
            await _close_peer(self.pc, set())
            self.pc = None


class Voice:
    """A member's lobby voice: an optional microphone track out, the lobby's voice slots in.

    Each slot's sound is decoded by aiortc and kept as mono s16 (``pcm[slot]``), for measuring who
    is heard; the performer joins with no microphone to hear a lobby on stage.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pc: RTCPeerConnection | None = None
        self.joined: dict[str, Any] = {}
        self.pcm: dict[int, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def join(self, mic: MediaStreamTrack | None = None, slots: int = 12) -> dict[str, Any]:
        """Offer the microphone (if any) and ``slots`` receive-only slots; apply the answer."""
        await self.close()
        pc = self.pc = RTCPeerConnection(
            rtc_configuration(self.session.ice_servers, max_bundle=True)
        )
        if mic is not None:
            pc.addTransceiver(mic, direction="sendonly")
        receiving = [pc.addTransceiver("audio", direction="recvonly") for _ in range(slots)]

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            slot = next(
                n for n, t in enumerate(receiving) if t.receiver.track is track
            )  # aiortc made the track for that transceiver
            task = asyncio.get_running_loop().create_task(self._listen(slot, track))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        await pc.setLocalDescription(await pc.createOffer())
        self.joined = await self.session.request("voice.join", sdp=pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(self.joined["sdp"], "answer"))
        return self.joined

    async def _listen(self, slot: int, track: MediaStreamTrack) -> None:
        await mono_pcm(track, self.pcm.setdefault(slot, []).append)

    def frames(self) -> int:
        """Audio frames heard so far, all slots together."""
        return sum(len(frames) for frames in self.pcm.values())

    async def mic(self, on: bool) -> dict[str, Any]:
        """Turn the microphone on or off."""
        return await self.session.request("voice.mic", on=on)

    async def close(self) -> None:
        """Leave the voice's peer connection (the server notices when it closes)."""
        await _close_peer(self.pc, self._tasks)
        self.pc = None
