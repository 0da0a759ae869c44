"""Care-home screens over HTTP and the WebSocket: organisers issue staff keys; a screen asks for a
pairing code and then runs by itself; staff pair it and control it from their phone.

The domain is :mod:`rooms.screens`. Events for a screen go over the bus (``screen-events:{id}``)
and the screens' status to the staff's phones (``staff-events:{key}``), so the phone and the screen
may be on different nodes. The protocol is in ``docs/protocol.md``, the HTTP API in ``docs/api.md``.
"""

from __future__ import annotations

import io
import re
from typing import Any

import segno
import structlog
from aiohttp import web

from rooms import events
from rooms.codes import digits_of
from rooms.errors import InvalidInput, ShowNotFound
from rooms.insight import COMMENT_MAX
from rooms.reactions import KINDS
from rooms.screens import (
    NAME_MAX,
    PairingExpired,
    PairingNotFound,
    Screen,
    StaffKey,
    StaffKeyInvalid,
    StaffKeyNotFound,
    StaffKeyRevoked,
    check_head_count,
    check_volume,
    clean_label,
    next_show,
)
from rooms.shows import ShowState
from rooms.tickets import normalise_ticket
from signaling import commands as c
from signaling.api import read_json_object, require_organiser
from signaling.commands import Commands, Message, Result
from signaling.connection import Connection
from signaling.errors import ApiError
from signaling.roles import Phone
from signaling.roles import Screen as ScreenRole
from signaling.services import Services, services

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

# -- the pairing QR code (the TV, HTTP) -----------------------------------------------------------

PAIRING_CODE = re.compile(r"\d{6}")


def pair_link(public_url: str, code: str) -> str:
    """The staff phone's page with the pairing code filled in; in the fragment, which browsers
    never send, so the code stays out of server and proxy logs."""
    return f"{public_url}/screen/pair#code={code}"


@routes.post("/api/screens/pair-qr")
async def pair_qr(request: web.Request) -> web.Response:
    """The link that pairs a screen, as an SVG QR code for the TV to show; POSTed, so the code is
    in the body and not in a logged URL. Only a picture of the link: pairing needs a staff key."""
    body = await read_json_object(request)
    code = body.get("code")
    if not isinstance(code, str) or not PAIRING_CODE.fullmatch(code):
        raise ApiError(400, "invalid_input", "code must be the six digits the screen shows")
    out = io.BytesIO()
    segno.make_qr(pair_link(services(request).site.public_url, code), error="m").save(
        out, kind="svg", scale=8, border=4, xmldecl=False
    )
    return web.Response(
        body=out.getvalue(), content_type="image/svg+xml", headers={"Cache-Control": "no-store"}
    )


# -- staff keys (organisers, HTTP) ---------------------------------------------------------------


@routes.post("/api/staff-keys")
async def issue_staff_key(request: web.Request) -> web.Response:
    """A new staff key for a care home; the key is in this answer only."""
    actor = await require_organiser(request)
    body = await read_json_object(request)
    unknown = set(body) - {"label"}
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    organiser = actor.organiser_id or services(request).organisers.default_id
    staff, secret = await services(request).screens.issue_key(body.get("label"), organiser)
    log.info("staff_key.issued", staff_key=staff.id)
    return web.json_response(
        {**staff.public(), "key": secret, "screens": 0},
        status=201,
        headers={"Location": f"/api/staff-keys/{staff.id}", "Cache-Control": "no-store"},
    )


@routes.get("/api/staff-keys")
async def list_staff_keys(request: web.Request) -> web.Response:
    """The organiser's staff keys (the admin: everyone's), never the keys themselves, with how
    many screens each has paired."""
    actor = await require_organiser(request)
    screens = services(request).screens
    keys = [
        {**k.public(), "screens": len(await screens.of_staff(k.id))}
        for k in await screens.staff_keys()
        if actor.may_manage(k.organiser)
    ]
    return web.json_response({"staff_keys": keys}, headers={"Cache-Control": "no-store"})


@routes.delete("/api/staff-keys/{key_id}")
async def revoke_staff_key(request: web.Request) -> web.Response:
    """Revoke a staff key: it stops working and the screens it paired show a new pairing code."""
    actor = await require_organiser(request)
    key_id = request.match_info["key_id"]
    svc = services(request)
    try:
        try:
            owner = (await svc.screens.staff_key_by_id(key_id)).organiser
        except StaffKeyInvalid:
            raise StaffKeyNotFound("no staff key has this id") from None
        if not actor.may_manage(owner):
            raise StaffKeyNotFound("no staff key has this id")  # another organiser's
        forgotten = await svc.screens.revoke_key(key_id)
    except StaffKeyNotFound as exc:
        raise ApiError(404, exc.code, str(exc)) from None
    for screen in forgotten:
        await svc.bus.publish(events.screen_channel(screen.id), events.screen_unpaired())
    await svc.bus.publish(events.staff_channel(key_id), events.staff_revoked())
    log.info("staff_key.revoked", staff_key=key_id, screens=len(forgotten))
    return web.json_response({"revoked": True, "screens_forgotten": len(forgotten)})


