"""Finding a show by its audience code, with the per-address limit on wrong codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from rooms.errors import InvalidInput, RateLimited, ShowNotFound
from rooms.shows import Show

if TYPE_CHECKING:
    from signaling.services import Services

log = structlog.get_logger(__name__)


async def show_for_code(services: Services, address: str, code: str) -> Show:
    """The open show with ``code``; wrong or malformed codes count against ``address``.

    Every entry point (HTTP and WebSocket) goes through here, so they share one limit.
    """
    limiter = services.limiters.code
    metrics = services.metrics
    try:
        async with limiter.trying(address) as attempt:
            try:
                show = await services.shows.by_code(code)
            except (ShowNotFound, InvalidInput):
                if await attempt.wrong() == limiter.limit:
                    log.info("code.limit_reached")
                metrics.code_lookups.labels(result="not_found").inc()
                raise
            await attempt.right()
    except RateLimited:
        metrics.code_lookups.labels(result="rate_limited").inc()
        raise
    metrics.code_lookups.labels(result="found").inc()
    return show
