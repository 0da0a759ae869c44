"""The demo performer: a test pattern with a clock and a chime, published like any performer.

It connects to this node's own WebSocket with the Python client, so it takes exactly the path a
real performer's browser takes, and a newcomer sees a live show at once.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from clients.client import Performer, Session
from media.sources import TestPatternTrack, ToneTrack
from rooms.codes import format_code
from rooms.shows import Show, Shows

log = structlog.get_logger(__name__)

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


async def run_demo(shows: Shows, local_url: str, public_url: str) -> None:
    """Create the demo show and keep performing it until cancelled, reconnecting as needed."""
    show = await shows.create(
        "Lämpiö Live – esittely / demo",
        "Testikuva ja kello. Testbild och klocka. A test picture and a clock.",
    )
    link = f"{public_url}/watch?code={show.code}"
    print(f"Demo show is on: code {format_code(show.code)} — open {link}", flush=True)
    log.info("demo.created", show=show.id)
    attempt = 0
    while True:
        try:
            await _perform_until_closed(show, local_url)
            attempt = 0
        except (OSError, ConnectionError, TimeoutError) as exc:
            log.info("demo.retry", error=str(exc))
        delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
        attempt += 1
        await asyncio.sleep(delay)


async def _perform_until_closed(show: Show, local_url: str) -> None:
    session = await Session.connect(local_url)
    performer = Performer(session)
    try:
        await performer.start(show.id, show.performer_token, [TestPatternTrack(), ToneTrack()])
        log.info("demo.live", show=show.id)
        while (await session.events.get()).get("type") != "closed":
            pass
    finally:
        with contextlib.suppress(Exception):
            await performer.stop()
        with contextlib.suppress(Exception):
            await session.close()
