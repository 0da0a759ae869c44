"""Finding a show by its audience code, with the per-address limit on wrong codes."""

from __future__ import annotations

import structlog
from aiohttp import web

from rooms.errors import InvalidInput, RateLimited, ShowNotFound
from rooms.shows import Show
from signaling.state import CODE_LIMITER, METRICS, SHOWS

log = structlog.get_logger(__name__)


async def show_for_code(app: web.Application, address: str, code: str) -> Show:
    """The open show with ``code``; wrong or malformed codes count against ``address``.

    Every entry point (HTTP and WebSocket) goes through here, so they share one limit.
    """
    limiter = app[CODE_LIMITER]
    metrics = app[METRICS]
    try:
        async with limiter.trying(address):
            try:
                show = await app[SHOWS].by_code(code)
            except (ShowNotFound, InvalidInput):
                metrics.code_lookups.labels(result="not_found").inc()
                if await limiter.failed(address) == limiter.limit:
                    log.info("code.limit_reached")
                raise
    except RateLimited:
        metrics.code_lookups.labels(result="rate_limited").inc()
        raise
    metrics.code_lookups.labels(result="found").inc()
    return show
