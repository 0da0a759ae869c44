"""Helpers for tests of the audience sound: clapping sessions and the level of what was heard."""

from __future__ import annotations

import asyncio
import time

from clients.client import Session
from media.hall import rms


async def clap(sessions: list[Session], seconds: float) -> None:
    """Every session clicks applause 1.5 times a second (under the 2/s limit)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.gather(*(s.request("react", kind="applause") for s in sessions))
        await asyncio.sleep(1 / 1.5)


def level_since(pcm: list[tuple[float, bytes]], since: float) -> float:
    """The RMS level of the sound heard since ``since`` (``time.monotonic()``)."""
    return rms(b"".join(chunk for at, chunk in pcm if at >= since))


async def silence_then_applause(
    pcm: list[tuple[float, bytes]], sessions: list[Session], crowds: tuple[int, ...]
) -> tuple[float, list[float]]:
    """The level heard while nobody claps, then while each crowd of ``sessions`` claps."""
    quiet_from = time.monotonic()
    await asyncio.sleep(1.5)
    silent = level_since(pcm, quiet_from)
    levels = []
    for crowd in crowds:
        clapping = asyncio.ensure_future(clap(sessions[:crowd], 4.5))
        await asyncio.sleep(2.5)  # the hall's window fills
        since = time.monotonic()
        await clapping
        levels.append(level_since(pcm, since))
        await asyncio.sleep(2.5)  # the window empties
    return silent, levels
