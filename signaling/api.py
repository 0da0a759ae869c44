"""The show API: organisers create shows; anyone reads the programme and finds a show by code."""

from __future__ import annotations

import dataclasses
import hmac
import io
from typing import Any

import segno
import structlog
from aiohttp import web

from rooms.errors import InvalidInput, ShowNotFound
from rooms.shows import Show, ShowState
from signaling import wirejson
from signaling.bodies import read_body
from signaling.errors import ApiError
from signaling.guard import bearer_token, secret_right
from signaling.lookup import show_for_code
from signaling.rtmp import rtmp_url
from signaling.services import services

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

MAX_JSON_BODY = 32 * 1024  # a show with a 2,000-character description, each character escaped


async def require_organiser(request: web.Request) -> None:
    """Check ``Authorization: Bearer <organiser key>``: 401 when absent, 403 when wrong."""
    refused = "this organiser key is not valid"
    token = bearer_token(request, "the organiser key", "lampio", refused)
    if not hmac.compare_digest(token.encode(), services(request).site.organiser_key.encode()):
        raise ApiError(403, "forbidden", refused)
    await secret_right(request)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or a precise 415/400."""
    if request.content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "send JSON with Content-Type: application/json"
        )
    try:
        body = wirejson.loads(await read_body(request, MAX_JSON_BODY))
    except wirejson.BadJson as exc:
        raise ApiError(400, "invalid_json", f"the body is refused: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def viewer_url(request: web.Request, show: Show) -> str:
    """The link that opens the show for a viewer (on posters, in QR codes)."""
    return f"{services(request).site.public_url}/watch?code={show.code}"


def show_links(request: web.Request, show: Show) -> dict[str, str | None]:
    """Where viewers and the performer go for this show."""
    base = services(request).site.public_url
    return {
        "viewer_url": viewer_url(request, show),
        "performer_url": f"{base}/studio#{show.id}.{show.performer_token}",
        "whip_url": f"{base}/whip",
        "rtmp_url": rtmp_url(services(request), base),
    }


def private_view(request: web.Request, show: Show) -> dict[str, Any]:
    """A show with its secrets and links, for its performer or an organiser only."""
    return {
        **show.public(),
        "performer_token": show.performer_token,
        "stream_key": show.stream_key,
        **show_links(request, show),
    }


@routes.post("/api/shows")
async def create_show(request: web.Request) -> web.Response:
    """Create a show (organisers only)."""
    await require_organiser(request)
    body = await read_json_object(request)
    unknown = set(body) - {"title", "description", "starts_at", "performer"}
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    show = await services(request).shows.create(
        body.get("title"), body.get("description", ""), body.get("starts_at"), body.get("performer")
    )
    services(request).metrics.shows_created.inc()
    log.info("show.created", show=show.id)
    return web.json_response(
        private_view(request, show),
        status=201,
        headers={"Location": f"/api/shows/{show.id}", "Cache-Control": "no-store"},
    )


@routes.get("/api/shows")
async def programme(request: web.Request) -> web.Response:
    """The public programme: shows that have not ended, without secrets (with the organiser key:
    with their secrets and links, for the organiser's page)."""
    organiser = "Authorization" in request.headers
    if organiser:
        await require_organiser(request)
    shows = await services(request).shows.programme()
    if organiser:
        views = [private_view(request, s) for s in shows]
        return web.json_response({"shows": views}, headers={"Cache-Control": "no-store"})
    return web.json_response({"shows": [s.public() for s in shows]})


@routes.get("/api/nodes")
async def nodes(request: web.Request) -> web.Response:
    """The deployment's live nodes, as the registry on the bus has them (organisers only)."""
    await require_organiser(request)
    the = services(request)
    listed = [
        {**dataclasses.asdict(node), "self": node.id == the.node_id}
        for node in await the.nodes.all()
    ]
    return web.json_response({"nodes": listed}, headers={"Cache-Control": "no-store"})


@routes.get("/api/shows/by-code/{code}")
async def show_by_code(request: web.Request) -> web.Response:
    """The public part of the show a code leads to; wrong codes are rate-limited per address."""
    show = await show_for_code(
        services(request), request.remote or "unknown", request.match_info["code"]
    )
    return web.json_response(show.public())


async def authorised_show(request: web.Request) -> Show:
    """The show in the path, for its performer (performer token) or an organiser (key)."""
    refused = "this token is not valid for this show"
    what = "the performer token or organiser key"
    token = bearer_token(request, what, "lampio", refused)
    try:
        show = await services(request).shows.get(request.match_info["show_id"])
    except ShowNotFound:
        show = None
    allowed = hmac.compare_digest(
        token.encode(), services(request).site.organiser_key.encode()
    ) or (show is not None and hmac.compare_digest(token.encode(), show.performer_token.encode()))
    if not allowed:
        # The same answer for a wrong token and an unknown show: ids cannot be probed.
        raise ApiError(403, "forbidden", refused)
    await secret_right(request)
    if show is None:
        raise ShowNotFound("no such show")
    return show


@routes.get("/api/shows/{show_id}")
async def show_detail(request: web.Request) -> web.Response:
    """One show with its secrets, for its performer (performer token) or an organiser (key)."""
    show = await authorised_show(request)
    return web.json_response(private_view(request, show), headers={"Cache-Control": "no-store"})


@routes.post("/api/shows/{show_id}/stream-key")
async def rotate_stream_key(request: web.Request) -> web.Response:
    """A new stream key (the old one stops working; a publish under way is not cut)."""
    show = await authorised_show(request)
    show = await services(request).shows.rotate_stream_key(show.id)
    log.info("show.stream_key_rotated", show=show.id)
    return web.json_response(private_view(request, show), headers={"Cache-Control": "no-store"})


@routes.get("/api/shows/{show_id}/qr.svg")
async def show_qr(request: web.Request) -> web.Response:
    """The show's viewer link as an SVG QR code (public: the code is on every poster anyway)."""
    show = await services(request).shows.get(request.match_info["show_id"])
    if show.state is ShowState.ENDED:
        raise ShowNotFound("this show has ended (its code may already lead to another show)")
    link = viewer_url(request, show)
    out = io.BytesIO()
    # error level M survives a smudged printout; a wide quiet zone helps old phone cameras
    segno.make_qr(link, error="m").save(out, kind="svg", scale=8, border=4, xmldecl=False)
    return web.Response(
        body=out.getvalue(),
        content_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=300"},
    )
