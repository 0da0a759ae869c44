"""The Python client: speaks the WebSocket protocol and WebRTC like a browser would.

Used by tests, load generators and bots. A viewer joins by code and receives media, decoding frames
or only counting them; a performer publishes any aiortc tracks. A session opened with
``resume=True`` comes back by itself, as the pages do: when its WebSocket is lost it connects to
the same address again (with growing pauses), and when its node says ``node.draining`` it moves
at once, its new connection carrying on before the old one is let go; either way the viewer
rejoins as the same member, reads the chat it missed and starts media again, and the performer
publishes again (docs/protocol.md, "Moving and coming back").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame
from av.frame import Frame
from av.packet import Packet

from media.codecs import prefer_codec
from media.frame import EncodedFrame, opus_samples
from media.ice import rtc_configuration
from media.receiver import EncodedReceiver
from media.seams import release_peer

Event = dict[str, Any]
Listener = Callable[[Event], None]

FIRST_PAUSE = 0.25  # seconds before connecting again after the first failed attempt; doubling
LONGEST_PAUSE = 5.0  # at most this far apart
CONNECT_TIMEOUT = 10.0  # seconds to open a WebSocket and hear the server's hello (as before)
SILENCE = 3.0  # seconds without a word from the node before the client asks it (`ping`)
PING_TIMEOUT = 3.0  # seconds it has to answer, else the connection counts as lost: a host that
# vanished silently (power, network) closes nothing, and nothing else would notice for minutes
MOVE_WAIT = 5.0  # seconds new media may take to arrive before the old is let go anyway
LINGER_MARGIN = 2.0  # seconds past a draining node's window before a lingering socket is closed
HISTORY_OVERLAP_MS = 10_000  # chat history after coming back starts this long before the newest
# message seen: two messages said at once may arrive in either order, and a node that dies between
# them takes the older one with it (its id is below the newest seen); repeats are dropped by id
# Closes after which coming back makes no sense: the performer removed this viewer (4003), or
# its ticket is in use on another device (4009: coming back would take it back, and so on).
FINAL_CLOSES = frozenset({4003, 4009})
# Refusals that end coming back: the show ended, the link is not valid any more.
FINAL_ERRORS = frozenset({"show_not_found", "show_cancelled", "forbidden"})


class ProtocolError(Exception):
    """The server answered a request with an error envelope."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.details = details


def _ice_servers(hello: dict[str, Any]) -> list[RTCIceServer]:
    return [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in hello.get("ice_servers", [])
    ]


