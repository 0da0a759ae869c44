"""WHEP: any standard WebRTC player watches a show (draft-ietf-wish-whep).

``POST /whep/{show}`` takes the player's receive-only offer; ``{show}`` is the show's id or its
audience code (a code counts against the address's limit on wrong codes, like every code look-up).
The player counts as a viewer like any other. The session resource works as WHIP's does.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from rooms.errors import ShowNotFound
from rooms.shows import Show, ShowState
from signaling.errors import ApiError
from signaling.lookup import show_for_code
from signaling.services import services
from signaling.whip import (
    CORS,
    SDP,
    TRICKLE,
    apply_trickle,
    find_session,
    open_session,
    sdp_body,
    with_links,
)

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

# Offers of one address not yet connected: each holds sockets and a place for up to 30 s, so a
# stranger could hold many; a household or a care home starts a few players at once at most.
PENDING_PER_ADDRESS = 8


async def _show(request: web.Request) -> Show:
    key = request.match_info["show"]
    if key.isdigit() and len(key) == 6:
        return await show_for_code(services(request), request.remote or "unknown", key)
    try:
        show = await services(request).shows.get(key)
    except ShowNotFound:
        raise ApiError(404, "show_not_found", "no such show") from None
    if show.state is ShowState.ENDED:
        raise ApiError(404, "show_not_found", "this show has ended")
    return show


@routes.options("/whep/{show}")
async def whep_options(request: web.Request) -> web.StreamResponse:
    """CORS pre-flight, and the ICE servers a player may use."""
    return with_links(web.Response(status=204, headers=CORS), request)


@routes.post("/whep/{show}")
async def whep_watch(request: web.Request) -> web.StreamResponse:
    """Start watching: the player's offer in, the answer out (201) with the session's Location."""
    show = await _show(request)
    offer = await sdp_body(request, SDP)
    remote = request.remote or "unknown"
    connecting = [
        s
        for s in services(request).whep_sessions.values()
        if s.remote == remote and s.pc.connectionState != "connected"
    ]
    if len(connecting) >= PENDING_PER_ADDRESS:
        raise ApiError(
            429,
            "rate_limited",
            f"at most {PENDING_PER_ADDRESS} players of one address may be connecting at once",
            {"Retry-After": "10"},
        )
    stage = services(request).stage
    await services(request).cascade.ensure(show.id)  # pulled from its origin if on another node
    viewer = await stage.watch(show.id, offer)
    log.info("whep.watch", show=show.id)

    async def end() -> None:
        await stage.leave(viewer)

    sessions = services(request).whep_sessions
    return open_session(request, sessions, "whep", viewer.pc, viewer.answer_sdp, end)


@routes.delete("/whep/session/{token}")
async def whep_stop(request: web.Request) -> web.Response:
    """Stop watching."""
    session = find_session(request, services(request).whep_sessions)
    services(request).whep_sessions.pop(session.token, None)
    await session.end()
    return web.Response(status=200, headers=CORS)


@routes.options("/whep/session/{token}")
async def whep_session_options(request: web.Request) -> web.StreamResponse:
    """CORS pre-flight for the session resource."""
    return web.Response(status=204, headers={**CORS, "Accept-Patch": TRICKLE})


@routes.patch("/whep/session/{token}")
async def whep_trickle(request: web.Request) -> web.Response:
    """Trickled ICE candidates; ICE restarts are refused with 422."""
    session = find_session(request, services(request).whep_sessions)
    await apply_trickle(request, session.pc, session.etag, session.ice_ufrag)
    return web.Response(status=204, headers=CORS)


@routes.route("*", "/whep/{show}")
async def whep_other(request: web.Request) -> web.Response:
    """Anything but OPTIONS and POST on a show's endpoint."""
    raise ApiError(405, "method_not_allowed", "use POST to watch", {"Allow": "OPTIONS, POST"})
