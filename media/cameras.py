"""Lobby cameras: members of a lobby see each other in small tiles, and the performer sees the
cameras shown to them (the audience wall). Every camera is forwarded as it came (VP8, never mixed
or re-encoded), cut into RTP payloads once for all who see it.

Every member who opens the foyer's cameras has one peer connection of its own, as for the voice
(:mod:`media.voice`): one section for their camera (``sendonly``; the browser adds its camera
only when the member turns it on) and a fixed number of receive-only **tile slots**. A camera
shown in the lobby gets the lowest free tile slot of the lobby (at most :data:`LOBBY_CAMERAS` at
once; the next ones wait their turn, in order); each member's track of that slot carries it. A
camera shown to the performer gets the lowest free slot of the show's **wall**
(:data:`WALL_SLOTS`), and the performer's wall connection has only receive-only slots.

When the lobby may show cameras is the voice's policy (:class:`rooms.voice.VoicePolicy`: before
and after the show, in an intermission, a lobby on stage); when it closes, the lobby's cameras
stop being shown there, and a camera shown to nobody any more is switched off (the member is told,
and their browser lets the camera go). Shown to the performer is the member's own choice, at any
time of the show. Frames beyond what a tile needs are dropped at the server whatever the browser
sends: another codec than VP8, pictures larger than :data:`MAX_WIDTH` × :data:`MAX_HEIGHT`,
more than :data:`MAX_FRAMES_PER_SECOND` or frames over :data:`MAX_FRAME_BYTES`.

The cameras of one lobby are this node's: members of the lobby on another node do not see them
(the voice crosses nodes; the cameras do not yet).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiortc import RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp

from media.codecs import prefer_codec
from media.direct import Packetizer
from media.forward import ViewerTrack
from media.frame import EncodedFrame, vp8_size
from media.ice import rtc_configuration
from media.keyframes import KeyframeRequests
from media.receiver import EncodedReceiver
from media.rendition import ORIGINAL
from media.seams import drop_empty_datagrams
from media.stage import InvalidSdp, UnsupportedMedia, close_peer, direct_output, parse_offer
from rooms import events
from rooms.voice import CameraClosed, VoicePolicy

log = structlog.get_logger(__name__)

LOBBY_CAMERAS = 6  # cameras shown in one lobby at once; the next ones wait
WALL_SLOTS = 12  # cameras on the performer's wall at once
MAX_WIDTH, MAX_HEIGHT = 320, 240  # a tile's largest picture
MAX_FRAMES_PER_SECOND = 20  # a tile is 15 fps; a margin for a browser's timing
MAX_FRAME_BYTES = 64 * 1024  # a 320×240 VP8 keyframe is a few kB
VIDEO_BUFFER = 30  # frames per tile track (only when sent through aiortc's sender)
CONNECT_TIMEOUT = 30.0
KEYFRAME_INTERVAL = 0.5  # the least time between two keyframe requests to one camera

Notify = Callable[[dict[str, Any]], object]


def _nothing(*_: object) -> None:
    """A tile track's end needs no bookkeeping."""


@dataclass(eq=False)
class CameraSeat:
    """A member's camera connection (their camera in, tile slots out), or the performer's wall
    (slots only)."""

    show_id: str
    lobby_id: str | None  # None: the performer's wall
    key: str  # the member id (or the performer connection's id)
    name: str  # the member's chosen display name, shown with their tile
    pc: RTCPeerConnection
    outputs: list[ViewerTrack]
    has_camera: bool
    notify: Notify | None = None  # events for this seat's connection
    on_gone: Callable[[CameraSeat], None] | None = None
    camera_on: bool = False
    to_lobby: bool = False  # the member wants the lobby to see them (while it may)
    to_performer: bool = False  # and the performer
    slot: int | None = None  # the tile slot in the lobby
    wall_slot: int | None = None  # the slot on the performer's wall
    waiting_since: float | None = None  # queued for a tile slot of the lobby
    generation: int = 0  # a new timeline for the camera each time it goes on
    answer_sdp: str = ""
    tap: EncodedReceiver | None = None
    keyframes: KeyframeRequests | None = None
    packetizer: Packetizer | None = None
    closed: bool = False
    deadline: asyncio.Task[None] | None = None
    oversize: bool = False  # the camera's last keyframe was larger than a tile: frames dropped
    dropped: int = 0  # frames refused (codec, size, rate)
    _window: tuple[int, int] = (0, 0)

    @property
    def slots(self) -> int:
        """How many cameras this seat can see at once."""
        return len(self.outputs)

    @property
    def wall(self) -> bool:
        """Whether this is the performer's wall (no camera of its own)."""
        return self.lobby_id is None

    def within_budget(self, frame: EncodedFrame, now: float) -> bool:
        """Whether a camera's frame is one a tile can take (codec, picture size and rate)."""
        if frame.mime_type.lower() != "video/vp8" or len(frame.data) > MAX_FRAME_BYTES:
            return False
        if frame.keyframe:
            size = vp8_size(frame.data)
            self.oversize = size is None or size[0] > MAX_WIDTH or size[1] > MAX_HEIGHT
        if self.oversize:
            return False
        second, count = self._window
        if int(now) != second:
            second, count = int(now), 0
        self._window = (second, count + 1)
        return count < MAX_FRAMES_PER_SECOND


