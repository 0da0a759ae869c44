"""Commands for a live show: the performer publishes, viewers join by code and watch.

Media work stays in :mod:`media.stage`, seating in :mod:`rooms.foyer`; this module checks who may
do what, moves the show's state and tells everyone watching through the bus (``show:{id}``).
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable

import structlog

from media.stage import Publication
from rooms import events
from rooms.bus import BusError, Message
from rooms.errors import Forbidden, InvalidInput, ShowNotFound
from rooms.foyer import HEAD_COUNT_MAX
from rooms.lobbies import NAME_MAX, LobbyNotFound
from rooms.screens import ScreenNotFound
from rooms.shows import Show, ShowState
from rooms.supervise import every, retrying
from rooms.tickets import Ticket, TicketRequired
from signaling import commands as c
from signaling import recordings
from signaling.commands import MEDIA, Commands, Result
from signaling.connection import Connection
from signaling.lookup import admission, lobby_for_code
from signaling.roles import Performer, Screen, Viewer, performer, viewer
from signaling.services import Services

log = structlog.get_logger(__name__)

AUDIENCE_INTERVAL = 1.0  # seconds between viewer-count updates to the performer
TOKEN_MAX = 128
SDP_MAX = 32 * 1024


# -- performer ------------------------------------------------------------------------------------


async def performer_show(services: Services, show_id: str, token: str) -> Show:
    """The show if ``token`` is its performer token (one answer for unknown show or wrong token)."""
    try:
        show = await services.shows.get(show_id)
    except ShowNotFound:
        raise Forbidden("this performer link is not valid") from None
    if not hmac.compare_digest(token.encode(), show.performer_token.encode()):
        raise Forbidden("this performer link is not valid")
    if show.state is ShowState.ENDED:
        raise ShowNotFound("this show has ended")
    return show


def follow_publication(services: Services) -> Callable[[Publication, str], None]:
    """Move the show's state with its performer's connection: live when media connects, paused
    when it closes or fails (unless another performer took over). Shared by every way to publish.
    The bus may be away just then: the move is retried until it is stored, unless a later move of
    the same show replaced it (the latest word wins)."""
    lifecycle = services.lifecycle

    def on_state(publication: Publication, state: str) -> None:
        show_id = publication.show_id
        key = f"show-state:{show_id}"
        if state == "connected":
            live = go_live(services, show_id, publication.codecs)
            lifecycle.spawn_latest(key, live, "show-live")
            lifecycle.spawn(recordings.start_recording(services, show_id), "recording-start")
        elif state in ("failed", "closed") and not services.stage.live(show_id):
            lifecycle.spawn_latest(key, performer_left(services, show_id), "show-paused")

    return on_state


async def go_live(services: Services, show_id: str, codecs: dict[str, str]) -> None:
    """The show's performer connected here: this node claims the show as its origin, and only
    then is the show announced live, so that a viewer on another node who takes part at the
    announcement finds where to pull it from (the other way round it was told ``not_live`` and
    waited for a ``live`` that had already come)."""
    cascade = services.cascade
    await retrying(lambda: cascade.hosting(show_id, codecs), "origin_claim", show=show_id)
    await move_show(services, show_id, ShowState.LIVE, codecs)


async def performer_left(services: Services, show_id: str) -> None:
    """The show's performer left this node: paused, unless they went on on another node."""
    cascade = services.cascade
    if not await retrying(lambda: cascade.on_air_elsewhere(show_id), "origin_find", show=show_id):
        await move_show(services, show_id, ShowState.PAUSED)
    await retrying(lambda: cascade.not_hosting(show_id), "origin_release", show=show_id)


async def move_show(
    services: Services, show_id: str, state: ShowState, codecs: dict[str, str] | None = None
) -> None:
    """Store and announce the show's new state, retrying while that fails. A show whose record is
    gone (Redis restarted without its data) cannot be moved: said once, as a warning."""
    try:
        await retrying(
            lambda: services.shows.move(show_id, state, codecs),
            "show.move",
            fatal=(ShowNotFound,),
            show=show_id,
            state=state.value,
        )
    except ShowNotFound:
        log.warning("show.move_lost", show=show_id, state=state.value, hint="no record of the show")


async def take_the_stage(conn: Connection, services: Services, show_id: str) -> Performer:
    """The performer's (or host's) role: the show's events, its audience, every lobby's chat."""
    current = conn.role(Performer)
    if current is not None and current.show_id == show_id:
        return current
    role = await conn.take(Performer(conn, show_id))
    relay = services.relay
    await role.hold("events", await relay.follow_show(show_id, conn, performer=True))
    await role.hold("chat-feed", await relay.follow_chat(show_id, conn))
    role.spawn(report_audience(conn, services, show_id), "audience")
    return role


