"""The show API: organisers create shows; anyone reads the programme and finds a show by code."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hmac
import io
from typing import Any

import segno
import structlog
from aiohttp import web

from rooms import images
from rooms.errors import InvalidInput, ShowNotFound
from rooms.organisers import CITY_MAX, Actor, Organiser
from rooms.reactions import KINDS as REACTION_KINDS
from rooms.shows import QUERY_MAX, Show, ShowState, parse_starts_at
from rooms.tickets import format_ticket
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


async def require_organiser(request: web.Request) -> Actor:
    """Who ``Authorization: Bearer <key>`` is: the admin (``--admin-key``), the node's own
    organiser (``--organiser-key``) or an organiser the admin created; 401 when absent, 403
    when no one's."""
    actor = await _actor(request, bearer_token(request, "the organiser key", "lampio", REFUSED))
    if actor is None:
        raise ApiError(403, "forbidden", REFUSED)
    await secret_right(request)
    return actor


REFUSED = "this organiser key is not valid"


async def _actor(request: web.Request, token: str) -> Actor | None:
    the = services(request)
    key = token.encode()
    if the.site.admin_key is not None and hmac.compare_digest(key, the.site.admin_key.encode()):
        return Actor(None)
    if hmac.compare_digest(key, the.site.organiser_key.encode()):
        return Actor(the.organisers.default)
    organiser = await the.organisers.by_key(token)
    return None if organiser is None else Actor(organiser)


async def require_admin(request: web.Request) -> None:
    """Only the admin: 403 for an organiser's key too (and when no admin key is set)."""
    actor = await require_organiser(request)
    if not actor.admin:
        raise ApiError(403, "forbidden", "only the admin key may do this")


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
    """Create a show (organisers only; the admin names the organiser, else the node's own)."""
    actor = await require_organiser(request)
    body = await read_json_object(request)
    the = services(request)
    organiser: Organiser | None = actor.organiser
    if "organiser" in body:
        wanted = body.pop("organiser")
        if not isinstance(wanted, str) or (not actor.admin and actor.organiser_id != wanted):
            raise InvalidInput("organiser: only the admin names the organiser of a show")
        organiser = await the.organisers.get(wanted)
    if organiser is None:
        organiser = the.organisers.default
    assert organiser is not None
    the.recordings.check(body)
    show = await the.shows.create(
        body.pop("title", None),
        body.pop("description", ""),
        body.pop("starts_at", None),
        body.pop("performer", ""),
        organiser=organiser.id,
        city=organiser.city,
        **body,
    )
    the.metrics.shows_created.inc()
    log.info("show.created", show=show.id, organiser=organiser.id)
    return web.json_response(
        private_view(request, show),
        status=201,
        headers={"Location": f"/api/shows/{show.id}", "Cache-Control": "no-store"},
    )


def programme_filters(request: web.Request, *, ended: bool = False) -> dict[str, Any]:
    """The programme's query: ``city``, ``category``, ``from``/``to`` (ISO 8601 times with a
    zone: shows starting from ``from``, before ``to``) and ``q`` (words in the title, the
    description, the performer or the city); with ``ended``, also ``ended`` (the organiser's
    ended shows instead)."""
    query = request.query
    unknown = set(query) - {"city", "category", "from", "to", "q", *(["ended"] if ended else [])}
    if unknown:
        raise InvalidInput(f"unknown parameters: {', '.join(sorted(unknown))}")
    filters: dict[str, Any] = {}
    if "city" in query:
        if not 0 < len(query["city"].strip()) <= CITY_MAX:
            raise InvalidInput(f"city must be 1–{CITY_MAX} characters")
        filters["city"] = " ".join(query["city"].split())
    if "category" in query:
        categories = services(request).shows.categories
        if query["category"] not in categories:
            raise InvalidInput(f"category must be one of: {', '.join(categories)}")
        filters["category"] = query["category"]
    for name, key in (("from", "after"), ("to", "before")):
        if name in query:
            try:
                filters[key] = parse_starts_at(query[name])
            except InvalidInput as exc:
                raise InvalidInput(f"{name}: {exc}") from None
    if "ended" in query:
        if query["ended"] not in ("true", "false"):
            raise InvalidInput("ended must be true or false")
        if query["ended"] == "true" and "Authorization" not in request.headers:
            raise InvalidInput("ended shows are for their organiser (send the organiser key)")
        filters["ended"] = query["ended"] == "true"
    if "q" in query:
        if len(query["q"]) > QUERY_MAX:
            raise InvalidInput(f"q must be at most {QUERY_MAX} characters")
        filters["query"] = query["q"]
    return filters


