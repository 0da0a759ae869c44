"""Finding a show by its audience code and a lobby by its friends' code, each with its own
per-address limit on wrong codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from rooms.codes import digits_of
from rooms.errors import InvalidInput, RateLimited, ShowCancelled, ShowNotFound
from rooms.lobbies import Lobby, LobbyNotFound
from rooms.shows import Show, ShowState
from rooms.tickets import Ticket, normalise_ticket

if TYPE_CHECKING:
    from signaling.services import Services

log = structlog.get_logger(__name__)


async def show_for_code(services: Services, address: str, code: str) -> Show:
    """The open show with ``code`` (a show's six digits or a ticket's sixteen); wrong or
    malformed codes count against ``address``."""
    return (await admission(services, address, code))[0]


async def _by_ticket(services: Services, code: str) -> tuple[Show, Ticket]:
    ticket = await services.tickets.find(code)
    if ticket is None:
        raise ShowNotFound("no show has this code")
    show = await services.shows.get(ticket.show)
    if show.state is ShowState.ENDED:
        if show.cancelled:
            raise ShowCancelled("this show was cancelled")
        raise ShowNotFound("this show has ended")
    return show, ticket


async def admission(services: Services, address: str, code: str) -> tuple[Show, Ticket | None]:
    """The open show ``code`` leads to, and the ticket if it is a ticket's code; wrong or
    malformed codes count against ``address``.

    Every entry point (HTTP and WebSocket) goes through here, so they share one limit.
    """
    limiter = services.limiters.code
    metrics = services.metrics
    ticket_code = normalise_ticket(digits_of(code))
    ticket = None
    try:
        async with limiter.trying(address) as attempt:
            try:
                if ticket_code is not None:
                    show, ticket = await _by_ticket(services, ticket_code)
                else:
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
    return show, ticket


async def lobby_for_code(services: Services, address: str, show_id: str, code: str) -> Lobby:
    """The show's lobby with the friends' ``code``; wrong codes count against ``address`` in a
    bucket of their own (a mistyped friends' code does not lock the address out of shows)."""
    limiter = services.limiters.lobby_code
    async with limiter.trying(address) as attempt:
        try:
            lobby = await services.lobbies.by_code(show_id, code)
        except LobbyNotFound:
            if await attempt.wrong() == limiter.limit:
                log.info("lobby_code.limit_reached")
            raise
        await attempt.right()
    return lobby