async def perform_start(conn: Connection, services: Services, msg: Message) -> Result:
    """Publish the performer's offer; the show goes live once media connects."""
    show = await performer_show(services, msg["show"], msg["token"])
    stage = services.stage
    publication = await stage.publish(show.id, msg["sdp"], follow_publication(services))
    conn.log.info("perform.start", show=show.id, codecs=publication.codecs)

    async def stop() -> None:
        await stage.unpublish(publication)

    try:
        role = await take_the_stage(conn, services, show.id)
    except BaseException:
        await stop()
        raise
    await role.hold("publication", stop)
    return {"sdp": publication.answer_sdp, "codecs": publication.codecs}


async def hall_mute(conn: Connection, services: Services, msg: Message) -> Result:
    """The performer silences (or brings back) the audience sound."""
    role = performer(conn)
    if not services.stage.hall_mute(role.show_id, msg["muted"]):
        raise InvalidInput("this show has no audience sound yet (go live with it first)")
    return {"muted": msg["muted"]}


async def perform_host(conn: Connection, services: Services, msg: Message) -> Result:
    """A host with the performer's rights: sees the audience and all chat and moderates, without
    publishing media."""
    show = await performer_show(services, msg["show"], msg["token"])
    await take_the_stage(conn, services, show.id)
    return {"show": show.public()}


async def perform_stop(conn: Connection, services: Services, msg: Message) -> Result:
    """Stop broadcasting; the show pauses and viewers wait."""
    role = conn.role(Performer)
    stopped = role is not None and await role.release("publication")
    return {"stopped": stopped}


async def perform_end(conn: Connection, services: Services, msg: Message) -> Result:
    """End the show for good: viewers see it has ended and its code is freed."""
    show = await performer_show(services, msg["show"], msg["token"])
    role = conn.role(Performer)
    if role is not None:
        await role.release("publication")
    await recordings.finish_recording(services, show)
    await services.stage.end(show.id)
    await services.shows.move(show.id, ShowState.ENDED)
    conn.log.info("perform.end", show=show.id)
    services.lifecycle.spawn(keep_insight(services, show.id), "insight-aggregate")
    return {"state": ShowState.ENDED.value}


async def keep_insight(services: Services, show_id: str) -> None:
    """The show ended: its figures are summed into the record kept for its organiser (the last
    seconds' counts of this node first)."""
    insight = services.insight
    await retrying(insight.flush, "insight.flush", show=show_id)
    await retrying(lambda: insight.aggregate(show_id), "insight.aggregate", show=show_id)


async def report_audience(conn: Connection, services: Services, show_id: str) -> None:
    """Send the performer the size of the audience whenever it changes: heads in the lobbies (a
    care-home screen counts its residents) plus standard players (WHEP), across nodes. While the
    count fails (the bus away) the performer keeps the last figure and counting is retried."""
    cascade, counter = services.cascade, services.audience
    last = -1
    insight = services.insight
    minute, peak = -1, -1  # the show's insight has this minute's largest audience so far

    async def report() -> None:
        nonlocal last, minute, peak
        count = await counter.count(show_id) + await cascade.players(show_id)
        if count != last:
            conn.send(events.audience(show_id, count))
            last = count
        now = insight.minute()
        if now != minute or count > peak:
            await insight.sample(show_id, count, now)
            minute, peak = now, count

    await every(AUDIENCE_INTERVAL, report, "audience.count", now=True, show=show_id)


# -- viewer ---------------------------------------------------------------------------------------


class _LobbyEvents:
    """The lobby's events to a seated viewer; a removal of this member closes the connection."""

    def __init__(self, role: Viewer) -> None:
        self.role = role

    def deliver(self, event: Message, text: str) -> None:
        conn = self.role.conn
        conn.send_text(text)
        if event.get("type") == "member.removed" and event.get("member") == self.role.member.id:
            if event.get("reason") == "ticket":
                conn.close_soon(4009, "the ticket is in use on another device")
            else:
                conn.close_soon(4003, "removed by the performer")