@routes.get("/api/shows")
async def programme(request: web.Request) -> web.Response:
    """The public programme: listed shows that have not ended, without secrets. With an
    organiser's key: its own shows, unlisted too, with their secrets and links (the admin:
    every organiser's), for the organiser's page; ``ended=true``: its ended ones instead (their
    figures)."""
    filters = programme_filters(request, ended=True)
    ended = filters.pop("ended", False)
    shows = services(request).shows
    if "Authorization" in request.headers:
        actor = await require_organiser(request)
        found = await shows.programme(
            listed_only=False, organiser=actor.organiser_id, ended=ended, **filters
        )
        views = [private_view(request, s) for s in found]
        return web.json_response({"shows": views}, headers={"Cache-Control": "no-store"})
    found = await shows.programme(**filters)
    return web.json_response({"shows": [s.public() for s in found]})


@routes.get("/api/categories")
async def categories(request: web.Request) -> web.Response:
    """The categories a show may have."""
    return web.json_response({"categories": list(services(request).shows.categories)})


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
    """The show in the path, for its performer (performer token), its organiser or the admin."""
    refused = "this token is not valid for this show"
    what = "the performer token or organiser key"
    token = bearer_token(request, what, "lampio", refused)
    try:
        show = await services(request).shows.get(request.match_info["show_id"])
    except ShowNotFound:
        show = None
    actor = await _actor(request, token)
    performer = show is not None and hmac.compare_digest(
        token.encode(), show.performer_token.encode()
    )
    if actor is None and not performer:
        # The same answer for a wrong token and an unknown show: ids cannot be probed.
        raise ApiError(403, "forbidden", refused)
    await secret_right(request)
    if show is None or not (performer or (actor is not None and actor.may_manage(show.organiser))):
        raise ShowNotFound("no such show")  # another organiser's show is none of this one's
    return show


async def organisers_show(request: web.Request) -> tuple[Actor, Show]:
    """The show in the path, for its organiser or the admin only (not its performer)."""
    actor = await require_organiser(request)
    show = await services(request).shows.get(request.match_info["show_id"])
    if not actor.may_manage(show.organiser):
        raise ShowNotFound("no such show")
    return actor, show


@routes.get("/api/shows/{show_id}")
async def show_detail(request: web.Request) -> web.Response:
    """One show with its secrets, for its performer (performer token) or an organiser (key)."""
    show = await authorised_show(request)
    return web.json_response(private_view(request, show), headers={"Cache-Control": "no-store"})


@routes.patch("/api/shows/{show_id}")
async def edit_show(request: web.Request) -> web.Response:
    """Change a show's title, description, time, performer, category, language, listing or
    access; everyone who joined it hears of it at once (``show.updated``)."""
    _, show = await organisers_show(request)
    body = await read_json_object(request)
    services(request).recordings.check(body)
    show, changed = await services(request).shows.edit(show.id, body)
    log.info("show.edited", show=show.id, changed=sorted(changed))
    return web.json_response(private_view(request, show), headers={"Cache-Control": "no-store"})


@routes.post("/api/shows/{show_id}/cancel")
async def cancel_show(request: web.Request) -> web.Response:
    """Call the show off: it ends, marked cancelled; its code stops working; everyone who
    joined it is told (a live show is ended from the studio instead: 409)."""
    _, show = await organisers_show(request)
    show = await services(request).shows.cancel(show.id)
    log.info("show.cancelled", show=show.id)
    await services(request).insight.aggregate(show.id)
    return web.json_response(private_view(request, show), headers={"Cache-Control": "no-store"})


def _cell(text: str) -> str:
    """Text a spreadsheet shows as text: one starting as a formula would run as one."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
IMAGE_BODY_TIMEOUT = 60.0  # seconds: 8 MiB from an office's uplink


@routes.put("/api/shows/{show_id}/image")
async def put_image(request: web.Request) -> web.Response:
    """The show's picture for the programme (its organiser or the admin): JPEG, PNG or WebP,
    at most 8 MiB; made to fit 1280×720 and saved as a JPEG without metadata."""
    _, show = await organisers_show(request)
    if request.content_type not in IMAGE_TYPES:
        raise ApiError(415, "unsupported_media_type", "send image/jpeg, image/png or image/webp")
    data = await read_body(request, images.BYTES_MAX, IMAGE_BODY_TIMEOUT)
    picture = await asyncio.to_thread(images.prepare, data)
    show = await services(request).shows.set_image(show.id, picture)
    log.info("show.image", show=show.id, width=picture.width, height=picture.height)
    return web.json_response(private_view(request, show), headers={"Cache-Control": "no-store"})


@routes.delete("/api/shows/{show_id}/image")
async def delete_image(request: web.Request) -> web.Response:
    """Take the show's picture away (its organiser or the admin)."""
    _, show = await organisers_show(request)
    show = await services(request).shows.set_image(show.id, None)
    return web.json_response(private_view(request, show), headers={"Cache-Control": "no-store"})


