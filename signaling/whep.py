"""WHEP: any standard WebRTC player watches a show (draft-ietf-wish-whep).

``POST /whep/{show}`` takes the player's receive-only offer; ``{show}`` is the show's id or its
audience code (a code counts against the address's limit on wrong codes, like every code look-up).
The player counts as a viewer like any other. The session resource works as WHIP's does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import structlog
from aiohttp import web

from media.stage import InvalidSdp, NotLive, StageError, UnsupportedMedia, ViewerSession
from rooms.errors import ShowNotFound
from rooms.shows import Show, ShowState
from signaling.errors import ApiError
from signaling.lookup import show_for_code
from signaling.state import SHOWS, STAGE
from signaling.whip import CORS, SDP, TRICKLE, apply_trickle, ice_ufrag, sdp_body, with_links

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()


@dataclass(eq=False)
class WhepSession:
    """One player watching through WHEP."""

    token: str
    viewer: ViewerSession
    etag: str
    ice_ufrag: str


SESSIONS: web.AppKey[dict[str, WhepSession]] = web.AppKey("whep_sessions")


async def _show(request: web.Request) -> Show:
    key = request.match_info["show"]
    if key.isdigit() and len(key) == 6:
        return await show_for_code(request.app, request.remote or "unknown", key)
    try:
        show = await request.app[SHOWS].get(key)
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
    try:
        viewer = await request.app[STAGE].watch(show.id, offer)
    except NotLive as exc:
        raise ApiError(
            503, exc.code, "the show is not live right now", {"Retry-After": "5"}
        ) from exc
    except InvalidSdp as exc:
        raise ApiError(400, exc.code, str(exc)) from exc
    except UnsupportedMedia as exc:
        raise ApiError(406, exc.code, str(exc)) from exc
    except StageError as exc:
        raise ApiError(400, exc.code, str(exc)) from exc
    sessions = request.app[SESSIONS]
    token = secrets.token_urlsafe(24)
    session = WhepSession(token, viewer, f'"{secrets.token_hex(8)}"', ice_ufrag(viewer.answer_sdp))
    sessions[token] = session

    @viewer.pc.on("connectionstatechange")
    async def forget() -> None:
        if viewer.pc.connectionState in ("closed", "failed"):
            sessions.pop(token, None)

    log.info("whep.watch", show=show.id)
    response = web.Response(
        status=201,
        body=viewer.answer_sdp.encode(),
        headers={
            **CORS,
            "Content-Type": SDP,
            "Location": f"/whep/session/{token}",
            "ETag": session.etag,
            "Accept-Patch": TRICKLE,
        },
    )
    return with_links(response, request)


def _session(request: web.Request) -> WhepSession:
    session = request.app[SESSIONS].get(request.match_info["token"])
    if session is None:
        raise ApiError(404, "not_found", "no such WHEP session (it may have ended)")
    return session


@routes.delete("/whep/session/{token}")
async def whep_stop(request: web.Request) -> web.Response:
    """Stop watching."""
    session = _session(request)
    request.app[SESSIONS].pop(session.token, None)
    await request.app[STAGE].leave(session.viewer)
    return web.Response(status=200, headers=CORS)


@routes.options("/whep/session/{token}")
async def whep_session_options(request: web.Request) -> web.StreamResponse:
    """CORS pre-flight for the session resource."""
    return web.Response(status=204, headers={**CORS, "Accept-Patch": TRICKLE})


@routes.patch("/whep/session/{token}")
async def whep_trickle(request: web.Request) -> web.Response:
    """Trickled ICE candidates; ICE restarts are refused with 422."""
    session = _session(request)
    await apply_trickle(request, session.viewer.pc, session.etag, session.ice_ufrag)
    return web.Response(status=204, headers=CORS)


@routes.route("*", "/whep/{show}")
async def whep_other(request: web.Request) -> web.Response:
    """Anything but OPTIONS and POST on a show's endpoint."""
    raise ApiError(405, "method_not_allowed", "use POST to watch", {"Allow": "OPTIONS, POST"})
