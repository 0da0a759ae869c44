"""What bench/_voice_members.py and bench/_camera_members.py share: members joined one after
another (the lobbies fill in order), ``joined`` once all are in, "on" from the bench turns on what
they send, ``on`` follows, and ``result`` (frames each counted, over how long) at "stop"."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from _procs import emit, stdin_lines, until_stopped
from aiortc import RTCPeerConnection

from clients.client import Session
from media.frame import EncodedFrame
from media.ice import use_host_addresses
from media.receiver import EncodedReceiver


@dataclass
class Member:
    """One lobby member with a connection of its own beside the WebSocket."""

    index: int
    sends: bool  # a speaker, or a camera
    frames: int = 0
    session: Session | None = None
    pc: RTCPeerConnection | None = None
    taps: list[EncodedReceiver] = field(default_factory=list)

    def on_frame(self, _frame: EncodedFrame) -> None:
        self.frames += 1

    def tap(self, pc: RTCPeerConnection, receiving: Sequence[Any]) -> None:
        """Count what reaches the receivers without decoding (tapped before media flows)."""
        for transceiver in receiving:
            self.taps.append(EncodedReceiver(transceiver.receiver, on_frame=self.on_frame))

    async def close(self) -> None:
        for tap in self.taps:
            tap.close()
        if self.pc is not None:
            await asyncio.shield(self.pc.close())
        if self.session is not None:
            await self.session.close()


async def run(
    members: Sequence[Member],
    join: Callable[[Member], Awaitable[None]],
    turn_on: Callable[[Member], Awaitable[None]],
    max_seconds: float,
    **joined: Any,
) -> None:
    """Join every member, wait for "on", turn on, count until "stop"; the events on stdout."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(max_seconds):
            commands = await stdin_lines()
            for member in members:
                await join(member)
            emit("joined", members=len(members), **joined)
            while (line := await commands.readline()) and line.strip() != b"on":
                pass
            for member in members:
                if member.sends:
                    await turn_on(member)
            for member in members:
                member.frames = 0
            started = time.monotonic()
            emit("on")
            await until_stopped(max_seconds, commands)
    except Exception as exc:
        emit("error", message=f"{type(exc).__name__}: {exc}")
    finally:
        seconds = time.monotonic() - started
        emit("result", frames=[m.frames for m in members], seconds=seconds)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await asyncio.gather(*(m.close() for m in members))


def parser(doc: str | None, sending: str) -> argparse.ArgumentParser:
    """The members' common arguments (``sending``: how many of a lobby send)."""
    parsed = argparse.ArgumentParser(description=doc)
    parsed.add_argument("--url", required=True)
    parsed.add_argument("--code", required=True)
    parsed.add_argument("--lobbies", type=int, required=True)
    parsed.add_argument("--members", type=int, required=True)
    parsed.add_argument(f"--{sending}", type=int, required=True, dest="sending")
    parsed.add_argument("--max-seconds", type=float, default=300)
    return parsed


def loopback() -> None:
    use_host_addresses(["127.0.0.1"])  # loopback only