# -- the screen (WebSocket) ----------------------------------------------------------------------


async def attach_screen(conn: Connection, services: Services, screen_id: str) -> None:
    """This connection speaks for the screen and gets its events."""
    role = await conn.take(ScreenRole(conn, screen_id))
    await role.hold("events", await services.relay.follow_screen(screen_id, conn))


async def screen_hello(conn: Connection, services: Services, msg: Message) -> Result:
    """A screen says who it is (its token, if it has one): a paired screen gets its settings and
    show; any other gets a pairing code to show (the same one while it is still open)."""
    screens = services.screens
    token = msg.get("token")
    if token:
        screen = await screens.by_token(token)
        if screen is not None:
            await attach_screen(conn, services, screen.id)
            show = await next_show(services.shows, screen)
            return {
                "state": "paired",
                "screen": screen.public(),
                "show": None if show is None else show.public(),
            }
        open_pairing = await screens.pairing_of(token)
        if open_pairing is not None:
            await attach_screen(conn, services, open_pairing.screen)
            return {"state": "pairing", "token": token, **open_pairing.public(screens.now())}
    # counts codes handed out, not failures: counted first, so a burst gets no more than the limit
    await services.limiters.new_pairing.failed(conn.remote)
    pairing = await screens.start_pairing()
    await attach_screen(conn, services, pairing.screen)
    return {"state": "pairing", "token": pairing.token, **pairing.public(screens.now())}


def _screen_of(conn: Connection) -> str:
    role = conn.role(ScreenRole)
    if role is None:
        raise InvalidInput("say screen.hello first")
    return role.screen_id


async def screen_status(conn: Connection, services: Services, msg: Message) -> Result:
    """A paired screen says what it is doing (every few seconds); staff phones see it. The answer
    is what the screen should show now (staff may have chosen, or the programme moved on)."""
    screens = services.screens
    screen = await screens.get(_screen_of(conn))
    state, sound, show_id = msg["state"], msg["sound"], msg.get("show")
    title = None
    if show_id is not None:
        try:
            title = (await services.shows.get(show_id)).title
        except ShowNotFound:
            show_id = None
    status = {"state": state, "sound": sound, "show": show_id, "title": title}
    await screens.report(screen.id, status)
    await services.bus.publish(
        events.staff_channel(screen.staff_key), events.screen_status(screen.public(), status)
    )
    show = await next_show(services.shows, screen)
    return {"screen": screen.public(), "show": None if show is None else show.public()}


# -- the staff's phone (WebSocket) ---------------------------------------------------------------


async def _staff(conn: Connection, services: Services) -> StaffKey:
    role = conn.role(Phone)
    if role is None:
        raise InvalidInput("open the remote first (remote.open)")
    return await services.screens.staff_key_by_id(role.staff_key)


async def screen_view(services: Services, screen: Screen) -> dict[str, Any]:
    """A screen as the phone shows it: its settings and what it is doing (None: away)."""
    return {**screen.public(), "status": await services.screens.status(screen.id)}


async def remote_open(conn: Connection, services: Services, msg: Message) -> Result:
    """Staff open the remote with their staff key: their screens, and their status from now on.
    Only wrong keys count against the address (its own limit, apart from wrong pairing codes)."""
    limiter = services.limiters.staff_key
    async with limiter.trying(conn.remote) as attempt:
        try:
            staff = await services.screens.staff_key(msg["key"].strip())
        except StaffKeyInvalid:
            await attempt.wrong()
            raise
        await attempt.right()
    role = await conn.take(Phone(conn, staff.id))
    await role.hold("events", await services.relay.follow_staff(staff.id, conn))
    screens = await services.screens.of_staff(staff.id)
    return {
        "staff": {"label": staff.label},
        "screens": [await screen_view(services, s) for s in screens],
    }


async def screen_pair(conn: Connection, services: Services, msg: Message) -> Result:
    """Staff confirm the code a screen shows; the screen is theirs and starts by itself."""
    staff = await _staff(conn, services)
    limiter = services.limiters.pairing
    name = msg.get("name")
    if name is not None and name != "":
        name = clean_label(name, NAME_MAX, "name")
    bus = services.bus
    # Counted per address and per staff key: codes tried all at once, see FailureLimiter.
    async with (
        limiter.trying(conn.remote) as by_address,
        limiter.trying(f"key:{staff.id}") as by_key,
    ):

        async def right() -> None:
            await by_key.right()
            await by_address.right()

        try:
            screen = await services.screens.pair(staff, msg["code"], name, confirm=right)
        except (PairingNotFound, PairingExpired, InvalidInput):
            try:  # the name was checked above: this is the code
                await by_key.wrong()
            finally:
                await by_address.wrong()
            raise
        except StaffKeyRevoked as exc:
            # revoked while pairing: the pairing was undone; the TV shows a new code
            await bus.publish(events.screen_channel(exc.screen), events.screen_unpaired())
            raise
    await bus.publish(events.screen_channel(screen.id), events.screen_paired())
    await bus.publish(events.staff_channel(staff.id), events.screen_paired(screen.public()))
    log.info("screen.paired", screen=screen.id, staff_key=staff.id)
    return {"screen": await screen_view(services, screen)}