class Link:
    """One WebSocket to a node: requests with ids and replies matched to them; events go to the
    session that opened it."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        http: aiohttp.ClientSession,
        hello: dict[str, Any],
        on_event: Callable[[Link, Event], None],
        on_closed: Callable[[Link], None],
    ) -> None:
        self.ws = ws
        self.hello = hello
        self._http = http
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._on_event = on_event
        self._on_closed = on_closed
        self.heard_at = time.monotonic()  # the node's last word
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read())
        self._heartbeat = loop.create_task(self._listen_for_silence())

    @property
    def ice_servers(self) -> list[RTCIceServer]:
        """The ICE servers the server offered in its hello (none unless configured)."""
        return _ice_servers(self.hello)

    @property
    def closed(self) -> bool:
        """Whether the WebSocket has closed."""
        return self.ws.closed

    def stall(self) -> None:
        """Stop reading (and so answering pings), and asking whether the node is there."""
        self._heartbeat.cancel()
        self._reader.cancel()

    async def _listen_for_silence(self) -> None:
        """After :data:`SILENCE` seconds without a word from the node, ``ping`` it; no answer
        within :data:`PING_TIMEOUT`: end the socket, so that the session comes back elsewhere."""
        while not self.ws.closed:
            wait = self.heard_at + SILENCE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                await self.request("ping", timeout=PING_TIMEOUT)
            except ProtocolError:
                pass  # an answer (rate_limited, say) all the same: the node is there
            except TimeoutError:
                self.abandon()
                return
            except ConnectionError:
                return

    def abandon(self) -> None:
        """End the socket at once, without a closing handshake (the other end may be gone)."""
        sock = self.ws.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.heard_at = time.monotonic()
                if raw.type is not aiohttp.WSMsgType.TEXT:
                    continue
                message = raw.json()
                future = self._pending.pop(message.get("id"), None) if "id" in message else None
                if future is not None and not future.done():
                    future.set_result(message)
                elif message.get("type") != "result":
                    self._on_event(self, message)
        finally:
            self._heartbeat.cancel()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the connection closed"))
            self._pending.clear()
            self._on_closed(self)

    async def request(self, type_: str, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
        """Send a command and return its result, or raise :class:`ProtocolError`."""
        if "id" in fields or "type" in fields:
            raise ValueError("'id' and 'type' belong to the envelope")
        if self.ws.closed:
            raise ConnectionError("the connection closed")
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

    async def wait_closed(self) -> None:
        """Return once the WebSocket has closed (whoever closed it)."""
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(self._reader)

    async def close(self) -> None:
        """Close the WebSocket and its HTTP session."""
        self._heartbeat.cancel()
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self._http.close()


Resume = Callable[[Link, bool], Awaitable[None]]


class Session:
    """A client's connection to the service: requests and replies, events queued.

    With ``resume`` the session outlives its WebSockets. When one is lost (not closed by
    :meth:`close`, nor by the performer removing this viewer) the session connects to the same
    address again, with pauses from :data:`FIRST_PAUSE` doubling to :data:`LONGEST_PAUSE`; when
    the node says ``node.draining`` it opens the new connection at once while the old one still
    works. Either way each registered resumer (see :meth:`on_resume`: a watcher's, a performer's)
    carries on over the new connection before it becomes the session's, and then the old one is
    closed (make before break). Events of the new connection meanwhile wait and follow then (an
    event near the switch may come twice: chat ids tell). With ``linger_on_move`` (a performer's
    session) the old one is left to its node to close, at the end of its drain window, so that
    nodes pulling the show from it have time to follow it to the new one. ``reconnects`` counts
    the switches,
    ``moves`` those a draining node asked for; the queue gets ``{"type": "resumed", "moved"}``
    after each, and ``{"type": "closed"}`` only when the session ends.
    """

    def __init__(
        self,
        link: Link | None,
        opener: Callable[[Session], Awaitable[Link]] | None = None,
        *,
        resume: bool = False,
    ) -> None:
        self._link = link
        self._opener = opener
        self.resume = resume and opener is not None
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.reconnects = 0
        self.moves = 0
        self._listeners: list[Listener] = []
        self._resumers: list[Resume] = []
        self._next: Link | None = None
        self._held: list[Event] = []
        self._replacing: asyncio.Task[None] | None = None
        self._closing = False
        self.linger_on_move = False
        self._drain_within = 0.0  # seconds the draining node gave, as it said
        self._lingering: set[asyncio.Task[None]] = set()

    @classmethod
    async def connect(
        cls,
        base_url: str,
        *,
        origin: str | None = None,
        headers: dict[str, str] | None = None,
        local_address: str | None = None,
        resume: bool = False,
    ) -> Session:
        """Open a session to ``base_url`` (http://host:port) and wait for the server's hello.

        ``local_address`` binds this end of the socket to that address: on loopback, clients
        spread over 127.0.0.0/8 are different addresses to the node (its limits are per address).
        ``resume``: come back by itself (see the class).
        """
        sent = {**(headers or {}), **({"Origin": origin} if origin else {})} or None
        url = base_url.rstrip("/") + "/ws"

        async def opener(session: Session) -> Link:
            connector = (
                None
                if local_address is None
                else aiohttp.TCPConnector(local_addr=(local_address, 0))
            )
            http = aiohttp.ClientSession(connector=connector)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    ws = await http.ws_connect(url, headers=sent)
                    hello = await ws.receive_json()
            except BaseException:
                await http.close()
                raise
            return Link(ws, http, hello, session._arrived, session._lost)

        session = cls(None, opener, resume=resume)
        session._link = await opener(session)
        return session

    @property
    def link(self) -> Link:
        """The WebSocket the session uses now."""
        assert self._link is not None, "not connected"
        return self._link

    @property
    def ws(self) -> aiohttp.ClientWebSocketResponse:
        """The WebSocket the session uses now."""
        return self.link.ws

    @property
    def hello(self) -> dict[str, Any]:
        """The server's hello on the current WebSocket."""
        return self.link.hello

    @property
    def ice_servers(self) -> list[RTCIceServer]:
        """The ICE servers the server offered in its hello (none unless configured)."""
        return self.link.ice_servers

    async def request(self, type_: str, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
        """Send a command on the current WebSocket and return its result, or raise
        :class:`ProtocolError` (``ConnectionError`` if the WebSocket is lost meanwhile)."""
        return await self.link.request(type_, timeout, **fields)

    async def next_event(self, type_: str, timeout: float = 10.0) -> Event:
        """Wait for the next event of a type, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if event.get("type") in (type_, "closed"):
                    return event

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every event as it comes (before it is queued); returns a
        function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def on_resume(self, resume: Resume) -> Callable[[], None]:
        """Run ``resume(link, moving)`` on each new WebSocket before it becomes the session's:
        ``moving`` while the old one still works (a drain), so media can start on the new one
        before the old is let go. Returns a function that stops it."""
        self._resumers.append(resume)
        return lambda: self._resumers.remove(resume) if resume in self._resumers else None

    def _arrived(self, link: Link, event: Event) -> None:
        if link is self._link:
            self._dispatch(event)
        elif link is self._next:
            self._held.append(event)  # follows once the new connection is the session's
        # else: a connection let go of; its late events are the new one's too

    def _dispatch(self, event: Event) -> None:
        for listener in tuple(self._listeners):
            listener(event)
        if event.get("type") == "node.draining" and self.resume and not self._closing:
            self._drain_within = float(event.get("within") or 0)
            self._replace(moving=True)
        self.events.put_nowait(event)

    def _lost(self, link: Link) -> None:
        if link is not self._link:
            return  # a replacement that failed (its attempt goes on), or one let go of
        if self._closing or not self.resume or link.ws.close_code in FINAL_CLOSES:
            self.events.put_nowait({"type": "closed", "code": link.ws.close_code})
            return
        self._replace(moving=False)

    def _replace(self, *, moving: bool) -> None:
        if self._replacing is not None and not self._replacing.done():
            return  # already on its way to a new connection
        self._replacing = asyncio.get_running_loop().create_task(self._replace_link(moving))

    async def _replace_link(self, moving: bool) -> None:
        assert self._opener is not None
        old = self.link
        for attempt in itertools.count():
            if attempt:
                pause = min(LONGEST_PAUSE, FIRST_PAUSE * 2 ** (attempt - 1))
                await asyncio.sleep(pause * random.uniform(0.8, 1.2))
            try:
                link = await self._opener(self)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                continue
            self._next, self._held = link, []
            try:
                for resume in tuple(self._resumers):
                    await resume(link, moving and not old.closed)
            except ProtocolError as exc:
                await self._drop_next(link)
                if exc.code in FINAL_ERRORS:
                    self.events.put_nowait({"type": "closed", "code": old.ws.close_code})
                    return
                continue
            except Exception:  # lost again, timed out, refused media: the next attempt
                await self._drop_next(link)
                continue
            self._link, self._next = link, None
            held, self._held = self._held, []
            self.reconnects += 1
            self.moves += moving
            for event in held:
                self._dispatch(event)
            self.events.put_nowait({"type": "resumed", "moved": moving})
            if moving and self.linger_on_move:
                task = asyncio.get_running_loop().create_task(
                    self._let_go_later(old, self._drain_within + LINGER_MARGIN)
                )
                self._lingering.add(task)
                task.add_done_callback(self._lingering.discard)
            else:
                await old.close()
            return

    async def _let_go_later(self, old: Link, within: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(old.wait_closed(), within)
        await old.close()

    async def _drop_next(self, link: Link) -> None:
        self._next, self._held = None, []
        await link.close()

    def stall(self) -> None:
        """Stop reading, and so answering the server's pings, as a client whose network went
        away without a word: the server finds out by its heartbeat. Only :meth:`close` is of use
        afterwards (the session does not resume)."""
        self.resume = False
        self.link.stall()

    async def drop(self) -> None:
        """End the connection without a close frame, as a failing network does (the server sees
        the socket end), then close the session (it does not resume)."""
        self.resume = False
        self.link.abandon()
        await self.close()

    async def close(self) -> None:
        """Close the WebSocket (and any new one on its way) and end the session."""
        self._closing = True
        if self._replacing is not None:
            self._replacing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._replacing
        for task in tuple(self._lingering):
            task.cancel()
        await asyncio.gather(*self._lingering, return_exceptions=True)
        if self._next is not None:
            await self._next.close()
        if self._link is not None:
            await self._link.close()


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


Channel = Session | Link  # where a request goes: the session's WebSocket now, or a new one


@dataclass
class TrackStats:
    """What a viewer received on one track: frames, when, and the longest pause between two."""

    frames: int = 0
    seconds: float = 0.0  # of sound heard (audio tracks)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    first_frame_at: float | None = None
    last_frame_at: float | None = None
    longest_gap: float = 0.0  # seconds; set it to 0 to measure from now on

    def arrived(self, now: float) -> None:
        """One more frame, arrived at ``now`` (monotonic)."""
        self.frames += 1
        if self.first_frame_at is None:
            self.first_frame_at = now
        if self.last_frame_at is not None:
            self.longest_gap = max(self.longest_gap, now - self.last_frame_at)
        self.last_frame_at = now


class _Peer:
    """One peer connection of a viewer, with what reads it."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.tasks: set[asyncio.Task[None]] = set()
        self.taps: list[EncodedReceiver] = []
        self.audio_tracks = 0
        self.first_video = asyncio.Event()
        self.first_video_at: float | None = None

    def saw_video(self, now: float) -> None:
        if self.first_video_at is None:
            self.first_video_at = now
            self.first_video.set()

    async def close(self) -> None:
        for tap in self.taps:
            tap.close()
        await _close_peer(self.pc, self.tasks)


def _chat_order(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


def history_start(newest_seen: str) -> str:
    """Where chat history resumes after a lost connection: :data:`HISTORY_OVERLAP_MS` before
    the newest message seen."""
    ms, _ = _chat_order(newest_seen)
    return f"{max(0, ms - HISTORY_OVERLAP_MS)}-0"


async def chat_since(channel: Channel, after: str) -> list[Event]:
    """Every chat event after ``after``, page by page."""
    events: list[Event] = []
    while True:
        reply = await channel.request("chat.history", after=after)
        page = reply["messages"]
        events.extend(page)
        if not reply.get("more") or not page:
            return events
        last = page[-1]
        after = str(last.get("at_id", last["id"]))


class Watcher:
    """A viewer: joins a show by code and receives its media, decoding or only counting frames.

    With ``decode=False`` nothing is decoded at all: each receiver is tapped before media flows
    (:class:`media.receiver.EncodedReceiver`) and whole encoded frames are counted as aiortc's
    jitter buffer completes them, so many viewers cost one process little (no ``sizes`` then, and
    no audience sound kept as PCM, only counted).

    With ``relay_only`` the viewer's peer connection offers relayed candidates alone (through the
    first TURN server of the node's hello), as a viewer on a network that blocks everything else.

    The chat of its lobby is kept as it comes (``chat``, by id). On a session that resumes, the
    watcher comes back by itself: ``watch.join`` with its session token (the same member, the same
    lobby if it has room), ``chat.history`` after the newest message it saw, and ``watch.start``
    if it was watching; ``media_since`` is when the current peer connection's first video frame
    came, ``restarts`` how often media started again.
    """

    def __init__(self, session: Session, *, decode: bool = True, relay_only: bool = False) -> None:
        self.session = session
        self.decode = decode
        self.relay_only = relay_only
        self.show: dict[str, Any] = {}
        self.joined: dict[str, Any] = {}
        self.video = TrackStats()
        self.audio = TrackStats()
        self.hall = TrackStats()
        self.hall_pcm: list[tuple[float, bytes]] = []  # (arrival, s16 mono) of the audience sound
        self.chat: dict[str, Event] = {}
        self.last_chat_id: str | None = None
        self.started_at = 0.0
        self._starts = 0
        self._peer: _Peer | None = None
        self._code: str | None = None
        self._fields: dict[str, Any] = {}
        self._hall = False
        self._video = True
        self._watching = False
        self._waiting: asyncio.Task[None] | None = None
        self._awaiting_live = False
        self._media = asyncio.Lock()  # one start of media at a time
        self._unlisten = session.listen(self._heard)
        self._unresume: Callable[[], None] | None = None

    @property
    def pc(self) -> RTCPeerConnection | None:
        """The current peer connection."""
        return None if self._peer is None else self._peer.pc

    @property
    def media_since(self) -> float | None:
        """When the current peer connection's first video frame came (monotonic)."""
        return None if self._peer is None else self._peer.first_video_at

    @property
    def restarts(self) -> int:
        """How often media started again after the first time."""
        return max(0, self._starts - 1)

    @property
    def me(self) -> dict[str, Any]:
        """Who this viewer is in its lobby (``id``, ``name``, …)."""
        return dict(self.joined.get("me", {}))

    async def join(self, code: str, **fields: Any) -> dict[str, Any]:
        """Join by code (with any other ``watch.join`` fields: ``name``, ``lobby``, …); returns
        the show's public facts and whether it is live."""
        joined = await self.session.request("watch.join", code=code, **fields)
        self._code, self._fields = code, fields
        self._took(joined, joined["chat"])
        if self._unresume is None:
            self._unresume = self.session.on_resume(self._resume)
        return joined

    def _took(self, joined: dict[str, Any], chat: list[Event]) -> None:
        self.joined = joined
        self.show = joined["show"]
        for message in chat:
            self._heard(message)

    def _heard(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "chat.message" and event.get("lobby") == self.joined.get("lobby", {}).get("id"):
            self.chat[event["id"]] = event
            if self.last_chat_id is None or _chat_order(event["id"]) > _chat_order(
                self.last_chat_id
            ):
                self.last_chat_id = event["id"]
        elif kind == "chat.deleted":
            self.chat.pop(str(event.get("id")), None)
        elif kind == "show.state" and event.get("state") == "live" and self._awaiting_live:
            # came back while nobody performed: media starts again now the show is live
            self._awaiting_live = False
            self._waiting = asyncio.get_running_loop().create_task(self._start_again())

    async def _start_again(self) -> None:
        with contextlib.suppress(ProtocolError, ConnectionError, TimeoutError):
            async with self._media:
                if self._watching and self._peer is None:
                    await self._start_on(self.session, keep_old=False)

    async def _resume(self, link: Link, moving: bool) -> None:
        if self._code is None:
            return
        lobby = self.joined.get("lobby", {})
        fields = {**self._fields, "session": self.joined.get("session")}
        if lobby.get("code"):
            fields["lobby"] = lobby["code"]
        try:
            joined = await link.request("watch.join", code=self._code, **fields)
        except ProtocolError as exc:
            if exc.code not in ("lobby_full", "lobby_not_found"):
                raise
            fields.pop("lobby", None)  # no room there any more: any lobby, as the same member
            joined = await link.request("watch.join", code=self._code, **fields)
        chat = joined["chat"]
        if joined["lobby"]["id"] == lobby.get("id") and self.last_chat_id is not None:
            chat = await chat_since(link, history_start(self.last_chat_id))
        self._took(joined, chat)
        if not self._watching:
            return
        async with self._media:
            if joined["live"]:
                await self._start_on(link, keep_old=moving)
                return
            peer, self._peer = self._peer, None  # nobody performs now: media starts again
            self._awaiting_live = True  # with the next `live` (see _heard)
            if peer is not None:
                await peer.close()

    async def start(self, *, hall: bool = False, video: bool = True) -> None:
        """Take the server's offer, answer it and start receiving (with ``hall``, the audience
        sound too, as ``hall_frames``; without ``video``, the show's sound alone)."""
        self._hall, self._video, self._watching = hall, video, True
        async with self._media:
            await self._start_on(self.session, keep_old=False)

    async def _start_on(self, channel: Channel, *, keep_old: bool) -> None:
        """Media over ``channel``; with ``keep_old`` the current peer connection goes on until
        the new one brings video (or :data:`MOVE_WAIT` passes)."""
        self.started_at = time.monotonic()
        offer = await channel.request("watch.start", hall=self._hall, video=self._video)
        old, self._peer = self._peer, None
        if old is not None and not keep_old:
            await old.close()
            old = None
        config = rtc_configuration(channel.ice_servers, max_bundle=True, relay_only=self.relay_only)
        peer = self._peer = _Peer(RTCPeerConnection(config))
        pc = peer.pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if not self.decode:
                return  # counted by the taps, never decoded
            if track.kind == "video":
                work = self._consume(peer, track, self.video)
            elif peer.audio_tracks == 0:  # sections come in order: the show's sound first,
                work = self._consume(peer, track, self.audio)
                peer.audio_tracks += 1
            else:  # then the audience sound if asked
                work = self._listen(track)
            task = asyncio.get_running_loop().create_task(work)
            peer.tasks.add(task)
            task.add_done_callback(peer.tasks.discard)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            if not self.decode:
                self._count_encoded(peer)
            await pc.setLocalDescription(await pc.createAnswer())
            await channel.request("watch.answer", sdp=pc.localDescription.sdp)
        except BaseException:
            await peer.close()  # the old one, if kept, goes on
            if self._peer is peer:
                self._peer = old
            raise
        self._starts += 1
        if old is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(peer.first_video.wait(), MOVE_WAIT)
            await old.close()

    async def quality(
        self, *, video: bool | None = None, picture: str | None = None
    ) -> dict[str, Any]:
        """The picture and the sound, or the sound alone (kept when media starts again); the
        picture ``auto``, ``best`` or ``low``."""
        fields: dict[str, Any] = {}
        if video is not None:
            self._video = fields["video"] = video
        if picture is not None:
            fields["picture"] = picture
        return await self.session.request("watch.quality", **fields)

    def _count_encoded(self, peer: _Peer) -> None:
        # After setRemoteDescription the receivers have their tracks, and aiortc's decoder thread
        # starts only once the connection does: tapped now, it never sees a frame.
        audio = 0
        for transceiver in peer.pc.getTransceivers():
            if transceiver.kind == "video":
                stats = self.video
            else:  # sections come in order: the show's sound, then the audience sound if asked
                stats = self.audio if audio == 0 else self.hall
                audio += 1
            on_frame = functools.partial(_count, peer, stats, transceiver.kind == "video")
            peer.taps.append(EncodedReceiver(transceiver.receiver, on_frame=on_frame))

    async def _consume(self, peer: _Peer, track: MediaStreamTrack, stats: TrackStats) -> None:
        # aiortc decodes in its receiver; "counting only" still reads, so queues stay drained.
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                stats.arrived(now)
                if isinstance(frame, AudioFrame) and frame.sample_rate:
                    stats.seconds += frame.samples / frame.sample_rate
                if isinstance(frame, VideoFrame):
                    peer.saw_video(now)
                    if self.decode:
                        stats.sizes.add((frame.width, frame.height))

    async def _listen(self, track: MediaStreamTrack) -> None:
        # The audience sound, counted and kept as mono s16 for measuring its level.
        def heard(pcm: bytes) -> None:
            self.hall.frames += 1
            self.hall_pcm.append((time.monotonic(), pcm))

        await mono_pcm(track, heard)

    async def close(self) -> None:
        """Stop watching: close the peer connection and stop coming back (the session stays
        open, still seated; ``watch.leave`` leaves the lobby)."""
        self._watching = False
        self._code = None
        if self._unresume is not None:
            self._unresume()
            self._unresume = None
        self._unlisten()
        if self._waiting is not None:
            self._waiting.cancel()
        peer, self._peer = self._peer, None
        if peer is not None:
            await peer.close()


def _count(peer: _Peer, stats: TrackStats, video: bool, frame: EncodedFrame) -> None:
    now = time.monotonic()
    stats.arrived(now)
    if video:
        peer.saw_video(now)
    else:
        stats.seconds += opus_samples(frame.data) / 48_000


class TrackCopies:
    """One source track sent on more than one peer connection at once (a performer moving to
    another node publishes there before it lets go of the old one): each copy gets every frame
    the source makes from the moment it is taken; copies ended by their peer connection drop
    out."""

    def __init__(self, source: MediaStreamTrack) -> None:
        self.source = source
        self._copies: set[_TrackCopy] = set()
        self._pump: asyncio.Task[None] | None = None

    def copy(self) -> MediaStreamTrack:
        """A new copy of the source, for one more peer connection."""
        copy = _TrackCopy(self)
        self._copies.add(copy)
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())
        return copy

    def drop(self, copy: _TrackCopy) -> None:
        self._copies.discard(copy)

    async def _run(self) -> None:
        while True:
            try:
                frame: Frame | Packet[Any] | None = await self.source.recv()
            except MediaStreamError:
                frame = None
            for copy in tuple(self._copies):
                copy.put(frame)
            if frame is None:
                return

    async def close(self) -> None:
        """Stop reading the source (the source itself stays as it is)."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        for copy in tuple(self._copies):
            copy.put(None)


class _TrackCopy(MediaStreamTrack):
    QUEUE = 8  # frames; a sender reads in real time, so only a stall fills it (oldest go first)

    def __init__(self, owner: TrackCopies) -> None:
        super().__init__()
        self.kind = owner.source.kind
        self._owner = owner
        self._queue: asyncio.Queue[Frame | Packet[Any] | None] = asyncio.Queue(self.QUEUE)

    def put(self, frame: Frame | Packet[Any] | None) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(frame)

    async def recv(self) -> Frame | Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        return frame

    def stop(self) -> None:
        super().stop()
        self._owner.drop(self)


class Performer:
    """A performer: publishes aiortc tracks to a show with its performer token.

    On a session that resumes, the performer publishes again by itself on each new WebSocket
    (``perform.start`` with the same tracks), until :meth:`stop`; when its node drains it sends on
    the new connection before it lets go of the old one (``TrackCopies``).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pc: RTCPeerConnection | None = None
        self.codecs: dict[str, str] = {}
        self.hall_pcm: list[tuple[float, bytes]] = []  # (arrival, s16 mono) of the audience sound
        self._tasks: set[asyncio.Task[None]] = set()
        self._publishing: tuple[str, str, Sequence[MediaStreamTrack], str | None, bool] | None = (
            None
        )
        self._copies: list[TrackCopies] = []
        self._unresume: Callable[[], None] | None = None

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
        await self._close_copies()
        if self.session.resume:
            self._copies = [TrackCopies(track) for track in tracks]
            self.session.linger_on_move = True  # see _publish
            if self._unresume is None:
                self._unresume = self.session.on_resume(self._resume)
        self._publishing = (show_id, token, tracks, video_codec, hall)
        return await self._publish(self.session, keep_old=False)

    async def _resume(self, link: Link, moving: bool) -> None:
        if self._publishing is not None:
            await self._publish(link, keep_old=moving, old_link=self.session.link)

    async def _publish(
        self, channel: Channel, *, keep_old: bool, old_link: Link | None = None
    ) -> dict[str, str]:
        """Publish over ``channel``. With ``keep_old`` the current peer connection goes on until
        the new one connects, and then until its WebSocket (``old_link``) closes: the nodes that
        pull the show from the old node follow it to the new one meanwhile, and their viewers'
        picture never stops."""
        assert self._publishing is not None
        show_id, token, tracks, video_codec, hall = self._publishing
        old, old_tasks = self.pc, self._tasks
        self.pc, self._tasks = None, set()
        if old is not None and not keep_old:
            await _close_peer(old, old_tasks)
            old = None
        # max-bundle: see media.ice.rtc_configuration (a second audio section would not connect)
        config = rtc_configuration(channel.ice_servers, max_bundle=True)
        pc = self.pc = RTCPeerConnection(config)
        try:
            sending = [c.copy() for c in self._copies] if self._copies else list(tracks)
            for track in sending:
                transceiver = pc.addTransceiver(track, direction="sendonly")
                if track.kind == "video" and video_codec is not None:
                    prefer_codec(transceiver, video_codec)
            if hall:
                pc.addTransceiver("audio", direction="recvonly")
                tasks = self._tasks

                @pc.on("track")
                def on_track(track: MediaStreamTrack) -> None:
                    task = asyncio.get_running_loop().create_task(self._listen(track))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

            connected = asyncio.Event()

            @pc.on("connectionstatechange")
            def on_state() -> None:
                if pc.connectionState == "connected":
                    connected.set()

            await pc.setLocalDescription(await pc.createOffer())
            result = await channel.request(
                "perform.start", show=show_id, token=token, sdp=pc.localDescription.sdp
            )
            await pc.setRemoteDescription(RTCSessionDescription(result["sdp"], "answer"))
        except BaseException:
            await _close_peer(pc, self._tasks)  # the old one, if kept, goes on
            if self.pc is pc:
                self.pc, self._tasks = old, old_tasks
            raise
        self.codecs = result["codecs"]
        if old is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connected.wait(), MOVE_WAIT)
            if old_link is None:
                await _close_peer(old, old_tasks)
            else:
                task = asyncio.get_running_loop().create_task(
                    self._close_after(old_link, old, old_tasks)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return self.codecs

    async def _close_after(
        self, link: Link, pc: RTCPeerConnection, tasks: set[asyncio.Task[None]]
    ) -> None:
        try:
            await link.wait_closed()
        finally:
            await _close_peer(pc, tasks)

    async def _listen(self, track: MediaStreamTrack) -> None:
        # The audience sound, kept as mono s16 for measuring its level.
        await mono_pcm(track, lambda pcm: self.hall_pcm.append((time.monotonic(), pcm)))

    async def stop(self) -> None:
        """Stop broadcasting (the show pauses), and stop publishing again by itself."""
        self._publishing = None
        if self._unresume is not None:
            self._unresume()
            self._unresume = None
        with contextlib.suppress(ProtocolError, ConnectionError):
            await self.session.request("perform.stop")
        if self.pc is not None:
            await _close_peer(self.pc, self._tasks)
            self.pc = None
        await self._close_copies()

    async def _close_copies(self) -> None:
        for copies in self._copies:
            await copies.close()
        self._copies = []


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


class Cameras:
    """A member's foyer cameras: an optional camera track out, the lobby's tile slots in; the
    performer opens the audience wall with no camera. Each slot's pictures are decoded by aiortc
    and counted, with their sizes (``frames[slot]``, ``sizes[slot]``)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pc: RTCPeerConnection | None = None
        self.joined: dict[str, Any] = {}
        self.frames: dict[int, int] = {}
        self.sizes: dict[int, set[tuple[int, int]]] = {}
        self.camera: RTCRtpSender | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def join(self, camera: MediaStreamTrack | None = None, slots: int = 6) -> dict[str, Any]:
        """Offer the camera section (with ``camera`` as its track; without one the section
        sends nothing) and ``slots`` receive-only tile slots; apply the answer."""
        return await self._join(camera, slots, with_camera=True)

    async def join_wall(self, slots: int = 12) -> dict[str, Any]:
        """The performer's audience wall: receive-only slots, no camera section."""
        return await self._join(None, slots, with_camera=False)

    async def _join(
        self, camera: MediaStreamTrack | None, slots: int, *, with_camera: bool
    ) -> dict[str, Any]:
        await self.close()
        pc = self.pc = RTCPeerConnection(
            rtc_configuration(self.session.ice_servers, max_bundle=True)
        )
        if with_camera:
            sending = pc.addTransceiver(camera or "video", direction="sendonly")
            prefer_codec(sending, "video/VP8")
            self.camera = sending.sender
        receiving = [pc.addTransceiver("video", direction="recvonly") for _ in range(slots)]
        for transceiver in receiving:
            prefer_codec(transceiver, "video/VP8")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            slot = next(n for n, t in enumerate(receiving) if t.receiver.track is track)
            task = asyncio.get_running_loop().create_task(self._watch(slot, track))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        await pc.setLocalDescription(await pc.createOffer())
        self.joined = await self.session.request("camera.join", sdp=pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(self.joined["sdp"], "answer"))
        return self.joined

    async def _watch(self, slot: int, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames[slot] = self.frames.get(slot, 0) + 1
                if isinstance(frame, VideoFrame):
                    self.sizes.setdefault(slot, set()).add((frame.width, frame.height))

    async def set(self, on: bool, *, performer: bool = False) -> dict[str, Any]:
        """Turn the camera on or off (``performer``: shown to the performer too)."""
        return await self.session.request("camera.set", on=on, performer=performer)

    async def close(self) -> None:
        """Leave the cameras' peer connection (the server notices when it closes)."""
        await _close_peer(self.pc, self._tasks)
        self.pc = None
        self.camera = None