async def watch_join(conn: Connection, services: Services, msg: Message) -> Result:
    """Take a seat in a lobby of a show by its code: the show's state now, the foyer, and the
    show's and the lobby's events from now on."""
    show, ticket = await admission(services, conn.remote, msg["code"])
    if show.access == "ticket" and ticket is None:
        raise TicketRequired("this show admits ticket holders: type the ticket's code")
    friend = None
    if msg.get("lobby"):  # a friend's lobby: its code is checked before anything is left
        friend = await lobby_for_code(services, conn.remote, show.id, msg["lobby"])
    head_count, screen = await _heads(conn, services, msg)
    if ticket is not None and ticket.head_count > head_count:
        head_count = ticket.head_count  # a care home's ticket for its room
    await conn.drop(Viewer)  # the seat, voice and broadcast of the show being left
    foyer = services.foyer
    seating = await foyer.seat(
        show,
        conn.id,
        name=msg.get("name"),
        head_count=head_count,
        screen=screen,
        session=msg.get("session"),
        friend=friend,
    )
    lobby = seating.lobby
    role = Viewer(conn, show.id, lobby, seating.member)
    insight = services.insight
    seated_at = insight.clock()

    async def leave() -> None:
        await foyer.leave(lobby, role.member)
        with contextlib.suppress(BusError):  # the seat is free; the figure is only a figure
            await insight.watched(show.id, role.member.id, insight.clock() - seated_at)

    await role.hold("seat", leave)  # first in, last out: the seat is given up after the rest
    try:
        await conn.take(role)
        relay = services.relay
        # Members and voice come on the lobby's channel, chat through this node's one following
        # of the show's chat, both before the history is read, so that nothing falls between.
        await role.hold("lobby-events", await relay.follow_lobby(lobby.id, _LobbyEvents(role)))
        await role.hold("chat", await relay.follow_chat(show.id, conn, lobby.id))
        lifecycle = services.lifecycle
        role.spawn(
            foyer.keep_present(lobby, lambda: role.member, lambda: lifecycle.draining), "presence"
        )
        if ticket is not None:
            await _hold_the_ticket(services, show.id, ticket, seating.member.id, lobby.id)
        members = await foyer.announce(lobby)
        history = await services.chat.recent(lobby)
        await role.hold("events", await relay.follow_show(show.id, conn, performer=False))
    except BaseException:
        if conn.role(Viewer) is role:
            await conn.drop(Viewer)
        else:
            await role.close()  # it was never taken
        if not seating.returning:
            await foyer.forget_session(seating.session)  # the client never got it
        raise
    if not seating.returning:  # counted once the seat is whole (a failed join counts nothing)
        insight.count(show.id, "joins")
        if screen:
            insight.count(show.id, "screens")
            insight.count(show.id, "screen_heads", head_count)
        with contextlib.suppress(BusError):  # a figure, never a reason to refuse the seat
            await insight.seen_lobby(show.id, lobby.id)
    codecs = await services.cascade.codecs(show.id)  # on air here, or on another node
    return {
        "show": show.public(),
        "live": codecs is not None,
        "codecs": codecs,
        "lobby": lobby.public(),
        "me": seating.member.public(),
        "session": seating.session,
        "members": members,
        "chat": history,
    }


async def _hold_the_ticket(
    services: Services, show_id: str, ticket: Ticket, member_id: str, lobby_id: str
) -> None:
    """One seat per ticket: whoever held it on another device is told (4009) and let go."""
    before = await services.tickets.take_seat(ticket, member_id, lobby_id)
    if before is None:
        return
    event = events.member_removed(str(before["lobby"]), str(before["member"]), reason="ticket")
    await services.bus.publish(events.lobby_channel(str(before["lobby"])), event)
    try:
        lobby = await services.foyer.lobby_of_show(show_id, str(before["lobby"]))
    except LobbyNotFound:
        return  # closed meanwhile: nothing to free
    await services.lobbies.leave(lobby, str(before["member"]))


async def watch_heads(conn: Connection, services: Services, msg: Message) -> Result:
    """A seated care-home screen takes the head count its staff set now; its seat, its lobby and
    its picture stay as they are (a new ``watch.join`` would start the picture over)."""
    role = viewer(conn)
    if role.member.role != "screen":
        raise Forbidden("only a paired care-home screen watches for a room")
    head_count = await _room_heads(conn, services)
    if head_count != role.member.head_count:
        role.member = await services.foyer.recount(role.lobby, role.member, head_count)
    return {"me": role.member.public()}


async def _heads(conn: Connection, services: Services, msg: Message) -> tuple[int, bool]:
    """How many watch through this connection: one, or a paired care-home screen's room as its
    staff set it (a head count anyone could claim would let anyone inflate the audience)."""
    if msg["head_count"] == 1 and not msg["screen"]:
        return 1, False
    return await _room_heads(conn, services), True


