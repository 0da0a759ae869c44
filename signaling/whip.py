"""WHIP (RFC 9725): OBS and other encoders publish to a show with its stream key.

One endpoint for every show, ``POST /whip`` with ``Authorization: Bearer <stream key>``: the key
picks the show, so a performer pastes the same URL for every show and only the key changes. The
session resource (``/whip/session/{token}``) ends the publish with DELETE and takes trickled
candidates with PATCH (trickle ICE is supported; ICE restarts are not: 422, as the RFC says).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from aiortc import RTCPeerConnection
from aiortc import sdp as aiortc_sdp

from media.stage import MAX_SDP_BYTES
from rooms.errors import ShowNotFound
from signaling.bodies import read_body
from signaling.errors import ApiError
from signaling.guard import bearer_token, secret_right
from signaling.iceservers import client_ice_servers
from signaling.live import follow_publication
from signaling.services import services

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "OPTIONS, POST, PATCH, DELETE",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Patch",
}


@dataclass(eq=False)
class HttpSession:
    """A WHIP publish or a WHEP watch, addressed by an unguessable token."""

    token: str
    pc: RTCPeerConnection
    etag: str
    ice_ufrag: str
    end: Callable[[], Awaitable[None]]
    remote: str = ""  # the client's address (WHEP caps its offers not yet connected)


def open_session(
    request: web.Request,
    sessions: dict[str, HttpSession],
    kind: str,
    pc: RTCPeerConnection,
    answer_sdp: str,
    end: Callable[[], Awaitable[None]],
) -> web.StreamResponse:
    """Register a session and answer 201 with its Location, ETag and the SDP answer."""
    token = secrets.token_urlsafe(24)
    etag = f'"{secrets.token_hex(8)}"'
    remote = request.remote or "unknown"
    session = HttpSession(token, pc, etag, ice_ufrag(answer_sdp), end, remote)
    sessions[token] = session

    @pc.on("connectionstatechange")
    async def forget() -> None:
        if pc.connectionState in ("closed", "failed"):
            sessions.pop(token, None)

    response = web.Response(
        status=201,
        body=answer_sdp.encode(),
        headers={
            **CORS,
            "Content-Type": SDP,
            "Location": f"/{kind}/session/{token}",
            "ETag": session.etag,
            "Accept-Patch": TRICKLE,
        },
    )
    return with_links(response, request)


def find_session(request: web.Request, sessions: dict[str, HttpSession]) -> HttpSession:
    """The session named in the path, or 404."""
    session = sessions.get(request.match_info["token"])
    if session is None:
        raise ApiError(404, "not_found", "no such session (it may have ended)")
    return session


def ice_server_links(request: web.Request) -> list[str]:
    """``Link: <url>; rel="ice-server"`` values, with TURN credentials when configured."""
    site = services(request).site
    links = []
    for server in client_ice_servers(site.ice_servers, site.turn_secret):
        for url in server["urls"]:
            link = f'<{url}>; rel="ice-server"'
            if "username" in server:
                link += (
                    f'; username="{server["username"]}"; credential="{server["credential"]}"; '
                    'credential-type="password"'
                )
            links.append(link)
    return links


def with_links(response: web.StreamResponse, request: web.Request) -> web.StreamResponse:
    for link in ice_server_links(request):
        response.headers.add("Link", link)
    return response


async def sdp_body(request: web.Request, content_type: str) -> str:
    if request.content_type != content_type:
        raise ApiError(415, "unsupported_media_type", f"send the body as {content_type}")
    body = await read_body(request, MAX_SDP_BYTES)
    try:
        return body.decode()
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_sdp", "the body is not text") from exc


@routes.options("/whip")
async def whip_options(request: web.Request) -> web.StreamResponse:
    """CORS pre-flight, and the ICE servers a client may use."""
    return with_links(web.Response(status=204, headers=CORS), request)


@routes.post("/whip")
async def whip_publish(request: web.Request) -> web.StreamResponse:
    """Start publishing: SDP offer in, SDP answer out (201) with the session's Location."""
    refused = "this stream key is not valid"
    key = bearer_token(request, "the show's stream key", "lampio-whip", refused)
    try:
        show = await services(request).shows.by_stream_key(key)
    except ShowNotFound:
        raise ApiError(403, "forbidden", refused) from None
    await secret_right(request)
    offer = await sdp_body(request, SDP)
    svc = services(request)
    publication = await svc.stage.publish(show.id, offer, follow_publication(svc))
    pc = publication.pc
    assert pc is not None  # a WHIP publication always has its peer connection
    log.info("whip.publish", show=show.id, codecs=publication.codecs)

    async def end() -> None:
        await svc.stage.unpublish(publication)

    return open_session(request, svc.whip_sessions, "whip", pc, publication.answer_sdp, end)


