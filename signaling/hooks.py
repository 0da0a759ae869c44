"""A shop or payment provider mints tickets through a signed webhook: it signs each request with
the organiser's hook secret (HMAC-SHA256 over the raw body), names it with an id of its own and
the time, and gets the codes back to hand to its customer. No card data, no customer data: the
body carries the show, how many tickets and for whom (a label), nothing else.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

import structlog
from aiohttp import web

from rooms.errors import InvalidInput, ShowNotFound
from rooms.shows import ShowState
from rooms.tickets import format_ticket
from signaling import wirejson
from signaling.api import require_organiser
from signaling.bodies import read_body
from signaling.errors import ApiError
from signaling.services import services

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

MAX_BODY = 4 * 1024
CLOCK_SKEW = 300.0  # seconds a request's timestamp may be off the node's clock
ID_MAX = 100
SEEN_TTL = 2 * CLOCK_SKEW + 60  # an id is remembered past any timestamp that would still pass
FIELDS = frozenset({"organiser", "id", "timestamp", "show", "count", "label", "head_count"})


def _secret_key(organiser_id: str) -> str:
    return f"hooksecret:{organiser_id}"


@routes.post("/api/hook-secret")
async def new_hook_secret(request: web.Request) -> web.Response:
    """A new hook secret for the organiser (shown this once; the old one stops working)."""
    actor = await require_organiser(request)
    if actor.organiser is None:
        raise InvalidInput("the admin has no shop: use an organiser's key")
    secret = secrets.token_urlsafe(32)
    await services(request).bus.set(_secret_key(actor.organiser.id), {"secret": secret})
    log.info("hook.secret_issued", organiser=actor.organiser.id)
    return web.json_response(
        {"organiser": actor.organiser.id, "secret": secret},
        status=201,
        headers={"Cache-Control": "no-store"},
    )


def _signature(request: web.Request) -> str:
    scheme, _, value = request.headers.get("X-Signature", "").partition("=")
    if scheme != "sha256" or not value:
        raise ApiError(401, "bad_signature", "sign the body: X-Signature: sha256=<hex HMAC>")
    return value.strip().lower()


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidInput(f"{name} is required ({kind.__name__})")
    return value


@routes.post("/api/hooks/tickets")
async def ticket_hook(request: web.Request) -> web.Response:
    """Mint tickets for a signed request: 401 for a bad signature or a stale timestamp, 409 for
    an id seen before (a replay), then as ``POST /api/shows/{id}/tickets``."""
    the = services(request)
    limiter = the.limiters.organiser_key  # wrong signatures count as wrong organiser keys
    async with limiter.trying(request.remote or "unknown") as attempt:
        signature = _signature(request)
        raw = await read_body(request, MAX_BODY)
        try:
            body = wirejson.loads(raw)
        except wirejson.BadJson as exc:
            raise ApiError(400, "invalid_json", f"the body is refused: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "the body must be a JSON object")
        organiser_id = _field(body, "organiser", str)
        valid = re.fullmatch(r"[A-Za-z0-9_-]{1,64}", organiser_id) is not None
        stored = await the.bus.get(_secret_key(organiser_id)) if valid else None
        expected = (
            hmac.new(str(stored["secret"]).encode(), raw, hashlib.sha256).hexdigest()
            if stored is not None
            else ""
        )
        if not expected or not hmac.compare_digest(expected, signature):
            await attempt.wrong()
            raise ApiError(401, "bad_signature", "the signature does not match the body")
        await attempt.right()
    unknown = set(body) - FIELDS
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    hook_id = _field(body, "id", str)
    if not 0 < len(hook_id) <= ID_MAX:
        raise InvalidInput(f"id must be 1–{ID_MAX} characters")
    stamp = _field(body, "timestamp", int)
    if abs(time.time() - stamp) > CLOCK_SKEW:
        raise ApiError(401, "stale_timestamp", "timestamp (Unix seconds) is too far from now")
    show = await the.shows.get(_field(body, "show", str))
    if show.organiser != organiser_id or show.state is ShowState.ENDED:
        raise ShowNotFound("no such show")
    seen = f"hookid:{organiser_id}:{hashlib.sha256(hook_id.encode()).hexdigest()}"
    if not await the.bus.set(seen, {"at": stamp}, ttl=SEEN_TTL, only_new=True):
        raise ApiError(409, "replayed", "this request id was seen already")
    try:
        minted = await the.tickets.mint(
            show.id, body.get("count"), body.get("label"), body.get("head_count", 1)
        )
    except BaseException:
        await the.bus.delete(seen)  # refused: the shop may send it again, corrected
        raise
    log.info("hook.tickets_minted", show=show.id, organiser=organiser_id, count=len(minted))
    tickets = [
        {"code": code, "code_display": format_ticket(code), "label": t.label} for code, t in minted
    ]
    return web.json_response(
        {"id": hook_id, "show": show.id, "tickets": tickets},
        status=201,
        headers={"Cache-Control": "no-store"},
    )
