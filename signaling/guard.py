"""Guessing secrets over HTTP is rate-limited: organiser keys, performer tokens, stream keys.

Every request that carries ``Authorization`` and is refused with 403 (a wrong secret) counts against
the client's address on the bus; past :data:`FAILURES_ALLOWED` in :data:`WINDOW` seconds, every
request with ``Authorization`` from that address answers 429 until the window ends. Requests without
the header, and right secrets, are never slowed down.
"""

from __future__ import annotations

from aiohttp import web

from signaling.errors import ApiError, Handler
from signaling.services import SERVICES

FAILURES_ALLOWED = 10
WINDOW = 15 * 60.0


@web.middleware
async def secret_guesses(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse clients that keep sending wrong secrets (sits inside the error middleware)."""
    if "Authorization" not in request.headers:
        return await handler(request)
    limiter = request.app[SERVICES].limiters.secret
    subject = request.remote or "unknown"
    async with limiter.trying(subject):
        try:
            response = await handler(request)
        except ApiError as exc:
            if exc.status == 403:
                await limiter.failed(subject)
            raise
        if response.status == 403:
            await limiter.failed(subject)
        return response
