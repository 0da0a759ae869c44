"""Lobby voice: members of a lobby talk to each other, their Opus forwarded as it came, never mixed.

Every member who joins the voice has one peer connection of its own (it works before and after the
show, when there is no broadcast to ride on). The member offers one section for their microphone
(``sendonly``; ``recvonly`` when they only listen) and a fixed number of receive-only **voice
slots**. A speaker gets the lowest free slot number of their lobby; each listener's track of that
slot carries that speaker. Slots being fixed when the voice starts, nobody renegotiates when
someone starts or stops talking, and a browser plays each slot as it arrives.

What may be heard is the show's **voice policy** (:mod:`rooms.voice`): the lobby's voice is open or
closed (closed during the show unless the performer opens an intermission), and one lobby may be
invited **on stage**: then only that lobby speaks, and every voice listener of the show (the
performer too) hears it on the same slot numbers. Frames of a speaker who is muted or not allowed
are dropped at the server, whatever their browser sends, and so are frames beyond what a voice
needs (more than :data:`MAX_FRAMES_PER_SECOND`, larger than :data:`MAX_FRAME_BYTES`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from aiortc import RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp

from media.codecs import ask_for_opus_dtx, prefer_codec
from media.direct import FrameOut
from media.forward import ViewerTrack
from media.frame import EncodedFrame
from media.ice import rtc_configuration
from media.receiver import EncodedReceiver
from media.seams import drop_empty_datagrams
from media.seats import SeatOffer, check_seat_offer, guard_seat
from media.stage import InvalidSdp, UnsupportedMedia, close_peer, direct_output
from rooms.voice import VoicePolicy

log = structlog.get_logger(__name__)

SLOTS = 12  # voice slots a member may ask for: speakers heard at once in one lobby
AUDIO_BUFFER = 25  # half a second of 20 ms Opus per slot: talk stays live rather than late
MAX_FRAMES_PER_SECOND = 100  # Opus at 10 ms frames; a browser sends 50 (20 ms)
MAX_FRAME_BYTES = 1500  # an Opus frame is at most 1,275 bytes
CONNECT_TIMEOUT = 30.0  # seconds a voice connection may take to connect before it is dropped
VOICE_OFFER = SeatOffer(
    "audio", "audio/opus", "the voice is sound only", "the voice must be Opus",
    "the microphone", "voice slots", "the stage listener offers no microphone",
)  # fmt: skip


def _nothing(*_: object) -> None:
    """Audio needs no keyframes, and a stopped slot track needs no bookkeeping."""


class _AsPayload:
    """An Opus frame is its own RTP payload (RFC 7587): ready to send, once for every listener."""

    def __init__(self) -> None:
        self._last: EncodedFrame | None = None
        self._out = FrameOut([], b"\0\0\0", 0, False)

    def __call__(self, frame: EncodedFrame) -> FrameOut:
        if frame is not self._last:
            self._out = FrameOut.of([frame.data])
            self._last = frame
        return self._out


_as_payload = _AsPayload()


@dataclass(eq=False)
class VoiceSeat:
    """A member's (or the performer's) voice connection: their microphone in, voice slots out."""

    show_id: str
    lobby_id: str | None  # None: a listener of the stage only (the performer)
    key: str  # the member id (or the performer connection's id)
    pc: RTCPeerConnection
    outputs: list[ViewerTrack]
    has_mic: bool
    generation: int
    slot: int | None = None  # this speaker's slot number in their lobby
    mic_on: bool = False
    answer_sdp: str = ""
    tap: EncodedReceiver | None = None
    closed: bool = field(default=False)
    on_gone: Callable[[VoiceSeat], None] | None = None  # its connection failed or was closed
    deadline: asyncio.Task[None] | None = None
    lobby_told_on: bool = False  # what the lobby was last told of this microphone (signaling)
    remote: bool = False  # another node, listening to this node's speakers of the lobby for its own
    _window: tuple[int, int] = (0, 0)  # (second, frames in it): the speaker's frame budget

    def within_budget(self, frame: EncodedFrame, now: float) -> bool:
        """Whether a speaker's frame is one a voice can send (size and rate)."""
        if len(frame.data) > MAX_FRAME_BYTES:
            return False
        second, count = self._window
        if int(now) != second:
            second, count = int(now), 0
        self._window = (second, count + 1)
        return count < MAX_FRAMES_PER_SECOND

    @property
    def slots(self) -> int:
        """How many voices this seat can hear at once."""
        return len(self.outputs)


