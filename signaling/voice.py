"""Lobby voice over the WebSocket: members join the voice of their lobby, turn their microphone on
and off; the performer opens an intermission or invites one lobby on stage.

The media is :mod:`media.voice` (this node's peer connections). What may be heard is the show's
voice policy: lobbies may talk before and after the show, and during it only in an intermission the
performer opens; a lobby on stage is heard by everyone. The intermission and the stage live on the
bus (``voice:{show}``) and travel as ``voice.state`` events on the show's channel, so every node
applies them to its own voice seats.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from media.stage import StageError
from media.voice import VoicePolicy, Voices, VoiceSeat
from rooms.bus import Bus, BusError, Subscription
from rooms.chat import lobby_channel
from rooms.errors import InvalidInput, RoomsError
from rooms.lobbies import LobbyNotFound
from rooms.shows import Shows, ShowState, show_channel
from signaling.connection import Connection
from signaling.foyer import LOBBIES, performing
from signaling.live import stage_error
from signaling.state import BUS, SHOWS
from signaling.ws import COMMANDS, Result

STATE_TTL = 7 * 24 * 3600.0  # an intermission or stage outlives no show by long
QUIET_STATES = (ShowState.LIVE, ShowState.PAUSED)  # while the show is on, lobbies listen


class VoiceClosed(RoomsError):
    """The lobby may not talk now (the show is on and no intermission is open)."""

    code = "voice_closed"


class VoiceFull(RoomsError):
    """Every voice slot of the lobby has a speaker; this member can listen only."""

    code = "voice_full"


def voice_key(show_id: str) -> str:
    """The bus key of a show's intermission and stage."""
    return f"voice:{show_id}"


def policy_of(state: ShowState, intermission: bool, stage: str | None) -> VoicePolicy:
    """What the voice allows for a show in ``state`` with this intermission and stage."""
    return VoicePolicy(open=state not in QUIET_STATES or intermission, stage=stage)


class VoiceStates:
    """Each show with voice seats on this node: its policy, kept current from the show's channel."""

    def __init__(self, bus: Bus, shows: Shows, voices: Voices) -> None:
        self._bus, self._shows, self._voices = bus, shows, voices
        self._watched: dict[str, tuple[Subscription, asyncio.Task[None], dict[str, Any]]] = {}
        self._users: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def watch(self, show_id: str) -> dict[str, Any]:
        """Keep the show's policy current while someone here uses its voice; its state now."""
        async with self._lock:
            entry = self._watched.get(show_id)
            if entry is None:
                # Subscribe first, then read: no change can fall between the two.
                sub = await self._bus.subscribe(show_channel(show_id))
                try:
                    show = await self._shows.get(show_id)
                    stored = await self._bus.get(voice_key(show_id)) or {}
                except BaseException:
                    await sub.close()
                    raise
                state = {
                    "state": show.state,
                    "intermission": bool(stored.get("intermission", False)),
                    "stage": stored.get("stage"),
                }
                self._apply(show_id, state)
                task = asyncio.get_running_loop().create_task(
                    self._follow(show_id, sub, state), name=f"voice-state-{show_id}"
                )
                entry = self._watched[show_id] = (sub, task, state)
            self._users[show_id] = self._users.get(show_id, 0) + 1
            return public_state(entry[2])

    async def unwatch(self, show_id: str) -> None:
        """One user fewer; the last one ends the subscription."""
        async with self._lock:
            left = self._users.get(show_id, 0) - 1
            if left > 0:
                self._users[show_id] = left
                return
            self._users.pop(show_id, None)
            entry = self._watched.pop(show_id, None)
            self._voices.forget(show_id)
        if entry is not None:
            sub, task, _ = entry
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sub.close()

    async def _follow(self, show_id: str, sub: Subscription, state: dict[str, Any]) -> None:
        async for event in sub:
            kind = event.get("type")
            if kind == "show.state":
                with contextlib.suppress(ValueError):
                    state["state"] = ShowState(str(event.get("state")))
            elif kind == "voice.state":
                state["intermission"] = bool(event.get("intermission"))
                state["stage"] = event.get("stage")
            else:
                continue
            for seat in self._apply(show_id, state):
                with contextlib.suppress(BusError):  # the policy must keep following regardless
                    await _announce_mic(self._bus, seat, on=False)

    def _apply(self, show_id: str, state: dict[str, Any]) -> list[VoiceSeat]:
        policy = policy_of(state["state"], state["intermission"], state["stage"])
        return self._voices.set_policy(show_id, policy)

    async def close(self) -> None:
        """End every subscription (shutdown)."""
        for show_id in list(self._watched):
            self._users[show_id] = 1
            await self.unwatch(show_id)


def public_state(state: dict[str, Any]) -> dict[str, Any]:
    """The voice state as clients see it."""
    policy = policy_of(state["state"], state["intermission"], state["stage"])
    return {"open": policy.open, "intermission": state["intermission"], "stage": state["stage"]}


VOICES: web.AppKey[Voices] = web.AppKey("voices", Voices)
VOICE_STATES: web.AppKey[VoiceStates] = web.AppKey("voice_states", VoiceStates)