async def _their_screen(conn: Connection, services: Services, msg: Message) -> Screen:
    staff = await _staff(conn, services)
    return await services.screens.get(msg["screen"], staff.id)


async def remote_control(conn: Connection, services: Services, msg: Message) -> Result:
    """Change a screen's show (``null``: the next in the programme), head count or volume, or
    give it a ticket (a ticketed show's: the screen's show becomes the ticket's; ``null``: none)."""
    screen = await _their_screen(conn, services, msg)
    changes: dict[str, Any] = {}
    if msg.get("ticket") is not None:
        ticket_code = normalise_ticket(digits_of(msg["ticket"]))
        ticket = None if ticket_code is None else await services.tickets.find(ticket_code)
        if ticket is None:
            raise ShowNotFound("no show has this ticket")
        msg = {**msg, "show": ticket.show}
        changes["ticket"] = ticket_code
    elif "ticket" in msg:
        changes["ticket"] = None
    if "show" in msg:
        show_id = msg["show"]
        if show_id is not None:
            show = await services.shows.get(show_id)
            if show.state is ShowState.ENDED:
                raise ShowNotFound("this show has ended")
        changes["show"] = show_id
    if "head_count" in msg:
        changes["head_count"] = check_head_count(msg["head_count"])
    if "volume" in msg:
        changes["volume"] = check_volume(msg["volume"])
    if "name" in msg:
        changes["name"] = clean_label(msg["name"], NAME_MAX, "name")
    if "camera" in msg:
        changes["camera"] = msg["camera"]
    if not changes:
        raise InvalidInput(
            "nothing to change: give show, head_count, volume, name, ticket or camera"
        )
    screen = await services.screens.update(screen, **changes)
    await services.bus.publish(
        events.screen_channel(screen.id), events.screen_control(screen.public())
    )
    return {"screen": await screen_view(services, screen)}


async def remote_react(conn: Connection, services: Services, msg: Message) -> Result:
    """A reaction on behalf of the room: the screen sends it as its own (counted in its lobby)."""
    screen = await _their_screen(conn, services, msg)
    await services.bus.publish(events.screen_channel(screen.id), events.screen_react(msg["kind"]))
    return {}


async def remote_feedback(conn: Connection, services: Services, msg: Message) -> Result:
    """Staff answer "how was it?" for the room that watched on this screen (weighted by the
    room's head count); a second answer replaces the first."""
    screen = await _their_screen(conn, services, msg)
    show = await services.shows.get(msg["show"])
    await services.insight.feedback(
        show.id, f"screen:{screen.id}", msg["score"], msg.get("comment"), screen.head_count
    )
    return {"thanks": True}


async def remote_forget(conn: Connection, services: Services, msg: Message) -> Result:
    """Unpair a screen (it shows a new pairing code by itself)."""
    screen = await _their_screen(conn, services, msg)
    await services.screens.forget(screen.id)
    bus = services.bus
    await bus.publish(events.screen_channel(screen.id), events.screen_unpaired())
    await bus.publish(events.staff_channel(screen.staff_key), events.screen_forgotten(screen.id))
    log.info("screen.forgotten", screen=screen.id)
    return {"forgotten": True}


def register(commands: Commands) -> None:
    """The screen's and the staff phone's commands."""
    screen_id = {c.Required("screen"): c.Text(64)}
    label = c.Text(NAME_MAX * 4)
    commands.add("screen.hello", screen_hello, {c.Optional("token"): c.Nullable(c.Text(128))})
    commands.add(
        "screen.status",
        screen_status,
        {
            c.Required("state"): c.OneOf(*SCREEN_STATES),
            c.Optional("sound", default="off"): c.OneOf(*SOUND_STATES),
            c.Optional("show"): c.Nullable(c.Text(64)),
        },
    )
    commands.add("remote.open", remote_open, {c.Required("key"): c.Text(256)})
    commands.add(
        "screen.pair",
        screen_pair,
        {c.Required("code"): c.Text(32), c.Optional("name"): c.Nullable(label)},
    )
    commands.add(
        "remote.control",
        remote_control,
        {
            **screen_id,
            c.Optional("show"): c.Nullable(c.Text(64)),
            c.Optional("head_count"): object,  # checked by the domain (rooms.screens)
            c.Optional("volume"): object,
            c.Optional("name"): label,
            c.Optional("ticket"): c.Nullable(c.Text(40)),
            c.Optional("camera"): c.OneOf("off", "lobby", "performer"),
        },
    )
    commands.add("remote.react", remote_react, {**screen_id, c.Required("kind"): c.OneOf(*KINDS)})
    commands.add("remote.forget", remote_forget, screen_id)
    commands.add(
        "remote.feedback",
        remote_feedback,
        {
            **screen_id,
            c.Required("show"): c.Text(64),
            c.Required("score"): c.Int(1, 5),
            c.Optional("comment"): c.Nullable(c.Text(COMMENT_MAX * 4)),
        },
    )
