"""Every event that crosses the bus or reaches a client, and the channels they travel on.

One place names them: a typed constructor per event (the payload clients read, as written in
``docs/protocol.md``) and a function per channel. Nothing else builds an event dict by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Event = dict[str, Any]

# -- channels -------------------------------------------------------------------------------------


def show_channel(show_id: str) -> str:
    """A show's live events: state, warnings, reaction totals, captions, voice state."""
    return f"show:{show_id}"


def show_chat_channel(show_id: str) -> str:
    """Every lobby's chat of a show: each node hands a message to the members of its lobby there
    and to the performer's feed, so a message is published once."""
    return f"showchat:{show_id}"


def lobby_channel(lobby_id: str) -> str:
    """A lobby's live events other than chat (members, voice, removals)."""
    return f"lobby:{lobby_id}"


def screen_channel(screen_id: str) -> str:
    """Events for one care-home screen (paired, control, reactions from the phone)."""
    return f"screen-events:{screen_id}"


def staff_channel(key_id: str) -> str:
    """Events for the phones of one staff key (their screens' status)."""
    return f"staff-events:{key_id}"


# -- the connection -------------------------------------------------------------------------------


def hello(protocol: int, server: str, ice_servers: list[dict[str, Any]]) -> Event:
    """The server's first words on a new WebSocket: the protocol, its version, ICE servers."""
    return {"type": "hello", "protocol": protocol, "server": server, "ice_servers": ice_servers}


def node_draining(within: float) -> Event:
    """This node is shutting down: open a new connection to the same address (another node takes
    it), carry on there and only then let go of this one, within ``within`` seconds."""
    return {"type": "node.draining", "within": round(within, 1)}


# -- the show -------------------------------------------------------------------------------------


def show_state(
    show_id: str, state: str, codecs: Mapping[str, str] | None = None, *, cancelled: bool = False
) -> Event:
    """The show moved to ``state`` (with the performer's codecs when it goes live; ``cancelled``
    when it ended before it was given)."""
    event: Event = {"type": "show.state", "show": show_id, "state": state}
    if codecs is not None:
        event["codecs"] = dict(codecs)
    if cancelled:
        event["cancelled"] = True
    return event


def show_updated(show: Mapping[str, Any], changed: list[str]) -> Event:
    """An organiser changed the show (its public view now, and which fields changed: a new
    ``starts_at`` is a rescheduled show)."""
    return {"type": "show.updated", "show": show["id"], "public": dict(show), "changed": changed}


def show_warning(show_id: str, code: str, message: str) -> Event:
    """Something the performer must fix (e.g. B-frames from the encoder)."""
    return {"type": "show.warning", "show": show_id, "code": code, "message": message}


def reactions(show_id: str, node: str, counts: Mapping[str, int], lobbies: Any) -> Event:
    """One node's reaction totals of a show since its last ones (``node`` "merged": several)."""
    return {
        "type": "reactions",
        "show": show_id,
        "node": node,
        "counts": dict(counts),
        "lobbies": lobbies,
    }


def caption(show_id: str, text: str) -> Event:
    """The caption line to show now ('' = nothing)."""
    return {"type": "caption", "show": show_id, "text": text}


def audience(show_id: str, viewers: int) -> Event:
    """The size of the show's audience, for the performer."""
    return {"type": "audience", "show": show_id, "viewers": viewers}


def watch_picture(picture: str, reason: str) -> Event:
    """Which picture a viewer gets now (``original`` or a smaller one) and why: ``chosen``,
    ``weak_link`` or ``link_recovered``."""
    return {"type": "watch.picture", "picture": picture, "reason": reason}


def watch_sound(sound: str, reason: str) -> Event:
    """Which sound a viewer listening to the sound alone gets now (``original``, or ``low``: a
    lighter one for a link too weak for the original) and why: ``chosen`` (the picture back on),
    ``weak_link`` or ``link_recovered``."""
    return {"type": "watch.sound", "sound": sound, "reason": reason}


