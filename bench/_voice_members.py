"""Bench lobby members (one worker process hosting them all): each joins a show's lobby and its
voice; speakers send a tone and turn their microphone on; everyone counts the voice frames that
reach their slots, without decoding (``media.receiver.EncodedReceiver`` taps).

JSON lines on stdout: ``joined`` once every member is in, then ``result`` (frames per member) when
told to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from _procs import emit, stdin_lines, until_stopped
from aiortc import RTCPeerConnection, RTCSessionDescription

from clients.client import Session
from media.frame import EncodedFrame
from media.ice import rtc_configuration, use_host_addresses
from media.receiver import EncodedReceiver
from media.sources import ToneTrack


@dataclass
class Member:
    """One lobby member with a voice connection."""

    index: int
    speaker: bool
    frames: int = 0
    session: Session | None = None
    pc: RTCPeerConnection | None = None
    taps: list[EncodedReceiver] = field(default_factory=list)

    def on_frame(self, _frame: EncodedFrame) -> None:
        self.frames += 1

    async def join(self, url: str, code: str, slots: int) -> None:
        session = self.session = await Session.connect(url)
        await session.request("watch.join", code=code, name=f"Jäsen {self.index}")
        pc = self.pc = RTCPeerConnection(rtc_configuration(session.ice_servers, max_bundle=True))
        if self.speaker:
            pc.addTransceiver(ToneTrack(300 + 20 * self.index), direction="sendonly")
        receiving = [pc.addTransceiver("audio", direction="recvonly") for _ in range(slots)]
        await pc.setLocalDescription(await pc.createOffer())
        answer = await session.request("voice.join", sdp=pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        for transceiver in receiving:  # before media flows: nothing is decoded
            self.taps.append(EncodedReceiver(transceiver.receiver, on_frame=self.on_frame))
        if self.speaker:
            await session.request("voice.mic", on=True)

    async def close(self) -> None:
        for tap in self.taps:
            tap.close()
        if self.pc is not None:
            await asyncio.shield(self.pc.close())
        if self.session is not None:
            await self.session.close()


async def run(args: argparse.Namespace) -> None:
    members = [
        Member(n, speaker=n % args.members < args.speakers)
        for n in range(args.lobbies * args.members)
    ]
    try:
        async with asyncio.timeout(args.max_seconds):
            commands = await stdin_lines()
            for member in members:  # in order: the lobbies fill one after another
                await member.join(args.url, args.code, min(12, args.members - 1))
            emit("joined", members=len(members))
            await until_stopped(args.max_seconds, commands)
    except Exception as exc:
        emit("error", message=f"{type(exc).__name__}: {exc}")
    finally:
        result: dict[str, Any] = {"frames": [m.frames for m in members]}
        emit("result", **result)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await asyncio.gather(*(m.close() for m in members))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--code", required=True)
    parser.add_argument("--lobbies", type=int, required=True)
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--speakers", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    use_host_addresses(["127.0.0.1"])  # loopback only
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