def ice_ufrag(sdp_text: str) -> str:
    parsed = aiortc_sdp.SessionDescription.parse(sdp_text)
    for media in parsed.media:
        if media.ice and media.ice.usernameFragment:
            return str(media.ice.usernameFragment)
    return ""


@routes.delete("/whip/session/{token}")
async def whip_stop(request: web.Request) -> web.Response:
    """End the publish; the show pauses."""
    session = find_session(request, services(request).whip_sessions)
    services(request).whip_sessions.pop(session.token, None)
    await session.end()
    return web.Response(status=200, headers=CORS)


@routes.options("/whip/session/{token}")
async def whip_session_options(request: web.Request) -> web.StreamResponse:
    """CORS pre-flight for the session resource."""
    return web.Response(status=204, headers={**CORS, "Accept-Patch": TRICKLE})


@routes.patch("/whip/session/{token}")
async def whip_trickle(request: web.Request) -> web.Response:
    """Trickled ICE candidates (RFC 8840 SDP fragment); ICE restarts are refused with 422."""
    session = find_session(request, services(request).whip_sessions)
    await apply_trickle(request, session.pc, session.etag, session.ice_ufrag)
    return web.Response(status=204, headers=CORS)


async def apply_trickle(
    request: web.Request, pc: RTCPeerConnection, etag: str, ice_ufrag: str
) -> None:
    """Add the candidates of a trickle PATCH to ``pc`` (WHIP and WHEP sessions alike)."""
    if_match = request.headers.get("If-Match")
    # as bytes: a header that is not ASCII (compare_digest refuses such text) is simply stale
    given = None if if_match is None else if_match.encode("utf-8", "surrogateescape")
    if given is not None and given != b"*" and not hmac.compare_digest(given, etag.encode()):
        raise ApiError(412, "precondition_failed", "the session's ETag does not match")
    fragment = await sdp_body(request, TRICKLE)
    ufrags = [line.split(":", 1)[1].strip() for line in _lines(fragment, "a=ice-ufrag:")]
    if if_match == "*" or any(u != ice_ufrag for u in ufrags):
        raise ApiError(422, "ice_restart_unsupported", "ICE restarts are not supported")
    mid = next((line.split(":", 1)[1].strip() for line in _lines(fragment, "a=mid:")), None)
    for line in _lines(fragment, "a=candidate:"):
        try:
            candidate = aiortc_sdp.candidate_from_sdp(line[len("a=") :].split(":", 1)[1])
        except (ValueError, IndexError, AssertionError) as exc:  # aiortc asserts on some
            raise ApiError(400, "invalid_sdp", f"bad candidate line: {line[:80]}") from exc
        if not 0 < candidate.port < 65536 or candidate.protocol.lower() not in ("udp", "tcp"):
            raise ApiError(400, "invalid_sdp", f"bad candidate line: {line[:80]}")
        candidate.sdpMid = mid
        candidate.sdpMLineIndex = None if mid is not None else 0
        await pc.addIceCandidate(candidate)
    if any(line.strip() == "a=end-of-candidates" for line in fragment.splitlines()):
        await pc.addIceCandidate(None)


def _lines(text: str, prefix: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(prefix)]


@routes.route("*", "/whip")
async def whip_other(request: web.Request) -> web.Response:
    """Anything but OPTIONS and POST on the endpoint."""
    raise ApiError(405, "method_not_allowed", "use POST to publish", {"Allow": "OPTIONS, POST"})
