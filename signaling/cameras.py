"""Lobby cameras over the WebSocket: members open the foyer's cameras and turn their own on and
off (for the lobby, and for the performer if they choose); the performer opens the audience
wall. The media is :mod:`media.cameras`; when a lobby may show cameras is the voice's policy
(:mod:`rooms.voice`), followed for the show while someone here uses its cameras."""

from __future__ import annotations

import asyncio
from typing import Any

from media.cameras import CameraSeat
from rooms import events
from rooms.errors import InvalidInput
from signaling import commands as c
from signaling.commands import MEDIA, Commands, Message, Result
from signaling.connection import Connection
from signaling.roles import Performer, Speaking, Viewer, speaking
from signaling.services import Services

SDP_MAX = 32 * 1024


async def camera_join(conn: Connection, services: Services, msg: Message) -> Result:
    """Answer the member's camera offer (a camera section, then receive-only tile slots); the
    performer (or a host) opens the audience wall (slots only)."""
    role = speaking(conn)
    if isinstance(role, Viewer):
        show_id, lobby_id = role.show_id, role.lobby.id
        key, name = role.member.id, role.member.name
    else:
        show_id, lobby_id, key, name = role.show_id, None, conn.id, ""
    await role.release("camera")
    cameras, states = services.cameras, services.voice_states
    await states.watch(show_id)

    def gone(seat: CameraSeat) -> None:
        # The browser closed the connection or it never connected: released as camera.leave.
        if role.camera is seat and not role.closed:
            role.spawn(_release_camera(role), "camera-gone")
            conn.send(events.camera_off(seat.lobby_id, "lost"))

    try:
        seat = await cameras.join(
            show_id, lobby_id, key, name, msg["sdp"], notify=conn.send, on_gone=gone
        )
    except BaseException:
        await states.unwatch(show_id)
        raise
    role.camera = seat

    async def leave() -> None:
        role.camera = None
        await cameras.leave(seat)
        await states.unwatch(show_id)

    await role.hold("camera", leave)
    reply: dict[str, Any] = {"sdp": seat.answer_sdp, "slots": seat.slots}
    if lobby_id is None:
        reply["cameras"] = cameras.wall_state(show_id)["cameras"]
    else:
        state = cameras.lobby_state(show_id, lobby_id)
        reply.update(open=state["open"], cameras=state["cameras"], waiting=state["waiting"])
    return reply


async def _release_camera(role: Speaking) -> None:
    # shielded: should the role end meanwhile, the seat is still given back whole
    await asyncio.shield(role.release("camera"))


async def camera_set(conn: Connection, services: Services, msg: Message) -> Result:
    """Turn the member's camera on or off (``performer``: shown to the performer too)."""
    role = conn.role(Viewer)
    if role is None:
        raise InvalidInput("join a show first (watch.join)")
    seat = role.camera
    if seat is None or seat.closed:
        raise InvalidInput("open the cameras first (camera.join)")
    if not seat.has_camera:
        raise InvalidInput("this camera connection has no camera")
    services.cameras.set_camera(seat, msg["on"], performer=msg["performer"])
    return {
        "on": seat.camera_on,
        "slot": seat.slot,
        "waiting": seat.waiting_since is not None,
        "performer": seat.to_performer,
    }


async def camera_leave(conn: Connection, services: Services, msg: Message) -> Result:
    """Leave the foyer's cameras (or close the audience wall)."""
    role = conn.role(Viewer) or conn.role(Performer)
    return {"left": role is not None and await role.release("camera")}


def register(commands: Commands) -> None:
    """The lobby cameras' commands."""
    commands.add("camera.join", camera_join, {c.Required("sdp"): c.Text(SDP_MAX)}, lane=MEDIA)
    commands.add(
        "camera.set",
        camera_set,
        {c.Required("on"): c.Bool, c.Optional("performer", default=False): c.Bool},
    )
    commands.add("camera.leave", camera_leave, lane=MEDIA)
