"""Baseline server (own process): aiortc's MediaRelay, decode once and re-encode per viewer.

This is what DESIGN decision 1 rejects, measured in the same run for comparison. The performer's
tracks are decoded once by aiortc's receiver; ``MediaRelay`` hands every viewer's sender the
decoded frames, and each sender runs its own VP8 (and Opus) encoder. Signaling is one POST each:
``/publish`` and ``/watch`` take ``{"sdp": offer}`` and answer ``{"sdp": answer}``.

Prints ``{"event": "listening", "port": P}``; stops on "stop" on stdin, SIGTERM or --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from _procs import emit, until_stopped
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.ice import rtc_configuration, use_host_addresses


class Baseline:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.sources: dict[str, MediaStreamTrack] = {}
        self.peers: set[RTCPeerConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def drain(self, track: MediaStreamTrack) -> None:
        # Keeps the decoded source flowing (and decoded exactly once) before and between viewers;
        # without a reader aiortc's remote track queue would grow without bound.
        proxy = self.relay.subscribe(track, buffered=False)
        with contextlib.suppress(MediaStreamError):
            while True:
                await proxy.recv()

    async def publish(self, request: web.Request) -> web.Response:
        offer = (await request.json())["sdp"]
        pc = RTCPeerConnection(rtc_configuration())
        self.peers.add(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.sources[track.kind] = track
            task = asyncio.get_running_loop().create_task(self.drain(track))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp})

    async def watch(self, request: web.Request) -> web.Response:
        offer = (await request.json())["sdp"]
        if set(self.sources) != {"audio", "video"}:
            return web.json_response({"error": "not live"}, status=409)
        pc = RTCPeerConnection(rtc_configuration())
        self.peers.add(pc)
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        for transceiver in pc.getTransceivers():
            # buffered=False: a viewer whose encoder falls behind skips frames (bounded memory).
            pc.addTrack(self.relay.subscribe(self.sources[transceiver.kind], buffered=False))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.json_response({"sdp": pc.localDescription.sdp})

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(pc.close() for pc in self.peers), return_exceptions=True)


async def run(max_seconds: float) -> None:
    baseline = Baseline()
    app = web.Application()
    app.router.add_post("/publish", baseline.publish)
    app.router.add_post("/watch", baseline.watch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    emit("listening", port=port)
    try:
        waiter = asyncio.ensure_future(until_stopped(max_seconds))
        signalled = asyncio.ensure_future(stopping.wait())
        await asyncio.wait([waiter, signalled], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        signalled.cancel()
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await baseline.close()
                await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    use_host_addresses(["127.0.0.1"])  # loopback only
    asyncio.run(run(args.max_seconds))


if __name__ == "__main__":
    main()
