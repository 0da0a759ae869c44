"""Bench viewers (one worker process hosting several): receive-only peers that count whole frames.

Nothing is decoded: each receiver is tapped with ``media.receiver.EncodedReceiver`` right after
``setRemoteDescription`` (before media flows), so aiortc's jitter buffer hands over whole encoded
frames and its decoder thread idles. Against the node a viewer speaks the WebSocket protocol
(``watch.join``, ``watch.start``, ``watch.answer``); against the baseline server it POSTs an offer;
against Janus (bench/peer_janus.py) it is a streaming plugin viewer over Janus's HTTP API (its own
session and handle, ``watch``, the offer in an event, the answer with ``start``).

JSON lines on stdout: ``first_frame`` per viewer as it happens, then ``result`` with every video
frame's arrival time and RTP timestamp per viewer when told to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _janus import JanusSession
from _procs import emit, stdin_lines, until_stopped
from aiortc import RTCPeerConnection, RTCSessionDescription

from clients.client import Session
from media.codecs import prefer_codec
from media.frame import EncodedFrame
from media.ice import rtc_configuration, use_host_addresses
from media.receiver import EncodedReceiver


@dataclass
class BenchViewer:
    """One receive-only viewer; frame times are time.monotonic() (comparable across processes)."""

    index: int
    started_at: float = 0.0  # just before watch.start (or the baseline offer)
    answered_at: float | None = None  # the answer is applied (node) / sent (baseline)
    connected_at: float | None = None  # ICE and DTLS are up
    first_frame_at: float | None = None
    video_at: list[float] = field(default_factory=list)
    video_pts: list[int] = field(default_factory=list)
    video_keys: list[int] = field(default_factory=list)  # positions of keyframes in video_at
    audio_frames: int = 0
    pc: RTCPeerConnection | None = None
    session: Session | None = None
    janus: JanusSession | None = None
    http: aiohttp.ClientSession | None = None
    taps: list[EncodedReceiver] = field(default_factory=list)

    def on_frame(self, frame: EncodedFrame) -> None:
        now = time.monotonic()
        if frame.kind == "audio":
            self.audio_frames += 1
            return
        self.video_at.append(now)
        self.video_pts.append(frame.pts)
        if frame.keyframe:
            self.video_keys.append(len(self.video_at) - 1)
        if self.first_frame_at is None:
            self.first_frame_at = now
            emit("first_frame", viewer=self.index, ms=1000 * (now - self.started_at))

    def watch_state(self, pc: RTCPeerConnection) -> None:
        @pc.on("connectionstatechange")
        def changed() -> None:
            if pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()

    def tap(self, pc: RTCPeerConnection) -> None:
        # After setRemoteDescription the receivers have their remote tracks; receive() (which
        # starts aiortc's decoder thread) only runs later, when the connection starts.
        for transceiver in pc.getTransceivers():
            self.taps.append(EncodedReceiver(transceiver.receiver, on_frame=self.on_frame))

    async def watch_node(self, url: str, code: str) -> None:
        session = self.session = await Session.connect(url)
        joined = await session.request("watch.join", code=code)
        if not joined["live"]:
            event = await session.next_event("show.state", timeout=30)
            while event.get("state") != "live":
                event = await session.next_event("show.state", timeout=30)
        self.started_at = time.monotonic()
        offer = await session.request("watch.start")
        pc = self.pc = RTCPeerConnection(rtc_configuration(session.ice_servers))
        self.watch_state(pc)
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        self.tap(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        await session.request("watch.answer", sdp=pc.localDescription.sdp)
        self.answered_at = time.monotonic()

    async def watch_baseline(self, url: str) -> None:
        self.started_at = time.monotonic()
        pc = self.pc = RTCPeerConnection(rtc_configuration())
        self.watch_state(pc)
        prefer_codec(pc.addTransceiver("video", direction="recvonly"), "video/VP8")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/watch", json={"sdp": pc.localDescription.sdp}) as response,
        ):
            response.raise_for_status()
            answer = await response.json()
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        self.tap(pc)
        self.answered_at = time.monotonic()

    async def watch_janus(self, url: str, mountpoint: int) -> None:
        self.http = aiohttp.ClientSession()
        self.started_at = time.monotonic()
        janus = self.janus = JanusSession(self.http, url)
        await janus.create()
        handle = await janus.attach("janus.plugin.streaming")
        await janus.message(handle, {"request": "watch", "id": mountpoint})
        event = await janus.plugin_event(handle, timeout=30)
        offer = event.get("jsep")
        if offer is None:
            raise RuntimeError(f"no offer in Janus's answer to watch: {event}")
        check_loopback(offer["sdp"])
        pc = self.pc = RTCPeerConnection(rtc_configuration())
        self.watch_state(pc)
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        self.tap(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        answer = {"type": "answer", "sdp": pc.localDescription.sdp}
        await janus.message(handle, {"request": "start"}, jsep=answer)
        await janus.plugin_event(handle, timeout=30)  # {"status": "starting"}
        self.answered_at = time.monotonic()

    def result(self) -> dict[str, Any]:
        return {
            "viewer": self.index,
            "started_at": self.started_at,
            "answered_at": self.answered_at,
            "connected_at": self.connected_at,
            "first_frame_at": self.first_frame_at,
            "video_at": [round(t, 5) for t in self.video_at],
            "video_pts": self.video_pts,
            "video_keys": self.video_keys,
            "audio_frames": self.audio_frames,
            "keyframe_requests": sum(t.keyframe_requests for t in self.taps),
        }

    async def close(self) -> None:
        for tap in self.taps:
            tap.close()
        if self.session is not None:
            with contextlib.suppress(Exception):
                await self.session.request("watch.leave", timeout=2)
        if self.janus is not None:
            await self.janus.destroy()
        if self.pc is not None:
            await asyncio.shield(self.pc.close())
        if self.session is not None:
            await self.session.close()
        if self.http is not None:
            await self.http.close()


def check_loopback(sdp: str) -> None:
    """Refuse an offer with an ICE candidate that is not on 127.0.0.1 (the bench is loopback
    only)."""
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and line.split()[4] != "127.0.0.1":
            raise RuntimeError(f"the server offered a candidate off loopback: {line}")


async def run(args: argparse.Namespace) -> None:
    viewers = [BenchViewer(int(i)) for i in args.indices.split(",")]
    try:
        async with asyncio.timeout(args.max_seconds):
            commands = await stdin_lines()
            emit("ready")
            # "go START GAP": viewer i starts at START + i × GAP (time.monotonic(), shared by
            # every process on this machine), so the audience arrives evenly spread, as people
            # do, and each worker starts its viewers independently of how long others take.
            go = (await commands.readline()).split()
            if len(go) != 3 or go[0] != b"go":
                raise RuntimeError(f"expected 'go START GAP', got {go!r}")
            start, gap = float(go[1]), float(go[2])

            async def join(viewer: BenchViewer) -> None:
                await asyncio.sleep(max(0.0, start + viewer.index * gap - time.monotonic()))
                if args.mode == "node":
                    await viewer.watch_node(args.url, args.code)
                elif args.mode == "janus":
                    await viewer.watch_janus(args.url, args.mountpoint)
                else:
                    await viewer.watch_baseline(args.url)

            await asyncio.gather(*(join(viewer) for viewer in viewers))
            emit("joined", viewers=len(viewers))
            await until_stopped(args.max_seconds, commands)
    except Exception as exc:
        emit("error", message=f"{type(exc).__name__}: {exc}")
    finally:
        emit("result", viewers=[viewer.result() for viewer in viewers])
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await asyncio.gather(*(viewer.close() for viewer in viewers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["node", "baseline", "janus"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--code", default="")
    parser.add_argument("--mountpoint", type=int, default=1, help="Janus streaming mountpoint")
    parser.add_argument("--indices", required=True, help="viewer numbers, e.g. 0,4,8")
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    use_host_addresses(["127.0.0.1"])  # loopback only
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
