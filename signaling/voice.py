"""Lobby voice over the WebSocket: members join the voice of their lobby, turn their microphone on
and off; the performer opens an intermission or invites one lobby on stage.

The media is :mod:`media.voice` (this node's peer connections); who may be heard when is
:mod:`rooms.voice`.
"""

from __future__ import annotations

import asyncio

from media.voice import VoiceSeat
from rooms import events
from rooms.errors import InvalidInput
from rooms.voice import VoiceClosed, VoiceFull, announce_mic
from signaling import commands as c
from signaling.commands import MEDIA, Commands, Message, Result
from signaling.connection import Connection
from signaling.roles import Performer, Speaking, Viewer, performer, speaking
from signaling.services import Services

SDP_MAX = 32 * 1024


def _seat(conn: Connection) -> VoiceSeat:
    role = conn.role(Viewer) or conn.role(Performer)
    if role is None or role.voice is None:
        raise InvalidInput("join the voice first (voice.join)")
    return role.voice


async def voice_join(conn: Connection, services: Services, msg: Message) -> Result:
    """Answer the member's voice offer (a microphone section, then receive-only voice slots); the
    performer joins to hear the lobby on stage (slots only)."""
    role = speaking(conn)
    if isinstance(role, Viewer):
        show_id, lobby_id, key = role.show_id, role.lobby.id, role.member.id
    else:
        show_id, lobby_id, key = role.show_id, None, conn.id
    await role.release("voice")
    voices, states = services.voices, services.voice_states
    state = await states.watch(show_id)

    def gone(seat: VoiceSeat) -> None:
        # The member's browser closed the voice or it never connected: release it as voice.leave
        # would (the lobby hears that the microphone is off, the policy following ends).
        if role.voice is seat and not role.closed:
            role.spawn(_release_voice(role), "voice-gone")
            conn.send(events.voice_lost(show_id))

    if isinstance(role, Viewer):
        services.insight.count(show_id, "voice")
    try:
        seat = await voices.join(show_id, lobby_id, key, msg["sdp"], on_gone=gone)
    except BaseException:
        await states.unwatch(show_id)
        raise
    role.voice = seat

    async def leave() -> None:
        role.voice = None
        slot = seat.slot
        await voices.leave(seat)
        await _give_back(services, seat, slot)
        await states.unwatch(show_id)
        states.tell_lobbies([seat])  # its microphone is off now (retried while the bus is away)

    await role.hold("voice", leave)
    talking = [s.key for s in voices.seats(show_id, lobby_id) if s.mic_on and s is not seat]
    return {
        "sdp": seat.answer_sdp,
        "slot": seat.slot,
        "slots": seat.slots,
        "talking": talking,
        **state.public(),
    }


async def _give_back(services: Services, seat: VoiceSeat, slot: int | None) -> None:
    """Free the lobby's slot the seat spoke on, for every node."""
    if slot is not None and seat.lobby_id is not None and services.cascade.enabled:
        await services.cascade.voice_slots.release(seat.show_id, seat.lobby_id, slot, seat.key)


async def _release_voice(role: Speaking) -> None:
    # shielded: should the role end meanwhile, the seat is still given back whole
    await asyncio.shield(role.release("voice"))


async def voice_mic(conn: Connection, services: Services, msg: Message) -> Result:
    """Turn the member's microphone on or off for their lobby."""
    seat = _seat(conn)
    voices = services.voices
    on: bool = msg["on"]
    if on:
        if seat.closed:
            raise InvalidInput("the voice connection has closed: join the voice again")
        if not seat.has_mic:
            raise InvalidInput("this voice connection has no microphone")
        if not voices.may_speak(seat):
            raise VoiceClosed("the show is on: the foyer talks in the intermission")
    cascade, slot = services.cascade, None
    if on and cascade.enabled and seat.lobby_id is not None and seat.slot is None:
        # Members of one lobby may sit on different nodes: the slot is claimed on the bus.
        slot = await cascade.voice_slots.claim(seat.show_id, seat.lobby_id, seat.key)
        if slot is None:
            raise VoiceFull("every voice slot of this lobby is taken; you can listen")
    previous = seat.slot
    heard = voices.set_mic(seat, on, slot)
    if not on:
        await _give_back(services, seat, previous)
    if on and not seat.mic_on:
        await _give_back(services, seat, slot)
        raise VoiceFull("every voice slot of this lobby is taken; you can listen")
    await announce_mic(services.bus, seat, on=seat.mic_on)
    return {"on": seat.mic_on, "heard": heard, "slot": seat.slot}


async def voice_leave(conn: Connection, services: Services, msg: Message) -> Result:
    """Leave the lobby voice (the show and the chat go on)."""
    role = conn.role(Viewer) or conn.role(Performer)
    return {"left": role is not None and await role.release("voice")}


async def voice_intermission(conn: Connection, services: Services, msg: Message) -> Result:
    """Open (or close) an intermission: the lobbies may talk among themselves (performer)."""
    role = performer(conn)
    return (await services.voice_rules.intermission(role.show_id, msg["open"])).public()


async def voice_stage(conn: Connection, services: Services, msg: Message) -> Result:
    """Invite one lobby on stage so everyone hears it; ``lobby: null`` ends it (performer)."""
    role = performer(conn)
    return (await services.voice_rules.stage(role.show_id, msg["lobby"])).public()


async def lobby_list(conn: Connection, services: Services, msg: Message) -> Result:
    """The show's lobbies with who is in them, for inviting one on stage (performer)."""
    role = performer(conn)
    return {"lobbies": await services.foyer.listing(role.show_id)}


def register(commands: Commands) -> None:
    """The lobby voice's commands."""
    commands.add("voice.join", voice_join, {c.Required("sdp"): c.Text(SDP_MAX)}, lane=MEDIA)
    commands.add("voice.mic", voice_mic, {c.Required("on"): c.Bool})
    commands.add("voice.leave", voice_leave, lane=MEDIA)
    commands.add("voice.intermission", voice_intermission, {c.Required("open"): c.Bool})
    commands.add(
        "voice.stage", voice_stage, {c.Optional("lobby", default=None): c.Nullable(c.Text(64))}
    )
    commands.add("lobby.list", lobby_list)