@routes.get("/api/shows/{show_id}/image.jpg")
async def get_image(request: web.Request) -> web.Response:
    """The show's picture (public, like the programme); its URL names its version, so it may
    be kept a long time."""
    found = await services(request).shows.image(request.match_info["show_id"])
    if found is None:
        raise ApiError(404, "not_found", "this show has no picture")
    jpeg, version = found
    etag = f'"{version}"'
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=jpeg, content_type="image/jpeg", headers=headers)


@routes.get("/api/shows/{show_id}/insight")
async def show_insight(request: web.Request) -> web.Response:
    """What the show's organiser learns: attendance over time, reactions, chat volume, lobby
    voice, feedback (its organiser or the admin). Counted, never quoted."""
    _, show = await organisers_show(request)
    report = await services(request).insight.report(show.id)
    return web.json_response(report, headers={"Cache-Control": "no-store"})


@routes.get("/api/shows/{show_id}/insight.csv")
async def show_insight_csv(request: web.Request) -> web.Response:
    """The same figures as CSV: the totals, then a row a minute, then the feedback."""
    _, show = await organisers_show(request)
    report = await services(request).insight.report(show.id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["figure", "value"])
    for name in (
        "peak_viewers", "average_viewers", "joins", "screens", "screen_heads", "lobbies",
        "median_minutes_watched",
    ):  # fmt: skip
        writer.writerow([name, report[name]])
    writer.writerow([])
    kinds = list(REACTION_KINDS)
    writer.writerow(["minute", "viewers", *kinds, "chat_messages", "voice"])
    for slot in report["timeline"]:
        reactions = slot["reactions"]
        writer.writerow(
            [slot["minute"], slot["viewers"], *(reactions.get(k, 0) for k in kinds),
             slot["chat_messages"], slot["voice"]]
        )  # fmt: skip
    writer.writerow([])
    writer.writerow(["score", "answers"])
    for score, n in report["feedback"].items():
        writer.writerow([score, n])
    writer.writerow([])
    writer.writerow(["comment"])
    for comment in report["comments"]:
        writer.writerow([_cell(comment)])
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": 'attachment; filename="yleiso.csv"',
        },
    )


@routes.post("/api/shows/{show_id}/tickets")
async def mint_tickets(request: web.Request) -> web.Response:
    """New tickets for the show (its organiser or the admin): ``{"count", "label"?,
    "head_count"?}``; the codes are shown this once, as JSON or (``Accept: text/csv``) as CSV
    for printing a sheet."""
    _, show = await organisers_show(request)
    if show.state is ShowState.ENDED:
        raise ShowNotFound("this show has ended")
    body = await read_json_object(request)
    unknown = set(body) - {"count", "label", "head_count"}
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    minted = await services(request).tickets.mint(
        show.id, body.get("count"), body.get("label"), body.get("head_count", 1)
    )
    log.info("tickets.minted", show=show.id, count=len(minted))
    rows = [
        {
            "code": code,
            "code_display": format_ticket(code),
            "label": ticket.label,
            "head_count": ticket.head_count,
        }
        for code, ticket in minted
    ]
    headers = {"Cache-Control": "no-store"}
    if "text/csv" in request.headers.get("Accept", ""):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["code", "show", "starts_at", "label", "head_count"])
        starts = "" if show.starts_at is None else show.starts_at.isoformat()
        for row in rows:
            writer.writerow(
                [
                    row["code_display"],
                    _cell(show.title),
                    starts,
                    _cell(str(row["label"])),
                    row["head_count"],
                ]
            )
        headers["Content-Disposition"] = 'attachment; filename="liput.csv"'
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            status=201,
            headers=headers,
        )
    return web.json_response({"show": show.id, "tickets": rows}, status=201, headers=headers)


@routes.post("/api/organisers")
async def create_organiser(request: web.Request) -> web.Response:
    """A new organiser and its key, shown this once (the admin only)."""
    await require_admin(request)
    body = await read_json_object(request)
    unknown = set(body) - {"name", "city"}
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    organiser, key = await services(request).organisers.create(body.get("name"), body.get("city"))
    log.info("organiser.created", organiser=organiser.id)
    return web.json_response(
        {**organiser.public(), "key": key},
        status=201,
        headers={"Location": f"/api/organisers/{organiser.id}", "Cache-Control": "no-store"},
    )


@routes.get("/api/organisers")
async def list_organisers(request: web.Request) -> web.Response:
    """Every organiser (the admin only); keys are never shown again."""
    await require_admin(request)
    listed = [o.public() for o in await services(request).organisers.all()]
    return web.json_response({"organisers": listed}, headers={"Cache-Control": "no-store"})


@routes.delete("/api/organisers/{organiser_id}")
async def revoke_organiser(request: web.Request) -> web.Response:
    """Revoke an organiser's key at once; its shows stay, for the admin (the admin only)."""
    await require_admin(request)
    organiser = await services(request).organisers.revoke(request.match_info["organiser_id"])
    log.info("organiser.revoked", organiser=organiser.id)
    return web.Response(status=204)


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
