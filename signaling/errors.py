"""One JSON shape for every HTTP error: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from media.stage import InvalidSdp, NotLive, StageError, UnsupportedMedia
from rooms.bus import BusUnavailable
from rooms.errors import (
    CodeSpaceExhausted,
    Forbidden,
    InvalidInput,
    RateLimited,
    RoomsError,
    ShowCancelled,
    ShowNotFound,
)
from rooms.images import UnsupportedImage
from rooms.lobbies import LobbyFull, LobbyNotFound
from rooms.organisers import OrganiserNotFound
from rooms.screens import PairingNotFound, ScreenNotFound, StaffKeyInvalid, StaffKeyNotFound
from rooms.shows import ShowIsLive
from signaling.services import SERVICES

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The one mapping of domain and media errors to the wire: an HTTP status and a stable code. Looked
# up along each error's class hierarchy, so a subclass gets its own entry or its nearest parent's.
_STATUS: dict[type[Exception], int] = {
    InvalidInput: 400,
    Forbidden: 403,
    StaffKeyInvalid: 403,
    ShowNotFound: 404,
    ShowCancelled: 410,
    LobbyNotFound: 404,
    ScreenNotFound: 404,
    StaffKeyNotFound: 404,
    PairingNotFound: 404,
    OrganiserNotFound: 404,
    LobbyFull: 409,
    ShowIsLive: 409,
    UnsupportedImage: 415,
    RateLimited: 429,
    CodeSpaceExhausted: 503,
    StageError: 400,
    UnsupportedMedia: 406,
    NotLive: 503,
}
_MEDIA_CODES: dict[type[StageError], str] = {
    StageError: "media_error",
    InvalidSdp: "invalid_sdp",
    UnsupportedMedia: "unsupported_codec",
    NotLive: "not_live",
}


@dataclass(frozen=True, slots=True)
class Failure:
    """How an error is told to a client: status (HTTP), code, message, extra headers."""

    status: int
    code: str
    message: str
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def failure(exc: Exception) -> Failure | None:
    """The wire form of a domain, media or bus error; None for anything else (a bug)."""
    if isinstance(exc, ApiError):
        return Failure(exc.status, exc.code, exc.message, headers=exc.headers)
    if isinstance(exc, BusUnavailable):
        return Failure(
            503,
            "bus_unavailable",
            "the service is briefly unavailable; try again soon",
            retry_after=5.0,
            headers={"Retry-After": "5"},
        )
    if not isinstance(exc, RoomsError | StageError):
        return None
    status = next((_STATUS[k] for k in type(exc).__mro__ if k in _STATUS), 400)
    if isinstance(exc, StageError):
        code = next(_MEDIA_CODES[k] for k in type(exc).__mro__ if k in _MEDIA_CODES)
        message = "the show is not live right now" if isinstance(exc, NotLive) else str(exc)
        headers = {"Retry-After": "5"} if isinstance(exc, NotLive) else {}
        return Failure(status, code, message, headers=headers)
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
        return Failure(429, exc.code, str(exc), exc.retry_after, headers)
    return Failure(status, exc.code, str(exc))


_HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error an endpoint raises on purpose, with its status and stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The JSON error response."""
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def _route_name(request: web.Request) -> str:
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the JSON error shape and count every answer."""
    started = time.perf_counter()
    route = _route_name(request)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except (ApiError, RoomsError, StageError, BusUnavailable) as exc:
        told = failure(exc)
        assert told is not None
        status = told.status
        if isinstance(exc, BusUnavailable):
            log.warning("http.bus_unavailable", route=route)
        return error_response(told.status, told.code, told.message, told.headers)
    except web.HTTPException as exc:
        status = exc.status
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in {"Allow", "Retry-After"}}
        return error_response(
            exc.status, _HTTP_CODES.get(exc.status, "http_error"), exc.reason, headers
        )
    except Exception:
        log.exception("http.unhandled", route=route)
        return error_response(500, "internal_error", "something went wrong on our side")
    finally:
        metrics = request.app[SERVICES].metrics
        metrics.http_requests.labels(route=route, status=str(status)).inc()
        metrics.http_seconds.labels(route=route).observe(time.perf_counter() - started)
