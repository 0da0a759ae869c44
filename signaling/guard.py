"""Guessing secrets over HTTP is rate-limited: organiser keys, performer tokens, stream keys.

Every request that carries ``Authorization`` and is refused with 403 (a wrong secret) counts against
the client's address on the bus, in the bucket of that kind of secret; past :data:`FAILURES_ALLOWED`
in :data:`WINDOW` seconds, requests for that kind of secret from that address answer 429 until the
window ends. Kinds are counted apart: a care home's or a city office's shared address that mistypes
stream keys can still use the organiser key. Requests without the header, and right secrets, are
never slowed down. A handler that finds the secret right calls :func:`secret_right` before acting
on it, so that a burst of guesses is answered no further than the limit (``FailureLimiter``).
"""

from __future__ import annotations

from aiohttp import web

from rooms.ratelimit import Attempt, FailureLimiter
from signaling.errors import ApiError, Handler
from signaling.services import SERVICES

FAILURES_ALLOWED = 10
WINDOW = 15 * 60.0


# Where a secret other than the organiser key is checked (the route's pattern).
STREAM_KEY_ROUTES = frozenset({"/whip"})
SHOW_TOKEN_ROUTES = frozenset({"/api/shows/{show_id}", "/api/shows/{show_id}/stream-key"})


ATTEMPT: web.RequestKey[Attempt] = web.RequestKey("secret_attempt", Attempt)


async def secret_right(request: web.Request) -> None:
    """The request's secret is right: refused (429) if its address used up its wrong secrets of
    this kind meanwhile; call it before acting on the secret."""
    attempt = request.get(ATTEMPT)
    if attempt is not None:
        await attempt.right()


def secret_limiter(request: web.Request) -> FailureLimiter:
    """The bucket of the kind of secret this request carries (by its route)."""
    limiters = request.app[SERVICES].limiters
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else ""
    if route in STREAM_KEY_ROUTES:
        return limiters.stream_key
    if route in SHOW_TOKEN_ROUTES:
        return limiters.show_token
    return limiters.organiser_key


def bearer_token(request: web.Request, what: str, realm: str, refused: str) -> str:
    """The secret of ``Authorization: Bearer <secret>``: 401 naming ``what`` when there is none,
    403 (``refused``) when it is not text. Header bytes that are not UTF-8 reach the handler as
    lone surrogates, which no secret of ours holds and nothing can encode to compare."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthorized",
            f"send {what} as 'Authorization: Bearer <key>'",
            {"WWW-Authenticate": f'Bearer realm="{realm}"'},
        )
    try:
        token.encode()
    except UnicodeEncodeError:
        raise ApiError(403, "forbidden", refused) from None
    return token


@web.middleware
async def secret_guesses(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse clients that keep sending wrong secrets (sits inside the error middleware)."""
    if "Authorization" not in request.headers:
        return await handler(request)
    limiter = secret_limiter(request)
    subject = request.remote or "unknown"
    async with limiter.trying(subject) as attempt:
        request[ATTEMPT] = attempt
        try:
            response = await handler(request)
        except ApiError as exc:
            if exc.status == 403:
                await attempt.wrong()  # beyond the limit: 429 instead
            raise
        if response.status == 403:
            await attempt.wrong()
        return response
