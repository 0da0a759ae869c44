"""The demo performer: a test pattern with a clock and a chime, published like any performer.

It connects to this node's own WebSocket with the Python client, so it takes exactly the path a
real performer's browser takes, and a newcomer sees a live show at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from clients.client import Performer, ProtocolError, Session
from media.sources import TestPatternTrack, ToneTrack
from rooms.bus import BusError
from rooms.codes import format_code
from rooms.shows import Show, Shows
from rooms.supervise import Failures, retrying

log = structlog.get_logger(__name__)

FIRST_PAUSE, LONGEST_PAUSE = 0.2, 5.0  # seconds before performing again after a failure
# What the demo meets when the node or its bus is away for a while: said as warnings, retried.
EXPECTED = (BusError, ProtocolError, OSError)


async def run_demo(shows: Shows, local_url: str, public_url: str) -> None:
    """Create the demo show and keep performing it until cancelled, reconnecting as needed (the
    bus away, the node refusing or closing: none of it ends the demo)."""
    show = await retrying(
        lambda: shows.create(
            "Lämpiö Live – esittely / demo",
            "Testikuva ja kello. Testbild och klocka. A test picture and a clock.",
        ),
        "demo.create",
        first=FIRST_PAUSE,
        expected=EXPECTED,
    )
    link = f"{public_url}/watch?code={show.code}"
    print(f"Demo show is on: code {format_code(show.code)} — open {link}", flush=True)
    log.info("demo.created", show=show.id)
    failures = Failures(
        "demo.perform", first=FIRST_PAUSE, longest=LONGEST_PAUSE, expected=EXPECTED, show=show.id
    )
    while True:
        try:
            await _perform_until_closed(show, local_url, on_live=failures.succeeded)
        except Exception as exc:
            await asyncio.sleep(failures.failed(exc))
            continue
        await asyncio.sleep(FIRST_PAUSE)  # the node closed the performer: perform again


async def _perform_until_closed(
    show: Show, local_url: str, on_live: Callable[[], None] = lambda: None
) -> None:
    session = await Session.connect(local_url)
    performer = Performer(session)
    try:
        await performer.start(show.id, show.performer_token, [TestPatternTrack(), ToneTrack()])
        log.info("demo.live", show=show.id)
        on_live()
        while (await session.events.get()).get("type") != "closed":
            pass
    finally:
        with contextlib.suppress(Exception):
            await performer.stop()
        with contextlib.suppress(Exception):
            await session.close()