async def _announce_mic(bus: Bus, seat: VoiceSeat, *, on: bool) -> None:
    """Tell the lobby that the seat's microphone went on or off (once per change)."""
    if seat.lobby_told_on == on:
        return
    seat.lobby_told_on = on
    if seat.lobby_id is not None:
        await bus.publish(
            lobby_channel(seat.lobby_id),
            {"type": "voice.mic", "lobby": seat.lobby_id, "member": seat.key, "on": on},
        )


def _seat(conn: Connection) -> VoiceSeat:
    seat = conn.voice_seat
    if seat is None:
        raise InvalidInput("join the voice first (voice.join)")
    return seat


@COMMANDS.register("voice.join", sdp=str)
async def voice_join(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Answer the member's voice offer (a microphone section, then receive-only voice slots); the
    performer joins to hear the lobby on stage (slots only)."""
    app = request.app
    if conn.lobby is not None and conn.member is not None:
        show_id, lobby_id, key = conn.lobby.show_id, conn.lobby.id, conn.member.id
    elif conn.performing is not None:
        show_id, lobby_id, key = conn.performing, None, conn.id
    else:
        raise InvalidInput("join a show first (watch.join)")
    await conn.release("voice")
    voices, states = app[VOICES], app[VOICE_STATES]
    state = await states.watch(show_id)

    def gone(seat: VoiceSeat) -> None:
        # The member's browser closed the voice or it never connected: release it as voice.leave
        # would (the lobby hears that the microphone is off, the policy subscription ends).
        if conn.voice_seat is seat:
            conn.spawn(conn.release("voice"), "voice-gone")

    try:
        seat = await voices.join(show_id, lobby_id, key, msg["sdp"], on_gone=gone)
    except StageError as exc:
        await states.unwatch(show_id)
        raise stage_error(exc) from exc
    except BaseException:
        await states.unwatch(show_id)
        raise
    conn.voice_seat = seat

    async def leave() -> None:
        conn.voice_seat = None
        await voices.leave(seat)
        await states.unwatch(show_id)
        with contextlib.suppress(BusError):
            await _announce_mic(app[BUS], seat, on=False)

    conn.hold("voice", leave)
    talking = [s.key for s in voices.seats(show_id, lobby_id) if s.mic_on and s is not seat]
    return {
        "sdp": seat.answer_sdp,
        "slot": seat.slot,
        "slots": seat.slots,
        "talking": talking,
        **state,
    }


@COMMANDS.register("voice.mic", on=bool)
async def voice_mic(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Turn the member's microphone on or off for their lobby."""
    seat = _seat(conn)
    voices = request.app[VOICES]
    on: bool = msg["on"]
    if on:
        if seat.closed:
            raise InvalidInput("the voice connection has closed: join the voice again")
        if not seat.has_mic:
            raise InvalidInput("this voice connection has no microphone")
        if not voices.may_speak(seat):
            raise VoiceClosed("the show is on: the foyer talks in the intermission")
    heard = voices.set_mic(seat, on)
    if on and not seat.mic_on:
        raise VoiceFull("every voice slot of this lobby is taken; you can listen")
    await _announce_mic(request.app[BUS], seat, on=seat.mic_on)
    return {"on": seat.mic_on, "heard": heard, "slot": seat.slot}


@COMMANDS.register("voice.leave")
async def voice_leave(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Leave the lobby voice (the show and the chat go on)."""
    return {"left": await conn.release("voice")}


async def _store_and_announce(app: web.Application, show_id: str, **change: Any) -> dict[str, Any]:
    bus = app[BUS]
    stored = await bus.get(voice_key(show_id)) or {}
    state = {
        "intermission": bool(stored.get("intermission", False)),
        "stage": stored.get("stage"),
        **change,
    }
    await bus.set(voice_key(show_id), state, ttl=STATE_TTL)
    await bus.publish(show_channel(show_id), {"type": "voice.state", "show": show_id, **state})
    show = await app[SHOWS].get(show_id)
    return public_state({"state": show.state, **state})


@COMMANDS.register("voice.intermission", open=bool)
async def voice_intermission(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Open (or close) an intermission: the lobbies may talk among themselves (performer)."""
    show_id = performing(conn)
    return await _store_and_announce(request.app, show_id, intermission=msg["open"])


@COMMANDS.register("voice.stage")
async def voice_stage(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Invite one lobby on stage so everyone hears it; ``lobby: null`` ends it (performer)."""
    show_id = performing(conn)
    lobby_id = msg.get("lobby")
    if lobby_id is not None:
        if not isinstance(lobby_id, str):
            raise InvalidInput("lobby must be a lobby id or null")
        if lobby_id not in {lobby.id for lobby in await request.app[LOBBIES].lobbies(show_id)}:
            raise LobbyNotFound("no such lobby in this show")
    return await _store_and_announce(request.app, show_id, stage=lobby_id)


@COMMANDS.register("lobby.list")
async def lobby_list(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """The show's lobbies with who is in them, for inviting one on stage (performer)."""
    show_id = performing(conn)
    lobbies = request.app[LOBBIES]
    listed = []
    for lobby in await lobbies.lobbies(show_id):
        members = [m.public() for m in await lobbies.members(lobby.id)]
        listed.append({**lobby.public(), "members": members})
    return {"lobbies": listed}