async def _room_heads(conn: Connection, services: Services) -> int:
    """The head count of this connection's paired screen, as its staff set it."""
    role = conn.role(Screen)
    try:
        if role is None:
            raise ScreenNotFound("no screen")
        record = await services.screens.get(role.screen_id)  # paired screens have a record
    except ScreenNotFound:
        raise Forbidden("only a paired care-home screen watches for a room") from None
    return record.head_count


async def watch_start(conn: Connection, services: Services, msg: Message) -> Result:
    """An offer for this viewer's peer connection, in the performer's codecs."""
    role = viewer(conn)
    await role.release("broadcast")
    stage = services.stage
    if "video" in msg:
        role.video = msg["video"]
    if "picture" in msg:
        role.picture = msg["picture"]
    await services.cascade.ensure(role.show_id)  # pulled from its origin if on another node
    session = await stage.watch(role.show_id, hall=msg["hall"], video=role.video)
    role.session = session
    session.on_picture = lambda picture, reason: conn.send(events.watch_picture(picture, reason))
    session.on_sound = lambda sound, reason: conn.send(events.watch_sound(sound, reason))
    if role.picture != "auto":
        session.choose_picture(role.picture)

    async def leave() -> None:
        role.session = None
        await stage.leave(session)

    await role.hold("broadcast", leave)
    return {"sdp": session.offer_sdp, "codecs": stage.codecs(role.show_id)}


async def watch_answer(conn: Connection, services: Services, msg: Message) -> Result:
    """Apply the viewer's answer; media starts flowing."""
    role = viewer(conn)
    if role.session is None:
        raise InvalidInput("ask for an offer first (watch.start)")
    await role.session.accept(msg["sdp"])
    return {}


async def watch_quality(conn: Connection, services: Services, msg: Message) -> Result:
    """The picture and the sound, or the sound alone (a weak link): for the media of now and of
    every later ``watch.start`` on this connection."""
    role = viewer(conn)
    if "video" in msg:
        role.video = msg["video"]
    if "picture" in msg:
        role.picture = msg["picture"]
    if role.session is not None:
        role.session.send_video(role.video)
        if "picture" in msg:
            role.session.choose_picture(role.picture)
    if "picture" not in msg:
        return {"video": role.video}
    return {"video": role.video, "picture": role.picture}


async def watch_leave(conn: Connection, services: Services, msg: Message) -> Result:
    """Stop watching and leave the lobby (the connection stays open)."""
    role = conn.role(Viewer)
    left = role is not None and role.session is not None
    await conn.drop(Viewer)
    return {"left": left}


def register(commands: Commands) -> None:
    """The show's commands: publishing, hosting, watching."""
    show_and_token = {c.Required("show"): c.Text(64), c.Required("token"): c.Text(TOKEN_MAX)}
    commands.add(
        "perform.start",
        perform_start,
        {**show_and_token, c.Required("sdp"): c.Text(SDP_MAX)},
        lane=MEDIA,
    )
    commands.add("perform.host", perform_host, show_and_token)
    commands.add("perform.stop", perform_stop, lane=MEDIA)
    commands.add("perform.end", perform_end, show_and_token, lane=MEDIA)
    commands.add("hall.mute", hall_mute, {c.Required("muted"): c.Bool})
    commands.add(
        "watch.join",
        watch_join,
        {
            c.Required("code"): c.Text(64),
            c.Optional("name"): c.Nullable(c.Text(NAME_MAX * 4)),
            c.Optional("head_count", default=1): c.Int(1, HEAD_COUNT_MAX),
            c.Optional("screen", default=False): c.Bool,
            c.Optional("session"): c.Nullable(c.Text(64)),
            c.Optional("lobby"): c.Nullable(c.Text(16)),
        },
    )
    commands.add("watch.heads", watch_heads)
    commands.add(
        "watch.start",
        watch_start,
        {
            c.Optional("hall", default=False): c.Bool,
            c.Optional("video"): c.Bool,
            c.Optional("picture"): c.OneOf("auto", "best", "low"),
        },
        lane=MEDIA,
    )
    commands.add(
        "watch.quality",
        watch_quality,
        {c.Optional("video"): c.Bool, c.Optional("picture"): c.OneOf("auto", "best", "low")},
        lane=MEDIA,
    )
    commands.add("watch.answer", watch_answer, {c.Required("sdp"): c.Text(SDP_MAX)}, lane=MEDIA)
    commands.add("watch.leave", watch_leave)
