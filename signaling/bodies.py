"""Request bodies from strangers: read whole (an offer may come in several TCP segments), bounded
in size and in time (a body sent half-way never holds a handler for long)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from signaling.errors import ApiError

BODY_TIMEOUT = 10.0  # seconds for the whole body once the headers are in


async def read_body(request: web.Request, limit: int, timeout: float | None = None) -> bytes:
    """The whole body, at most ``limit`` bytes (413 beyond), within ``timeout`` seconds
    (:data:`BODY_TIMEOUT` unless given; 408 after)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "payload_too_large", f"at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT if timeout is None else timeout):
            while True:
                chunk = await request.content.read(limit + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "payload_too_large", f"at most {limit} bytes")
    except TimeoutError:
        raise ApiError(408, "request_timeout", "the body did not arrive in time") from None
    return b"".join(chunks)