def camera_state(
    lobby_id: str, open_: bool, cameras: list[dict[str, Any]], waiting: list[str]
) -> Event:
    """The lobby's cameras: whether it may show them now, those shown (tile slot, member, name)
    and the members whose camera waits for a free slot, in order."""
    return {
        "type": "camera.state", "lobby": lobby_id, "open": open_, "cameras": cameras,
        "waiting": waiting,
    }  # fmt: skip


def camera_off(lobby_id: str | None, reason: str) -> Event:
    """The server switched the member's camera off (``closed``: the lobby may not show it now)."""
    return {"type": "camera.off", "lobby": lobby_id, "reason": reason}


def wall_state(cameras: list[dict[str, Any]]) -> Event:
    """The cameras shown to the performer (wall slot, member, name, lobby)."""
    return {"type": "wall.state", "cameras": cameras}


def voice_state(show_id: str, intermission: bool, stage: str | None) -> Event:
    """The show's intermission and the lobby on stage changed."""
    return {"type": "voice.state", "show": show_id, "intermission": intermission, "stage": stage}


# -- the lobby ------------------------------------------------------------------------------------


def voice_lost(show_id: str) -> Event:
    """The server let the member's voice connection go (it failed, or never connected): the page
    joins the voice again at once instead of waiting for its browser to notice."""
    return {"type": "voice.lost", "show": show_id}


def lobby_members(lobby_id: str, members: list[dict[str, Any]]) -> Event:
    """Who is in the lobby now."""
    return {"type": "lobby.members", "lobby": lobby_id, "members": members}


def member_removed(lobby_id: str, member_id: str, reason: str = "performer") -> Event:
    """A viewer is let go: the performer removed them, or their ticket (``reason`` ``ticket``)
    was taken into use on another device."""
    return {"type": "member.removed", "lobby": lobby_id, "member": member_id, "reason": reason}


def voice_mic(lobby_id: str, member_id: str, on: bool) -> Event:
    """A member's microphone went on or off."""
    return {"type": "voice.mic", "lobby": lobby_id, "member": member_id, "on": on}


def chat_message(
    lobby_id: str, lobby_code: str, entry_id: str, message: Mapping[str, Any]
) -> Event:
    """A chat message as stored (member, name, text, client_id, at)."""
    return {
        "type": "chat.message",
        "lobby": lobby_id,
        "lobby_code": lobby_code,
        "id": entry_id,
        **message,
    }


def chat_deleted(lobby_id: str, entry_id: str, at_id: str | None = None) -> Event:
    """A message was removed for everyone (``at_id``: the tombstone's place, in histories)."""
    event: Event = {"type": "chat.deleted", "lobby": lobby_id, "id": entry_id}
    if at_id is not None:
        event["at_id"] = at_id
    return event


# -- care-home screens ----------------------------------------------------------------------------


def screen_paired(screen: Mapping[str, Any] | None = None) -> Event:
    """A screen was paired (to the screen: no details; to the phones: the screen)."""
    return (
        {"type": "screen.paired"} if screen is None else {"type": "screen.paired", "screen": screen}
    )


def screen_unpaired() -> Event:
    """The screen is no longer paired: it shows a new pairing code."""
    return {"type": "screen.unpaired"}


def screen_control(screen: Mapping[str, Any]) -> Event:
    """Staff changed the screen's settings."""
    return {"type": "screen.control", "screen": screen}


def screen_react(kind: str) -> Event:
    """Staff sent a reaction on behalf of the room."""
    return {"type": "screen.react", "kind": kind}


def screen_status(screen: Mapping[str, Any], status: Mapping[str, Any]) -> Event:
    """What a screen is doing, for the staff's phones."""
    return {"type": "screen.status", "screen": screen, "status": status}


def screen_forgotten(screen_id: str) -> Event:
    """A screen was unpaired by staff."""
    return {"type": "screen.forgotten", "screen": screen_id}


def staff_revoked() -> Event:
    """The organiser revoked this staff key."""
    return {"type": "staff.revoked"}
