"""Commands for a live show: the performer publishes, viewers join by code and watch.

Media work stays in :mod:`media.stage`; this module checks who may do what, moves the show's state
and tells everyone watching through the bus (channel ``show:{id}``).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from typing import Any

from aiohttp import web

from media.stage import Publication, StageError
from rooms.bus import Bus, BusError
from rooms.errors import InvalidInput, RoomsError, ShowNotFound
from rooms.shows import Show, ShowState, show_channel
from signaling.connection import Connection
from signaling.followers import FOLLOWERS
from signaling.foyer import AUDIENCE, enter_lobby, follow_show_chat
from signaling.lookup import show_for_code
from signaling.state import BUS, LIFECYCLE, SHOWS, STAGE
from signaling.ws import COMMANDS, Result

AUDIENCE_INTERVAL = 1.0  # seconds between viewer-count updates to the performer


class Forbidden(RoomsError):
    """The token does not open this show."""

    code = "forbidden"


async def announce_state(bus: Bus, show: Show, codecs: dict[str, str] | None = None) -> None:
    """Tell every client of the show its new state."""
    event: dict[str, Any] = {"type": "show.state", "show": show.id, "state": show.state.value}
    if codecs is not None:
        event["codecs"] = codecs
    await bus.publish(show_channel(show.id), event)


def stage_error(exc: StageError) -> RoomsError:
    """A media refusal as a domain error with the same code, for the envelope."""
    error = RoomsError(str(exc))
    error.code = exc.code
    return error


async def follow_show(conn: Connection, request: web.Request, show_id: str) -> None:
    """Forward the show's live events to this client until it leaves."""
    await conn.release("events")
    followers = request.app[FOLLOWERS]
    await followers.follow(show_id, conn)

    async def stop() -> None:
        await followers.unfollow(show_id, conn)

    conn.hold("events", stop)


# -- performer ------------------------------------------------------------------------------------


async def performer_show(request: web.Request, show_id: object, token: object) -> Show:
    """The show if ``token`` is its performer token (one answer for unknown show or wrong token)."""
    if not isinstance(show_id, str) or not isinstance(token, str):
        raise InvalidInput("show and token are required")
    try:
        show = await request.app[SHOWS].get(show_id)
    except ShowNotFound:
        raise Forbidden("this performer link is not valid") from None
    if not hmac.compare_digest(token.encode(), show.performer_token.encode()):
        raise Forbidden("this performer link is not valid")
    if show.state is ShowState.ENDED:
        raise ShowNotFound("this show has ended")
    return show


