"""One JSON shape for every HTTP error: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import structlog
from aiohttp import web

from rooms.bus import BusUnavailable
from rooms.errors import (
    CodeSpaceExhausted,
    InvalidInput,
    RateLimited,
    RoomsError,
    ShowNotFound,
)
from signaling.state import METRICS

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_DOMAIN_STATUS: dict[type[RoomsError], int] = {
    InvalidInput: 400,
    ShowNotFound: 404,
    RateLimited: 429,
    CodeSpaceExhausted: 503,
}

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
    except ApiError as exc:
        status = exc.status
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    except RateLimited as exc:
        status = 429
        return error_response(
            429, exc.code, str(exc), {"Retry-After": str(max(1, round(exc.retry_after)))}
        )
    except RoomsError as exc:
        status = _DOMAIN_STATUS.get(type(exc), 400)
        return error_response(status, exc.code, str(exc))
    except BusUnavailable:
        status = 503
        log.warning("http.bus_unavailable", route=route)
        return error_response(
            503,
            "bus_unavailable",
            "the service is briefly unavailable; try again soon",
            {"Retry-After": "5"},
        )
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
        metrics = request.app[METRICS]
        metrics.http_requests.labels(route=route, status=str(status)).inc()
        metrics.http_seconds.labels(route=route).observe(time.perf_counter() - started)
