"""Care-home screens over HTTP and the WebSocket: organisers issue staff keys; a screen asks for a
pairing code and then runs by itself; staff pair it and control it from their phone.

The domain is :mod:`rooms.screens`. Events for a screen go over the bus (``screen-events:{id}``)
and the screens' status to the staff's phones (``staff-events:{key}``), so the phone and the screen
may be on different nodes. The protocol is in ``docs/protocol.md``, the HTTP API in ``docs/api.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web

from rooms.errors import InvalidInput, ShowNotFound
from rooms.ratelimit import FailureLimiter
from rooms.reactions import check_kind
from rooms.screens import (
    NAME_MAX,
    PairingExpired,
    PairingNotFound,
    Screen,
    Screens,
    StaffKey,
    StaffKeyInvalid,
    StaffKeyNotFound,
    StaffKeyRevoked,
    check_head_count,
    check_volume,
    clean_label,
    screen_channel,
    staff_channel,
)
from rooms.shows import Show, ShowState
from signaling.api import read_json_object, require_organiser
from signaling.connection import Connection
from signaling.errors import ApiError
from signaling.state import BUS, SHOWS
from signaling.ws import COMMANDS, Result

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

# Wrong pairing codes, per address and per staff key.
PAIR_FAILURES_ALLOWED = 10
PAIR_FAILURE_WINDOW = 15 * 60.0
# Wrong staff keys, per address, counted apart: the phones of a care home share its address, and a
# colleague's mistyped codes must not lock them out of the remote (a wrong key has no id to count).
STAFF_KEY_FAILURES_ALLOWED = 10
STAFF_KEY_FAILURE_WINDOW = 15 * 60.0
# New pairing codes per address: each holds a code for a while, so a flood could use them all up.
NEW_PAIRINGS_ALLOWED = 30
NEW_PAIRING_WINDOW = 10 * 60.0
SCREEN_STATES = frozenset({"waiting", "scheduled", "live", "paused", "ended", "connecting", "lost"})
SOUND_STATES = frozenset({"on", "blocked", "off"})

SCREENS: web.AppKey[Screens] = web.AppKey("screens", Screens)
PAIR_LIMITER: web.AppKey[FailureLimiter] = web.AppKey("pair_limiter", FailureLimiter)
STAFF_KEY_LIMITER: web.AppKey[FailureLimiter] = web.AppKey("staff_key_limiter", FailureLimiter)
NEW_PAIRING_LIMITER: web.AppKey[FailureLimiter] = web.AppKey("new_pairing_limiter", FailureLimiter)
# Which screen or staff key each WebSocket speaks for (by connection id), while it is open.
SCREEN_OF: web.AppKey[dict[str, str]] = web.AppKey("screen_of", dict)
STAFF_OF: web.AppKey[dict[str, str]] = web.AppKey("staff_of", dict)


async def context(app: web.Application) -> AsyncIterator[None]:
    """The screens' domain on the app's bus (after the bus context, which opens the bus)."""
    bus = app[BUS]
    app[SCREENS] = Screens(bus)
    app[PAIR_LIMITER] = FailureLimiter(
        bus, "pairing", limit=PAIR_FAILURES_ALLOWED, window=PAIR_FAILURE_WINDOW
    )
    app[STAFF_KEY_LIMITER] = FailureLimiter(
        bus, "staff-key", limit=STAFF_KEY_FAILURES_ALLOWED, window=STAFF_KEY_FAILURE_WINDOW
    )
    app[NEW_PAIRING_LIMITER] = FailureLimiter(
        bus, "new-pairing", limit=NEW_PAIRINGS_ALLOWED, window=NEW_PAIRING_WINDOW
    )
    app[SCREEN_OF] = {}
    app[STAFF_OF] = {}
    yield


# -- staff keys (organisers, HTTP) ---------------------------------------------------------------


@routes.post("/api/staff-keys")
async def issue_staff_key(request: web.Request) -> web.Response:
    """A new staff key for a care home; the key is in this answer only."""
    require_organiser(request)
    body = await read_json_object(request)
    unknown = set(body) - {"label"}
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    staff, secret = await request.app[SCREENS].issue_key(body.get("label"))
    log.info("staff_key.issued", staff_key=staff.id)
    return web.json_response(
        {**staff.public(), "key": secret, "screens": 0},
        status=201,
        headers={"Location": f"/api/staff-keys/{staff.id}", "Cache-Control": "no-store"},
    )


@routes.get("/api/staff-keys")
async def list_staff_keys(request: web.Request) -> web.Response:
    """Every staff key (never the keys themselves) with how many screens each has paired."""
    require_organiser(request)
    screens = request.app[SCREENS]
    keys = [
        {**k.public(), "screens": len(await screens.of_staff(k.id))}
        for k in await screens.staff_keys()
    ]
    return web.json_response({"staff_keys": keys}, headers={"Cache-Control": "no-store"})


@routes.delete("/api/staff-keys/{key_id}")
async def revoke_staff_key(request: web.Request) -> web.Response:
    """Revoke a staff key: it stops working and the screens it paired show a new pairing code."""
    require_organiser(request)
    key_id = request.match_info["key_id"]
    try:
        forgotten = await request.app[SCREENS].revoke_key(key_id)
    except StaffKeyNotFound as exc:
        raise ApiError(404, exc.code, str(exc)) from None
    bus = request.app[BUS]
    for screen in forgotten:
        await bus.publish(screen_channel(screen.id), {"type": "screen.unpaired"})
    await bus.publish(staff_channel(key_id), {"type": "staff.revoked"})
    log.info("staff_key.revoked", staff_key=key_id, screens=len(forgotten))
    return web.json_response({"revoked": True, "screens_forgotten": len(forgotten)})


# -- the screen (WebSocket) ----------------------------------------------------------------------


async def next_show(request: web.Request, screen: Screen) -> Show | None:
    """What the screen shows: the show staff chose while it is open, else the programme's first
    (live ones first, then the next to start)."""
    shows = request.app[SHOWS]
    if screen.show is not None:
        try:
            chosen = await shows.get(screen.show)
        except ShowNotFound:
            chosen = None
        if chosen is not None and chosen.state is not ShowState.ENDED:
            return chosen
    programme = await shows.programme()
    return programme[0] if programme else None


async def listen(conn: Connection, request: web.Request, name: str, channel: str) -> None:
    """Forward the events of a bus channel to this client until it goes (held as ``name``)."""
    await conn.release(name)
    sub = await request.app[BUS].subscribe(channel)

    async def pump() -> None:
        async for event in sub:
            conn.send(event)

    task = conn.spawn(pump(), name)

    async def stop() -> None:
        task.cancel()
        await sub.close()

    conn.hold(name, stop)


async def attach_screen(conn: Connection, request: web.Request, screen_id: str) -> None:
    """This connection speaks for the screen and gets its events."""
    await listen(conn, request, "screen", screen_channel(screen_id))
    speaking = request.app[SCREEN_OF]
    speaking[conn.id] = screen_id

    async def stop() -> None:
        speaking.pop(conn.id, None)

    conn.hold("screen-id", stop)


@COMMANDS.register("screen.hello")
async def screen_hello(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """A screen says who it is (its token, if it has one): a paired screen gets its settings and
    show; any other gets a pairing code to show (the same one while it is still open)."""
    screens = request.app[SCREENS]
    token = msg.get("token")
    if token is not None and not isinstance(token, str):
        raise InvalidInput("token must be text")
    if token:
        screen = await screens.by_token(token)
        if screen is not None:
            await attach_screen(conn, request, screen.id)
            show = await next_show(request, screen)
            return {
                "state": "paired",
                "screen": screen.public(),
                "show": None if show is None else show.public(),
            }
        open_pairing = await screens.pairing_of(token)
        if open_pairing is not None:
            await attach_screen(conn, request, open_pairing.screen)
            return {"state": "pairing", "token": token, **open_pairing.public(screens.now())}
    limiter = request.app[NEW_PAIRING_LIMITER]
    await limiter.check(conn.remote)
    await limiter.failed(conn.remote)  # counts codes handed out, not failures
    pairing = await screens.start_pairing()
    await attach_screen(conn, request, pairing.screen)
    return {"state": "pairing", "token": pairing.token, **pairing.public(screens.now())}


def _screen_of(conn: Connection, request: web.Request) -> str:
    screen_id = request.app[SCREEN_OF].get(conn.id)
    if screen_id is None:
        raise InvalidInput("say screen.hello first")
    return screen_id


@COMMANDS.register("screen.status", state=str)
async def screen_status(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """A paired screen says what it is doing (every few seconds); staff phones see it. The answer
    is what the screen should show now (staff may have chosen, or the programme moved on)."""
    screens = request.app[SCREENS]
    screen = await screens.get(_screen_of(conn, request))
    state, sound, show_id = msg["state"], msg.get("sound", "off"), msg.get("show")
    # isinstance first: a list or an object cannot even be looked up in a set
    if not isinstance(state, str) or state not in SCREEN_STATES:
        raise InvalidInput(f"state must be one of {', '.join(sorted(SCREEN_STATES))}")
    if not isinstance(sound, str) or sound not in SOUND_STATES:
        raise InvalidInput(f"sound must be one of {', '.join(sorted(SOUND_STATES))}")
    if show_id is not None and not isinstance(show_id, str):
        raise InvalidInput("show must be a show id or null")
    title = None
    if show_id is not None:
        try:
            title = (await request.app[SHOWS].get(show_id)).title
        except ShowNotFound:
            show_id = None
    status = {"state": state, "sound": sound, "show": show_id, "title": title}
    await screens.report(screen.id, status)
    await request.app[BUS].publish(
        staff_channel(screen.staff_key),
        {"type": "screen.status", "screen": screen.public(), "status": status},
    )
    show = await next_show(request, screen)
    return {"screen": screen.public(), "show": None if show is None else show.public()}


# -- the staff's phone (WebSocket) ---------------------------------------------------------------


async def _staff(conn: Connection, request: web.Request) -> StaffKey:
    key_id = request.app[STAFF_OF].get(conn.id)
    if key_id is None:
        raise InvalidInput("open the remote first (remote.open)")
    return await request.app[SCREENS].staff_key_by_id(key_id)


async def _failed(request: web.Request, *subjects: str) -> None:
    for subject in subjects:
        await request.app[PAIR_LIMITER].failed(subject)


async def screen_view(request: web.Request, screen: Screen) -> dict[str, Any]:
    """A screen as the phone shows it: its settings and what it is doing (None: away)."""
    return {**screen.public(), "status": await request.app[SCREENS].status(screen.id)}


@COMMANDS.register("remote.open", key=str)
async def remote_open(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Staff open the remote with their staff key: their screens, and their status from now on.
    Only wrong keys count against the address (its own limit, apart from wrong pairing codes)."""
    limiter = request.app[STAFF_KEY_LIMITER]
    async with limiter.trying(conn.remote):
        try:
            staff = await request.app[SCREENS].staff_key(msg["key"].strip())
        except StaffKeyInvalid:
            await limiter.failed(conn.remote)
            raise
    await listen(conn, request, "staff", staff_channel(staff.id))
    remotes = request.app[STAFF_OF]
    remotes[conn.id] = staff.id

    async def stop() -> None:
        remotes.pop(conn.id, None)

    conn.hold("staff-id", stop)
    screens = await request.app[SCREENS].of_staff(staff.id)
    return {
        "staff": {"label": staff.label},
        "screens": [await screen_view(request, s) for s in screens],
    }