@dataclass(eq=False)
class VoiceFeed:
    """One lobby's voices from another node: a peer receiving that node's speakers of the lobby,
    one slot section each, handed on to this node's listeners (never mixed)."""

    show_id: str
    lobby_id: str
    node: str  # the node it pulls from
    pc: RTCPeerConnection
    offer_sdp: str = ""
    taps: list[EncodedReceiver] = field(default_factory=list)
    closed: bool = False

    @property
    def failed(self) -> bool:
        """Whether the link to the other node is gone."""
        return self.closed or self.pc.connectionState in ("failed", "closed")

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for tap in self.taps:
            tap.close()
        await close_peer(self.pc)


@dataclass
class _ShowVoice:
    seats: set[VoiceSeat] = field(default_factory=set)
    lobbies: dict[str | None, set[VoiceSeat]] = field(default_factory=dict)

    def lobby(self, lobby_id: str | None) -> set[VoiceSeat]:
        return self.lobbies.get(lobby_id) or set()

    def add(self, seat: VoiceSeat) -> None:
        self.seats.add(seat)
        self.lobbies.setdefault(seat.lobby_id, set()).add(seat)

    def discard(self, seat: VoiceSeat) -> None:
        self.seats.discard(seat)
        lobby = self.lobbies.get(seat.lobby_id)
        if lobby is not None:
            lobby.discard(seat)
            if not lobby:
                del self.lobbies[seat.lobby_id]