@dataclass
class _ShowCameras:
    seats: set[CameraSeat] = field(default_factory=set)

    def lobby(self, lobby_id: str | None) -> list[CameraSeat]:
        return [seat for seat in self.seats if seat.lobby_id == lobby_id]

    def walls(self) -> list[CameraSeat]:
        return [seat for seat in self.seats if seat.wall]


class Cameras:
    """Every lobby camera and audience wall of this node, and the policy of each show."""

    def __init__(self, ice_servers: Sequence[RTCIceServer] = (), *, direct: bool = True) -> None:
        self._ice_servers = list(ice_servers)
        self._direct = direct
        self._shows: dict[str, _ShowCameras] = {}
        self._policies: dict[str, VoicePolicy] = {}
        self._generations = itertools.count(1)

    def seats(self, show_id: str, lobby_id: str | None = None) -> list[CameraSeat]:
        """The camera seats of a show on this node (of one lobby, if given)."""
        show = self._shows.get(show_id)
        if show is None:
            return []
        return list(show.seats) if lobby_id is None else show.lobby(lobby_id)

    def policy(self, show_id: str) -> VoicePolicy:
        """The show's policy on this node (closed until it is known)."""
        return self._policies.get(show_id) or VoicePolicy()

    def open(self, seat: CameraSeat) -> bool:
        """Whether the seat's lobby may show cameras now."""
        return self.policy(seat.show_id).may_speak(seat.lobby_id)

    async def join(
        self,
        show_id: str,
        lobby_id: str | None,
        key: str,
        name: str,
        offer_sdp: str,
        *,
        notify: Notify | None = None,
        on_gone: Callable[[CameraSeat], None] | None = None,
    ) -> CameraSeat:
        """Answer a member's camera offer (an optional camera section, then receive-only tile
        slots); ``lobby_id`` None: the performer's wall (slots only).

        ``notify`` gets the seat's events (``camera.state``, ``camera.off``, ``wall.state``);
        ``on_gone`` is called when the connection fails, is closed by the member or does not
        connect within :data:`CONNECT_TIMEOUT` (the seat has then left).
        """
        offer = parse_offer(offer_sdp)
        sections = [m for m in offer.media if m.kind in ("audio", "video")]
        if any(m.kind != "video" for m in sections):
            raise UnsupportedMedia("the foyer's cameras are pictures only")
        for media in sections:
            if not any(c.mimeType.lower() == "video/vp8" for c in media.rtp.codecs):
                raise UnsupportedMedia("the foyer's cameras are VP8")
        has_camera = bool(sections) and sections[0].direction in ("sendonly", "sendrecv")
        slot_sections = sections[1:] if has_camera else sections
        if any(m.direction not in ("recvonly", "sendrecv") for m in slot_sections):
            raise InvalidSdp("after the camera, offer only receive-only tile slots")
        limit = WALL_SLOTS if lobby_id is None else LOBBY_CAMERAS
        if not slot_sections or len(slot_sections) > limit:
            raise InvalidSdp(f"offer 1 to {limit} tile slots")
        if lobby_id is None and has_camera:
            raise InvalidSdp("the audience wall offers no camera")
        pc = RTCPeerConnection(rtc_configuration(self._ice_servers, max_bundle=True))
        seat = CameraSeat(show_id, lobby_id, key, name, pc, [], has_camera, notify, on_gone)
        seat.outputs = [
            ViewerTrack(
                "video",
                VIDEO_BUFFER,
                on_keyframe_needed=self._keyframe_for(seat, index),
                on_stop=_nothing,
                direct=self._direct,
            )
            for index in range(len(slot_sections))
        ]
        try:
            camera = None
            if has_camera:
                camera = pc.addTransceiver("video", direction="recvonly")
                prefer_codec(camera, "video/VP8")
            sending = []
            for track in seat.outputs:
                transceiver = pc.addTransceiver(track, direction="sendonly")
                prefer_codec(transceiver, "video/VP8")
                sending.append((transceiver, track))
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            if camera is not None:
                tap = EncodedReceiver(camera.receiver, on_frame=self._camera(seat))
                seat.tap = tap
                seat.keyframes = KeyframeRequests(
                    tap.request_keyframe, min_interval=KEYFRAME_INTERVAL
                )
                seat.packetizer = Packetizer("video/VP8", 90_000)
            await pc.setLocalDescription(await pc.createAnswer())
            drop_empty_datagrams(pc)
            if self._direct:
                ours = aiortc_sdp.SessionDescription.parse(pc.localDescription.sdp)
                for transceiver, track in sending:
                    # Every frame comes with its payloads, cut once per camera (FrameOut).
                    track.use_direct(
                        direct_output(transceiver, ours), _no_payloads, self._bound(seat)
                    )
        except Exception as exc:
            await self._close(seat)
            if isinstance(exc, (InvalidSdp, UnsupportedMedia)):
                raise
            raise InvalidSdp(f"the camera offer cannot be answered: {exc}") from exc
        seat.answer_sdp = pc.localDescription.sdp
        self._shows.setdefault(show_id, _ShowCameras()).seats.add(seat)

        @pc.on("connectionstatechange")
        async def state_changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._gone(seat)

        async def deadline() -> None:
            await asyncio.sleep(CONNECT_TIMEOUT)
            if pc.connectionState != "connected":
                await self._gone(seat)

        seat.deadline = asyncio.get_running_loop().create_task(deadline())
        log.info("camera.join", show=show_id, lobby=lobby_id, camera=has_camera, slots=seat.slots)
        return seat

    # What each seat is told.

    def lobby_state(self, show_id: str, lobby_id: str) -> dict[str, Any]:
        """The lobby's cameras as its members see them (``camera.state``)."""
        seats = self.seats(show_id, lobby_id)
        shown = sorted((s for s in seats if s.slot is not None), key=lambda s: s.slot or 0)
        waiting = sorted(
            (s for s in seats if s.waiting_since is not None), key=lambda s: s.waiting_since or 0
        )
        return events.camera_state(
            lobby_id,
            self.policy(show_id).may_speak(lobby_id),
            [{"slot": s.slot, "member": s.key, "name": s.name} for s in shown],
            [s.key for s in waiting],
        )

    def wall_state(self, show_id: str) -> dict[str, Any]:
        """The cameras shown to the performer (``wall.state``)."""
        shown = sorted(
            (s for s in self.seats(show_id) if s.wall_slot is not None),
            key=lambda s: s.wall_slot or 0,
        )
        return events.wall_state(
            [
                {"slot": s.wall_slot, "member": s.key, "name": s.name, "lobby": s.lobby_id}
                for s in shown
            ]
        )

    def _tell_lobby(self, show_id: str, lobby_id: str | None) -> None:
        if lobby_id is None:
            return
        state = self.lobby_state(show_id, lobby_id)
        for seat in self.seats(show_id, lobby_id):
            if seat.notify is not None and not seat.closed:
                seat.notify(state)

    def _tell_walls(self, show_id: str) -> None:
        show = self._shows.get(show_id)
        if show is None:
            return
        state = self.wall_state(show_id)
        for seat in show.walls():
            if seat.notify is not None and not seat.closed:
                seat.notify(state)

    # Turning a camera on and off.

    def set_camera(self, seat: CameraSeat, on: bool, *, performer: bool = False) -> None:
        """Turn a member's camera on (for the lobby while it may see it, and for the performer if
        ``performer``) or off. The lobby's seventh camera waits for a free tile slot. Raises
        :class:`CameraClosed` for a camera that nobody may see now."""
        if seat.closed or not seat.has_camera:
            raise ValueError("this camera connection has no camera")
        lobby_open = self.open(seat)
        if on and not lobby_open and not performer:
            raise CameraClosed("the show is on: cameras are for the intermission")
        changed_wall = False
        if not on:
            self._off(seat)
            changed_wall = True
        else:
            if not seat.camera_on:
                seat.generation = next(self._generations)
            seat.camera_on = True
            want_lobby = lobby_open
            if want_lobby and not seat.to_lobby:
                seat.to_lobby = True
                self._take_slot(seat)
            elif not want_lobby and seat.to_lobby:
                self._leave_lobby(seat)
            if performer != seat.to_performer:
                seat.to_performer = performer
                changed_wall = True
                if performer:
                    self._take_wall_slot(seat)
                else:
                    seat.wall_slot = None
            if seat.keyframes is not None:
                seat.keyframes.request()  # those who see it now start at a keyframe
        log.info(
            "camera.set", show=seat.show_id, lobby=seat.lobby_id, on=seat.camera_on,
            slot=seat.slot, waiting=seat.waiting_since is not None, wall=seat.wall_slot,
        )  # fmt: skip
        self._tell_lobby(seat.show_id, seat.lobby_id)
        if changed_wall:
            self._tell_walls(seat.show_id)

    def _take_slot(self, seat: CameraSeat) -> None:
        taken = {s.slot for s in self.seats(seat.show_id, seat.lobby_id) if s.slot is not None}
        free = next((n for n in range(LOBBY_CAMERAS) if n not in taken), None)
        if free is None:
            seat.waiting_since = seat.waiting_since or time.monotonic()
        else:
            seat.slot, seat.waiting_since = free, None

    def _take_wall_slot(self, seat: CameraSeat) -> None:
        taken = {s.wall_slot for s in self.seats(seat.show_id) if s.wall_slot is not None}
        seat.wall_slot = next((n for n in range(WALL_SLOTS) if n not in taken), None)

    def _leave_lobby(self, seat: CameraSeat) -> None:
        """The lobby no longer sees this camera; the first one waiting takes its slot."""
        freed = seat.slot
        seat.to_lobby, seat.slot, seat.waiting_since = False, None, None
        if freed is None:
            return
        waiting = sorted(
            (s for s in self.seats(seat.show_id, seat.lobby_id) if s.waiting_since is not None),
            key=lambda s: s.waiting_since or 0,
        )
        if waiting:
            nxt = waiting[0]
            nxt.slot, nxt.waiting_since = freed, None
            if nxt.keyframes is not None:
                nxt.keyframes.request()

    def _off(self, seat: CameraSeat) -> None:
        self._leave_lobby(seat)
        seat.camera_on = False
        seat.to_performer = False
        seat.wall_slot = None

    def set_policy(self, show_id: str, policy: VoicePolicy) -> list[Any]:
        """Apply the show's policy: the lobbies that may no longer show cameras stop showing
        them; a camera shown to nobody any more goes off and its member is told (their browser
        lets the camera go). Returns nothing for the voice's bookkeeping."""
        self._policies[show_id] = policy
        lobbies: set[str | None] = set()
        for seat in self.seats(show_id):
            if not seat.camera_on or not seat.to_lobby or policy.may_speak(seat.lobby_id):
                continue
            self._leave_lobby(seat)
            lobbies.add(seat.lobby_id)
            if not seat.to_performer:
                self._off(seat)
                if seat.notify is not None and not seat.closed:
                    seat.notify(events.camera_off(seat.lobby_id, "closed"))
        for lobby_id in lobbies:
            self._tell_lobby(show_id, lobby_id)
        for seat in self.seats(show_id):
            if seat.lobby_id is not None and seat.lobby_id not in lobbies and seat.notify:
                # the lobby's "open" changed for its members
                lobbies.add(seat.lobby_id)
                self._tell_lobby(show_id, seat.lobby_id)
        return []

    def forget(self, show_id: str) -> None:
        """Drop the show's policy (nobody of it has a camera or voice seat here any more)."""
        if not self._shows.get(show_id):
            self._policies.pop(show_id, None)

    # Frames.

    def _camera(self, seat: CameraSeat) -> Callable[[EncodedFrame], None]:
        def forward(frame: EncodedFrame) -> None:
            if frame is None or seat.closed or not seat.camera_on:
                return
            now = time.monotonic()
            if not seat.within_budget(frame, now):
                seat.dropped += 1
                return
            if frame.keyframe and seat.keyframes is not None:
                seat.keyframes.keyframe_arrived()
            slot, wall_slot = seat.slot, seat.wall_slot
            if slot is None and wall_slot is None:
                return
            assert seat.packetizer is not None
            out = seat.packetizer.frame_out(frame)
            show = self._shows.get(seat.show_id)
            if show is None:
                return
            for other in show.seats:
                if other is seat or other.closed:
                    continue
                if other.wall:
                    index = wall_slot
                elif other.lobby_id == seat.lobby_id:
                    index = slot
                else:
                    continue
                if index is not None and index < len(other.outputs):
                    other.outputs[index].offer(frame, seat.generation, now, ORIGINAL, out)

        return forward

    def _on_slot(self, seat: CameraSeat, index: int) -> CameraSeat | None:
        """The camera that ``seat`` sees on its slot ``index`` now."""
        for camera in self.seats(seat.show_id):
            if seat.wall and camera.wall_slot == index:
                return camera
            if not seat.wall and camera.lobby_id == seat.lobby_id and camera.slot == index:
                return camera
        return None

    def _keyframe_for(self, seat: CameraSeat, index: int) -> Callable[[], None]:
        def request() -> None:
            camera = self._on_slot(seat, index)
            if camera is not None and camera.keyframes is not None:
                camera.keyframes.request()

        return request

    def _bound(self, seat: CameraSeat) -> Callable[[ViewerTrack], None]:
        def bound(track: ViewerTrack) -> None:
            if track in seat.outputs:
                self._keyframe_for(seat, seat.outputs.index(track))()

        return bound

    # Leaving.

    async def leave(self, seat: CameraSeat) -> None:
        """The member leaves the cameras: their slots free up and their connection closes."""
        show = self._shows.get(seat.show_id)
        was_on = seat.camera_on
        if seat.has_camera:
            self._off(seat)
        if show is not None:
            show.seats.discard(seat)
            if not show.seats:
                del self._shows[seat.show_id]
        await self._close(seat)
        if was_on:
            self._tell_lobby(seat.show_id, seat.lobby_id)
            self._tell_walls(seat.show_id)

    async def _gone(self, seat: CameraSeat) -> None:
        if seat.closed:
            return
        await self.leave(seat)
        if seat.on_gone is not None:
            seat.on_gone(seat)

    async def _close(self, seat: CameraSeat) -> None:
        if seat.closed:
            return
        seat.closed = True
        if seat.deadline is not None and seat.deadline is not asyncio.current_task():
            seat.deadline.cancel()
        if seat.keyframes is not None:
            seat.keyframes.close()
        if seat.tap is not None:
            seat.tap.close()
        for track in seat.outputs:
            track.stop()
        await close_peer(seat.pc)

    async def close(self) -> None:
        """Close every camera connection of this node (shutdown)."""
        seats = [seat for show in self._shows.values() for seat in show.seats]
        self._shows.clear()
        self._policies.clear()
        await asyncio.gather(*(self._close(seat) for seat in seats), return_exceptions=True)


def _no_payloads(frame: EncodedFrame) -> Any:
    """A tile track is always handed its frame's payloads (cut once per camera)."""
    raise AssertionError("a camera frame comes with its payloads")


class PolicySeats:
    """The voice's and the cameras' seats together, for :class:`rooms.voice.VoiceStates`: one
    policy per show, applied to both."""

    def __init__(self, *parts: Any) -> None:
        self._parts = parts

    def set_policy(self, show_id: str, policy: VoicePolicy) -> list[Any]:
        silenced: list[Any] = []
        for part in self._parts:
            silenced += part.set_policy(show_id, policy)
        return silenced

    def forget(self, show_id: str) -> None:
        for part in self._parts:
            part.forget(show_id)