@COMMANDS.register("screen.pair", code=str)
async def screen_pair(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Staff confirm the code a screen shows; the screen is theirs and starts by itself."""
    staff = await _staff(conn, request)
    limiter = request.app[PAIR_LIMITER]
    subjects = (conn.remote, f"key:{staff.id}")
    await limiter.check(subjects[1])
    name = msg.get("name")
    if name is not None and name != "":
        name = clean_label(name, NAME_MAX, "name")
    async with limiter.trying(subjects[0]):  # codes tried all at once: see FailureLimiter
        try:
            screen = await request.app[SCREENS].pair(staff, msg["code"], name)
        except (PairingNotFound, PairingExpired, InvalidInput):
            await _failed(request, *subjects)  # the name was checked above: this is the code
            raise
        except StaffKeyRevoked as exc:
            # revoked while pairing: the pairing was undone; the TV shows a new code
            await request.app[BUS].publish(screen_channel(exc.screen), {"type": "screen.unpaired"})
            raise
    bus = request.app[BUS]
    await bus.publish(screen_channel(screen.id), {"type": "screen.paired"})
    await bus.publish(staff_channel(staff.id), {"type": "screen.paired", "screen": screen.public()})
    log.info("screen.paired", screen=screen.id, staff_key=staff.id)
    return {"screen": await screen_view(request, screen)}


async def _their_screen(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Screen:
    staff = await _staff(conn, request)
    return await request.app[SCREENS].get(msg["screen"], staff.id)


@COMMANDS.register("remote.control", screen=str)
async def remote_control(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Change a screen's show (``null``: the next in the programme), head count or volume."""
    screen = await _their_screen(conn, request, msg)
    changes: dict[str, Any] = {}
    if "show" in msg:
        show_id = msg["show"]
        if show_id is not None:
            if not isinstance(show_id, str):
                raise InvalidInput("show must be a show id or null")
            show = await request.app[SHOWS].get(show_id)
            if show.state is ShowState.ENDED:
                raise ShowNotFound("this show has ended")
        changes["show"] = show_id
    if "head_count" in msg:
        changes["head_count"] = check_head_count(msg["head_count"])
    if "volume" in msg:
        changes["volume"] = check_volume(msg["volume"])
    if "name" in msg:
        changes["name"] = clean_label(msg["name"], NAME_MAX, "name")
    if not changes:
        raise InvalidInput("nothing to change: give show, head_count, volume or name")
    screen = await request.app[SCREENS].update(screen, **changes)
    await request.app[BUS].publish(
        screen_channel(screen.id), {"type": "screen.control", "screen": screen.public()}
    )
    return {"screen": await screen_view(request, screen)}


@COMMANDS.register("remote.react", screen=str, kind=str)
async def remote_react(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """A reaction on behalf of the room: the screen sends it as its own (counted in its lobby)."""
    screen = await _their_screen(conn, request, msg)
    kind = check_kind(msg["kind"])
    await request.app[BUS].publish(
        screen_channel(screen.id), {"type": "screen.react", "kind": kind}
    )
    return {}


@COMMANDS.register("remote.forget", screen=str)
async def remote_forget(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Unpair a screen (it shows a new pairing code by itself)."""
    screen = await _their_screen(conn, request, msg)
    await request.app[SCREENS].forget(screen.id)
    bus = request.app[BUS]
    await bus.publish(screen_channel(screen.id), {"type": "screen.unpaired"})
    await bus.publish(
        staff_channel(screen.staff_key), {"type": "screen.forgotten", "screen": screen.id}
    )
    log.info("screen.forgotten", screen=screen.id)
    return {"forgotten": True}
