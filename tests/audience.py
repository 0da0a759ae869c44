"""Helpers for tests of the audience sound: clapping sessions and the level of what was heard.

``heard`` is a listener's audience sound as it arrived: (arrival time, 48 kHz mono s16) pairs, as
the Python client's performer and viewers keep it (``hall_pcm``).
"""

from __future__ import annotations

import asyncio
import time

from clients.client import Session
from media.hall import WINDOW, rms
from tests.helpers import eventually

Heard = list[tuple[float, bytes]]


async def clap(sessions: list[Session], seconds: float) -> None:
    """Every session clicks applause 1.5 times a second (under the 2/s limit)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.gather(*(s.request("react", kind="applause") for s in sessions))
        await asyncio.sleep(1 / 1.5)


def level_since(heard: Heard, since: float) -> float:
    """The RMS level of the sound heard since ``since`` (``time.monotonic()``)."""
    return rms(b"".join(pcm for at, pcm in heard if at >= since))


def seconds_heard_since(heard: Heard, since: float) -> float:
    """How much of the sound reached the listener since ``since``."""
    return sum(len(pcm) for at, pcm in heard if at >= since) / 2 / 48000


def quiet_now(heard: Heard) -> bool:
    """The last half second of the sound reached the listener, and it was quiet."""
    since = time.monotonic() - 0.5
    return seconds_heard_since(heard, since) >= 0.4 and level_since(heard, since) < 50


async def silence_then_applause(
    heard: Heard, sessions: list[Session], crowds: tuple[int, ...]
) -> tuple[float, list[float]]:
    """The level heard over 1.5 s of nobody clapping, then while each crowd of ``sessions``
    claps (the first ``crowd`` of them)."""
    quiet_from = time.monotonic()
    await eventually(lambda: seconds_heard_since(heard, quiet_from) >= 1.5, 10)
    silent = level_since(heard, quiet_from)
    levels = []
    for n, crowd in enumerate(crowds):
        if n:
            await eventually(lambda: quiet_now(heard), 10)  # the window empties
        # a full window, then a second of its sound (50 frames) to measure
        clapping = asyncio.ensure_future(clap(sessions[:crowd], WINDOW + 1.5))
        # The hall sounds the reactions of its last WINDOW (2 s) of time: only time fills the
        # window, no event says it is full.
        await asyncio.sleep(WINDOW + 0.5)
        since = time.monotonic()
        await clapping
        levels.append(level_since(heard, since))
    return silent, levels
