"""The lobby voice's policy: who may be heard when.

Lobbies may talk before and after the show, and during it only in an intermission the performer
opens; a lobby invited on stage is heard by every voice listener of the show (the performer too)
and the others are quiet. The intermission and the stage live on the bus (``voice:{show}``) and
travel as ``voice.state`` events on the show's channel, so every node applies them to its own
voice seats (:class:`VoiceStates`, through :class:`Seats`: the media's side, behind a protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

from rooms import events
from rooms.bus import Bus, Message
from rooms.errors import RoomsError
from rooms.lobbies import Lobbies, LobbyNotFound
from rooms.relay import EventRelay, Unfollow
from rooms.shows import Shows, ShowState
from rooms.supervise import retrying
from rooms.tasks import cancel_and_wait

STATE_TTL = 7 * 24 * 3600.0  # an intermission or stage outlives no show by long
QUIET_STATES = (ShowState.LIVE, ShowState.PAUSED)  # while the show is on, lobbies listen


class VoiceClosed(RoomsError):
    """The lobby may not talk now (the show is on and no intermission is open)."""

    code = "voice_closed"


class VoiceFull(RoomsError):
    """Every voice slot of the lobby has a speaker; this member can listen only."""

    code = "voice_full"


class CameraClosed(RoomsError):
    """The lobby may not show its cameras now (the show is on and no intermission is open)."""

    code = "camera_closed"


@dataclass(frozen=True)
class VoicePolicy:
    """What a show's voice allows now."""

    open: bool = False  # lobbies may talk (before or after the show, or in an intermission)
    stage: str | None = None  # the lobby everyone hears

    def may_speak(self, lobby_id: str | None) -> bool:
        """Whether a member of ``lobby_id`` may be heard (None: a listener of the stage only)."""
        if lobby_id is None:
            return False
        if self.stage is not None:
            return self.stage == lobby_id
        return self.open


def policy_of(state: ShowState, intermission: bool, stage: str | None) -> VoicePolicy:
    """What the voice allows for a show in ``state`` with this intermission and stage."""
    return VoicePolicy(open=state not in QUIET_STATES or intermission, stage=stage)


def voice_key(show_id: str) -> str:
    """The bus key of a show's intermission and stage."""
    return f"voice:{show_id}"


@dataclass
class VoiceState:
    """A show's state, intermission and stage: what its policy is made of."""

    state: ShowState
    intermission: bool = False
    stage: str | None = None

    @property
    def policy(self) -> VoicePolicy:
        """The policy these make."""
        return policy_of(self.state, self.intermission, self.stage)

    def public(self) -> dict[str, Any]:
        """The voice state as clients see it."""
        return {"open": self.policy.open, "intermission": self.intermission, "stage": self.stage}


class Speaker(Protocol):
    """A voice seat as the policy sees it."""

    lobby_id: str | None
    key: str  # the member id
    mic_on: bool  # whether the microphone is on now
    lobby_told_on: bool  # what the lobby was last told of this microphone


class Seats(Protocol):
    """This node's voice seats (the media side), to which the policy is applied."""

    def set_policy(self, show_id: str, policy: VoicePolicy) -> list[Any]:
        """Apply ``policy``; the seats whose microphone it switched off."""

    def forget(self, show_id: str) -> None:
        """Drop the show's policy."""


async def announce_mic(bus: Bus, seat: Speaker, *, on: bool) -> None:
    """Tell the lobby that the seat's microphone went on or off (once per change: a telling that
    failed is not taken for told, so that trying again tells it)."""
    if seat.lobby_told_on == on:
        return
    if seat.lobby_id is not None:
        await bus.publish(
            events.lobby_channel(seat.lobby_id), events.voice_mic(seat.lobby_id, seat.key, on)
        )
    seat.lobby_told_on = on


class VoiceRules:
    """The intermission and the stage of each show, kept on the bus."""

    def __init__(self, bus: Bus, shows: Shows, lobbies: Lobbies) -> None:
        self._bus, self._shows, self._lobbies = bus, shows, lobbies

    async def state(self, show_id: str) -> VoiceState:
        """The show's voice state now."""
        show = await self._shows.get(show_id)
        stored = await self._bus.get(voice_key(show_id)) or {}
        return VoiceState(show.state, bool(stored.get("intermission", False)), stored.get("stage"))

    async def _change(self, show_id: str, **change: Any) -> VoiceState:
        stored = await self._bus.get(voice_key(show_id)) or {}
        kept = {
            "intermission": bool(stored.get("intermission", False)),
            "stage": stored.get("stage"),
            **change,
        }
        await self._bus.set(voice_key(show_id), kept, ttl=STATE_TTL)
        await self._bus.publish(
            events.show_channel(show_id),
            events.voice_state(show_id, kept["intermission"], kept["stage"]),
        )
        show = await self._shows.get(show_id)
        return VoiceState(show.state, kept["intermission"], kept["stage"])

    async def intermission(self, show_id: str, open_: bool) -> VoiceState:
        """Open (or close) an intermission: the lobbies may talk among themselves."""
        return await self._change(show_id, intermission=open_)

    async def stage(self, show_id: str, lobby_id: str | None) -> VoiceState:
        """Invite one lobby on stage so everyone hears it; None ends it."""
        if lobby_id is not None and lobby_id not in {
            lobby.id for lobby in await self._lobbies.lobbies(show_id)
        }:
            raise LobbyNotFound("no such lobby in this show")
        return await self._change(show_id, stage=lobby_id)