class Voices:
    """Every lobby voice of this node: seats, their slots, and the policy of each show."""

    def __init__(
        self, ice_servers: Sequence[RTCIceServer] = (), *, slots: int = SLOTS, direct: bool = True
    ) -> None:
        self._ice_servers = list(ice_servers)
        self._direct = direct  # media/direct.py, as for the show's viewers
        self._max_slots = slots
        self._shows: dict[str, _ShowVoice] = {}
        self._policies: dict[str, VoicePolicy] = {}  # closed until signaling says otherwise
        self._generations = itertools.count(1)

    @property
    def max_slots(self) -> int:
        """Voice slots a member may ask for (speakers heard at once in one lobby)."""
        return self._max_slots

    def seats(self, show_id: str, lobby_id: str | None = None) -> list[VoiceSeat]:
        """The voice seats of a show on this node (of one lobby, if given)."""
        show = self._shows.get(show_id)
        if show is None:
            return []
        return list(show.seats if lobby_id is None else show.lobby(lobby_id))

    def may_speak(self, seat: VoiceSeat) -> bool:
        """Whether this seat's lobby may be heard now (its own mic aside)."""
        return self.policy(seat.show_id).may_speak(seat.lobby_id)

    def policy(self, show_id: str) -> VoicePolicy:
        """The show's voice policy on this node."""
        return self._policies.get(show_id) or VoicePolicy()

    def heard(self, seat: VoiceSeat) -> bool:
        """Whether others hear this seat right now."""
        return seat.mic_on and seat.slot is not None and self.may_speak(seat)

    async def join(
        self,
        show_id: str,
        lobby_id: str | None,
        key: str,
        offer_sdp: str,
        on_gone: Callable[[VoiceSeat], None] | None = None,
        *,
        remote: bool = False,
    ) -> VoiceSeat:
        """Answer a member's voice offer: an optional microphone, then receive-only slots. With
        ``remote`` the offer is another node's, pulling the lobby's voices for its own members
        (slots only; it hears this node's speakers of that lobby alone).

        ``on_gone`` is called when the connection fails, is closed by the member or does not
        connect within :data:`CONNECT_TIMEOUT` (the seat has then left).
        """
        has_mic, slots = check_seat_offer(
            offer_sdp, VOICE_OFFER, self._max_slots, listener_only=lobby_id is None
        )
        pc = RTCPeerConnection(rtc_configuration(self._ice_servers, max_bundle=True))
        outputs = [
            ViewerTrack(
                "audio",
                AUDIO_BUFFER,
                on_keyframe_needed=_nothing,
                on_stop=_nothing,
                direct=self._direct,
            )
            for _ in range(slots)
        ]
        seat = VoiceSeat(show_id, lobby_id, key, pc, outputs, has_mic, next(self._generations))
        seat.on_gone = on_gone
        seat.remote = remote
        try:
            mic = None
            if has_mic:
                mic = pc.addTransceiver("audio", direction="recvonly")
                prefer_codec(mic, "audio/opus")
            sending = []
            for track in outputs:
                transceiver = pc.addTransceiver(track, direction="sendonly")
                prefer_codec(transceiver, "audio/opus")
                sending.append((transceiver, track))
            await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            if mic is not None:
                seat.tap = EncodedReceiver(mic.receiver, on_frame=self._speaker(seat))
            await pc.setLocalDescription(await pc.createAnswer())
            drop_empty_datagrams(pc)
            if self._direct:
                # Straight to the member's socket, as the show's viewers get theirs: an Opus
                # frame is one RTP payload as it came, so there is nothing to packetise.
                ours = aiortc_sdp.SessionDescription.parse(pc.localDescription.sdp)
                for transceiver, track in sending:
                    track.use_direct(direct_output(transceiver, ours), _as_payload, _nothing)
        except Exception as exc:
            await self._close(seat)
            if isinstance(exc, (InvalidSdp, UnsupportedMedia)):
                raise
            raise InvalidSdp(f"the voice offer cannot be answered: {exc}") from exc
        seat.answer_sdp = pc.localDescription.sdp
        if mic is not None and mic.mid is not None:
            seat.answer_sdp = ask_for_opus_dtx(seat.answer_sdp, mic.mid)
        self._shows.setdefault(show_id, _ShowVoice()).add(seat)
        seat.deadline = guard_seat(pc, lambda: self._gone(seat), CONNECT_TIMEOUT)

        log.info("voice.join", show=show_id, lobby=lobby_id, mic=has_mic, slots=seat.slots)
        return seat

    def _speaker(self, seat: VoiceSeat) -> Callable[[EncodedFrame], None]:
        def forward(frame: EncodedFrame) -> None:
            if frame is None or seat.closed or not self.heard(seat):
                return
            now = time.monotonic()
            if not seat.within_budget(frame, now):
                return
            show = self._shows[seat.show_id]
            on_stage = self.policy(seat.show_id).stage == seat.lobby_id
            listeners = show.seats if on_stage else show.lobby(seat.lobby_id)
            slot = seat.slot
            assert slot is not None
            for listener in listeners:
                if listener is seat or slot >= len(listener.outputs):
                    continue
                if listener.remote and listener.lobby_id != seat.lobby_id:
                    continue  # another node hears the stage lobby through that lobby's own pull
                listener.outputs[slot].offer(frame, seat.generation, now)

        return forward

    def from_elsewhere(
        self, show_id: str, lobby_id: str, slot: int, frame: EncodedFrame, generation: int
    ) -> None:
        """A frame of a speaker of the lobby on another node, on its slot: to this node's own
        listeners who hear that lobby now (its members; everyone of the show when it is on stage).
        The speaker's node has held it to the policy and the budget already."""
        show = self._shows.get(show_id)
        if show is None or not self.policy(show_id).may_speak(lobby_id):
            return
        on_stage = self.policy(show_id).stage == lobby_id
        now = time.monotonic()
        for listener in show.seats if on_stage else show.lobby(lobby_id):
            if not listener.remote and slot < len(listener.outputs):
                listener.outputs[slot].offer(frame, generation, now)

    async def pull(self, show_id: str, lobby_id: str, node: str) -> VoiceFeed:
        """An offer to hear the lobby's speakers on ``node`` (``feed.offer_sdp``, answered there
        as a member who only listens); their frames go to this node's listeners once
        :meth:`VoiceFeed` has the answer (:meth:`hear_from`)."""
        pc = RTCPeerConnection(rtc_configuration(self._ice_servers, max_bundle=True))
        feed = VoiceFeed(show_id, lobby_id, node, pc)
        try:
            for _ in range(self._max_slots):
                prefer_codec(pc.addTransceiver("audio", direction="recvonly"), "audio/opus")
            await pc.setLocalDescription(await pc.createOffer())
            drop_empty_datagrams(pc)
        except Exception:
            await feed.close()
            raise
        feed.offer_sdp = pc.localDescription.sdp
        return feed

    def _elsewhere(
        self, show_id: str, lobby_id: str, slot: int, generation: int
    ) -> Callable[[EncodedFrame], None]:
        def on_frame(frame: EncodedFrame) -> None:
            self.from_elsewhere(show_id, lobby_id, slot, frame, generation)

        return on_frame

    async def hear_from(self, feed: VoiceFeed, answer_sdp: str) -> None:
        """Apply the other node's answer: its speakers' frames start coming."""
        try:
            aiortc_sdp.SessionDescription.parse(answer_sdp)
            await feed.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
            # No await from here until the taps are in (media cannot flow before DTLS is up).
            for slot, transceiver in enumerate(feed.pc.getTransceivers()):
                on_frame = self._elsewhere(feed.show_id, feed.lobby_id, slot, self.new_generation())
                feed.taps.append(EncodedReceiver(transceiver.receiver, on_frame=on_frame))
        except Exception as exc:
            await feed.close()
            raise InvalidSdp(f"the other node's voice answer was refused: {exc}") from exc

    def new_generation(self) -> int:
        """A timeline of its own for a voice that comes from elsewhere."""
        return next(self._generations)

    def lobbies_heard(self, show_id: str) -> set[str]:
        """The lobbies whose voices this node's own members (and performer) hear now: their own
        lobbies, and the lobby on stage."""
        show = self._shows.get(show_id)
        if show is None:
            return set()
        lobbies = {s.lobby_id for s in show.seats if not s.remote and s.lobby_id is not None}
        stage = self.policy(show_id).stage
        if stage is not None and any(not s.remote for s in show.seats):
            lobbies.add(stage)
        return lobbies

    def lobbies_spoken(self) -> set[tuple[str, str]]:
        """(show, lobby) of every lobby with a member in this node's voice (its speakers may be
        heard on other nodes)."""
        return {
            (s.show_id, s.lobby_id)
            for show in self._shows.values()
            for s in show.seats
            if not s.remote and s.lobby_id is not None
        }

    @property
    def shows(self) -> list[str]:
        """Shows with voice seats on this node."""
        return list(self._shows)

    def set_mic(self, seat: VoiceSeat, on: bool, slot: int | None = None) -> bool:
        """Turn a member's microphone on (on ``slot``, claimed for the lobby across nodes, else
        a free slot among this node's seats) or off (giving it back); True if they are heard
        now. Without a free slot the microphone stays off."""
        if on and seat.has_mic and not seat.closed:
            if slot is not None:
                seat.slot = slot
            elif seat.slot is None:
                taken = {s.slot for s in self.seats(seat.show_id, seat.lobby_id)}
                seat.slot = next((n for n in range(self._max_slots) if n not in taken), None)
            seat.mic_on = seat.slot is not None
        else:
            seat.mic_on, seat.slot = False, None
        return self.heard(seat)

    def set_policy(self, show_id: str, policy: VoicePolicy) -> list[VoiceSeat]:
        """Open or close the show's lobbies and choose the lobby on stage.

        Microphones of lobbies that may no longer speak are switched off (someone who talked in
        the intermission is not heard by surprise when it opens again), and so is every one when
        the stage changes (a lobby talking among itself is not put before the whole show without
        a word); returns those seats.
        """
        stage_changed = self.policy(show_id).stage != policy.stage
        self._policies[show_id] = policy
        silenced = [
            s for s in self.seats(show_id) if s.mic_on and (stage_changed or not self.may_speak(s))
        ]
        for seat in silenced:
            self.set_mic(seat, False)
        return silenced

    def forget(self, show_id: str) -> None:
        """Drop the show's policy (nobody of it has a voice seat here any more)."""
        self._policies.pop(show_id, None)

    async def leave(self, seat: VoiceSeat) -> None:
        """The member leaves the voice: their slot frees up and their connection closes."""
        show = self._shows.get(seat.show_id)
        if show is not None:
            show.discard(seat)
            if not show.seats:
                del self._shows[seat.show_id]
        await self._close(seat)

    async def _gone(self, seat: VoiceSeat) -> None:
        if seat.closed:
            return
        await self.leave(seat)
        if seat.on_gone is not None:
            seat.on_gone(seat)

    async def _close(self, seat: VoiceSeat) -> None:
        if seat.closed:
            return
        seat.closed = True
        seat.mic_on, seat.slot = False, None
        if seat.deadline is not None and seat.deadline is not asyncio.current_task():
            seat.deadline.cancel()
        if seat.tap is not None:
            seat.tap.close()
        for track in seat.outputs:
            track.stop()
        await close_peer(seat.pc)

    async def close(self) -> None:
        """Close every voice connection of this node (shutdown)."""
        seats = [seat for show in self._shows.values() for seat in show.seats]
        self._shows.clear()
        self._policies.clear()
        await asyncio.gather(*(self._close(seat) for seat in seats), return_exceptions=True)