@COMMANDS.register("perform.start", show=str, token=str, sdp=str)
async def perform_start(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Publish the performer's offer; the show goes live once media connects."""
    show = await performer_show(request, msg["show"], msg["token"])
    app = request.app
    try:
        publication = await app[STAGE].publish(show.id, msg["sdp"], follow_publication(app))
    except StageError as exc:
        raise stage_error(exc) from exc
    conn.log.info("perform.start", show=show.id, codecs=publication.codecs)

    async def stop() -> None:
        await app[STAGE].unpublish(publication)

    await conn.release("publication")
    conn.hold("publication", stop)
    await take_the_stage(conn, request, show.id)
    if publication.hall is not None:
        await feed_the_hall(conn, request, show.id)
    return {"sdp": publication.answer_sdp, "codecs": publication.codecs}


def follow_publication(app: web.Application) -> Callable[[Publication, str], None]:
    """Move the show's state with its performer's connection: live when media connects, paused
    when it closes or fails (unless another performer took over). Shared by every way to publish."""
    lifecycle = app[LIFECYCLE]

    def on_state(publication: Publication, state: str) -> None:
        show_id = publication.show_id
        if state == "connected":
            coro = _set_state(app, show_id, ShowState.LIVE, publication.codecs)
            lifecycle.spawn(coro, "show-live")
        elif state in ("failed", "closed") and not app[STAGE].live(show_id):
            lifecycle.spawn(_set_state(app, show_id, ShowState.PAUSED), "show-paused")

    return on_state


async def take_the_stage(conn: Connection, request: web.Request, show_id: str) -> None:
    """What the performer's (or host's) connection follows: the show, its audience, all chat."""
    if conn.performing == show_id:
        return
    conn.performing = show_id
    await follow_show(conn, request, show_id)
    await follow_show_chat(conn, request, show_id)
    await conn.release("audience")  # of the show this connection performed before, if any
    audience = conn.spawn(report_audience(conn, request, show_id), "audience")

    async def stop() -> None:
        audience.cancel()

    conn.hold("audience", stop)


async def feed_the_hall(conn: Connection, request: web.Request, show_id: str) -> None:
    """While this performer listens to the audience sound, every node's reaction totals drive it."""
    await conn.release("hall")
    sub = await request.app[BUS].subscribe(show_channel(show_id))
    stage = request.app[STAGE]

    async def pump() -> None:
        async for event in sub:
            if event.get("type") == "reactions":
                stage.hall_reactions(show_id, event.get("counts", {}))

    task = conn.spawn(pump(), "hall-reactions")

    async def stop() -> None:
        task.cancel()
        await sub.close()

    conn.hold("hall", stop)


@COMMANDS.register("hall.mute", muted=bool)
async def hall_mute(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """The performer silences (or brings back) the audience sound."""
    if conn.performing is None:
        raise InvalidInput("only the performer has an audience sound")
    if not request.app[STAGE].hall_mute(conn.performing, msg["muted"]):
        raise InvalidInput("this show has no audience sound yet (go live with it first)")
    return {"muted": msg["muted"]}


@COMMANDS.register("perform.host", show=str, token=str)
async def perform_host(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """A host with the performer's rights: sees the audience and all chat and moderates, without
    publishing media."""
    show = await performer_show(request, msg["show"], msg["token"])
    await take_the_stage(conn, request, show.id)
    return {"show": show.public()}


@COMMANDS.register("perform.stop")
async def perform_stop(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Stop broadcasting; the show pauses and viewers wait."""
    stopped = await conn.release("publication")
    return {"stopped": stopped}


@COMMANDS.register("perform.end", show=str, token=str)
async def perform_end(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """End the show for good: viewers see it has ended and its code is freed."""
    show = await performer_show(request, msg["show"], msg["token"])
    await conn.release("publication")
    await request.app[STAGE].end(show.id)
    await _set_state(request.app, show.id, ShowState.ENDED)
    conn.log.info("perform.end", show=show.id)
    return {"state": ShowState.ENDED.value}


async def _set_state(
    app: web.Application, show_id: str, state: ShowState, codecs: dict[str, str] | None = None
) -> None:
    shows = app[SHOWS]
    if (await shows.get(show_id)).state is ShowState.ENDED:
        return  # a late "paused" from a closing connection must not reopen an ended show
    show = await shows.set_state(show_id, state)
    await announce_state(app[BUS], show, codecs)


async def report_audience(conn: Connection, request: web.Request, show_id: str) -> None:
    """Send the performer the size of the audience whenever it changes: heads in the lobbies (a
    care-home screen counts its residents) plus standard players (WHEP), across nodes."""
    stage, counter = request.app[STAGE], request.app[AUDIENCE]
    last = -1
    while True:
        try:
            count = await counter.count(show_id) + stage.players(show_id)
        except BusError:
            count = last  # the bus is away for a moment; keep the last figure
        if count != last:
            conn.send({"type": "audience", "show": show_id, "viewers": count})
            last = count
        await asyncio.sleep(AUDIENCE_INTERVAL)


# -- viewer ---------------------------------------------------------------------------------------


@COMMANDS.register("watch.join", code=str)
async def watch_join(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Join a show by its code: its state now, and its events from now on."""
    show = await show_for_code(request.app, conn.remote, msg["code"])
    await conn.release("voice")  # the voice belongs to the lobby being left
    foyer = await enter_lobby(conn, request, show, msg)
    await follow_show(conn, request, show.id)
    conn.watching = show.id
    stage = request.app[STAGE]
    live = stage.live(show.id)
    return {
        "show": show.public(),
        "live": live,
        "codecs": stage.codecs(show.id) if live else None,
        **foyer,
    }


@COMMANDS.register("watch.start")
async def watch_start(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """An offer for this viewer's peer connection, in the performer's codecs."""
    show_id = getattr(conn, "watching", None)
    if show_id is None:
        raise InvalidInput("join a show first (watch.join)")
    await conn.release("viewer")
    stage = request.app[STAGE]
    try:
        hall = msg.get("hall", False)
        if not isinstance(hall, bool):
            raise InvalidInput("hall must be true or false")
        session = await stage.watch(show_id, hall=hall)
    except StageError as exc:
        raise stage_error(exc) from exc
    conn.viewer_session = session

    async def leave() -> None:
        conn.viewer_session = None
        await stage.leave(session)

    conn.hold("viewer", leave)
    return {"sdp": session.offer_sdp, "codecs": stage.codecs(show_id)}


@COMMANDS.register("watch.answer", sdp=str)
async def watch_answer(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Apply the viewer's answer; media starts flowing."""
    session = getattr(conn, "viewer_session", None)
    if session is None:
        raise InvalidInput("ask for an offer first (watch.start)")
    try:
        await session.accept(msg["sdp"])
    except StageError as exc:
        raise stage_error(exc) from exc
    return {}


@COMMANDS.register("watch.leave")
async def watch_leave(conn: Connection, request: web.Request, msg: dict[str, Any]) -> Result:
    """Stop watching (the connection stays open)."""
    left = await conn.release("viewer")
    await conn.release("events")
    await conn.release("voice")
    await conn.release("lobby")
    conn.watching = None
    return {"left": left}