class _Following:
    """One show's voice state on this node, kept current from the show's events."""

    def __init__(self, states: VoiceStates, show_id: str, state: VoiceState) -> None:
        self.states, self.show_id, self.state = states, show_id, state
        self.users = 0
        self.unfollow: Unfollow | None = None

    def deliver(self, event: Message, text: str) -> None:
        kind = event.get("type")
        if kind == "show.state":
            with contextlib.suppress(ValueError):
                self.state.state = ShowState(str(event.get("state")))
        elif kind == "voice.state":
            self.state.intermission = bool(event.get("intermission"))
            self.state.stage = event.get("stage")
        else:
            return
        self.states.apply(self.show_id, self.state)


class VoiceStates:
    """Each show with voice seats on this node: its policy, kept current and applied to them."""

    def __init__(self, bus: Bus, rules: VoiceRules, relay: EventRelay, seats: Seats) -> None:
        self._bus, self._rules, self._relay, self._seats = bus, rules, relay, seats
        self._shows: dict[str, _Following] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def watch(self, show_id: str) -> VoiceState:
        """Keep the show's policy current while someone here uses its voice; its state now."""
        async with self._lock:
            entry = self._shows.get(show_id)
            if entry is None:
                placeholder = VoiceState(ShowState.SCHEDULED)
                entry = _Following(self, show_id, placeholder)
                # Follow first, then read: no change can fall between the two.
                entry.unfollow = await self._relay.follow_show(show_id, entry, performer=True)
                try:
                    entry.state = await self._rules.state(show_id)
                except BaseException:
                    await entry.unfollow()
                    raise
                self.apply(show_id, entry.state)
                self._shows[show_id] = entry
            entry.users += 1
            return VoiceState(entry.state.state, entry.state.intermission, entry.state.stage)

    async def unwatch(self, show_id: str) -> None:
        """One user fewer; the last one ends the following."""
        async with self._lock:
            entry = self._shows.get(show_id)
            if entry is None:
                return
            entry.users -= 1
            if entry.users > 0:
                return
            del self._shows[show_id]
            self._seats.forget(show_id)
        if entry.unfollow is not None:
            await entry.unfollow()

    def apply(self, show_id: str, state: VoiceState) -> None:
        """Apply the show's policy to the seats here; the lobbies hear whose microphone went off."""
        silenced = self._seats.set_policy(show_id, state.policy)
        if silenced:
            self.tell_lobbies(silenced)

    def tell_lobbies(self, seats: list[Any]) -> None:
        """Tell each seat's lobby whether its microphone is on now, in the background: retried
        while the bus is away (the policy keeps following meanwhile), so that no lobby goes on
        seeing a microphone on that the policy, or its member's leaving, switched off."""
        task = asyncio.get_running_loop().create_task(self._tell(seats), name="voice-mic-told")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tell(self, seats: list[Speaker]) -> None:
        for seat in seats:
            await self._tell_one(seat)

    async def _tell_one(self, seat: Speaker) -> None:
        async def tell() -> None:
            # What the microphone is by the time the bus answers, not what it was when switched.
            await announce_mic(self._bus, seat, on=seat.mic_on)

        await retrying(tell, "voice.mic_told", lobby=seat.lobby_id)

    async def close(self) -> None:
        """End every following (shutdown); lobbies not yet told of a microphone stay untold."""
        for show_id in list(self._shows):
            self._shows[show_id].users = 1
            await self.unwatch(show_id)
        await cancel_and_wait(*self._tasks)


SLOT_TTL = 30.0  # seconds a speaker's claim on a slot outlives its last renewal


def slot_key(show_id: str, lobby_id: str, slot: int) -> str:
    return f"voiceslot:{show_id}:{lobby_id}:{slot}"


class VoiceSlots:
    """Which member speaks on which voice slot of a lobby, across nodes: a speaker's node claims
    the lowest free slot on the bus (members of one lobby may sit on different nodes, and every
    listener hears each speaker on the same slot number), renews it while the microphone is on
    and gives it back when it goes off."""

    def __init__(self, bus: Bus, slots: int) -> None:
        self._bus = bus
        self.slots = slots

    async def claim(self, show_id: str, lobby_id: str, member: str) -> int | None:
        """The lowest slot free in the lobby, now the member's; None if every slot is taken."""
        for slot in range(self.slots):
            key = slot_key(show_id, lobby_id, slot)
            if await self._bus.set(key, {"member": member}, ttl=SLOT_TTL, only_new=True):
                return slot
            held = await self._bus.get(key)
            if held is not None and held.get("member") == member:
                return slot  # the member's already (a second claim, or a node that came back)
        return None

    async def renew(self, show_id: str, lobby_id: str, slot: int, member: str) -> None:
        """Keep the member's slot while their microphone stays on."""
        await self._bus.set(slot_key(show_id, lobby_id, slot), {"member": member}, ttl=SLOT_TTL)

    async def release(self, show_id: str, lobby_id: str, slot: int, member: str) -> None:
        """Give the slot back, if the member still holds it."""
        key = slot_key(show_id, lobby_id, slot)
        held = await self._bus.get(key)
        if held is not None and held.get("member") == member:
            await self._bus.delete(key)
