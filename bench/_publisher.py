"""Bench publisher (own process): loops the pre-encoded clip to the node or to the baseline server.

To the node it is a real performer (``perform.start`` over the WebSocket, clients.client.Performer);
to the baseline server it POSTs its offer. Prints JSON lines: ``publishing`` once the first video
frame is sent, and ``result`` (send times of every video frame, keyframe requests received) when
told to stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
from _procs import emit, until_stopped
from _stream import SharedStart, audio_track, load_clip, video_track
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from clients.client import Performer, Session
from media.codecs import prefer_codec
from media.ice import rtc_configuration, use_host_addresses
from media.seams import on_keyframe_request


class Counters:
    def __init__(self) -> None:
        self.video_sent: list[tuple[int, float]] = []  # (frame index in the stream, time)
        self.audio_sent = 0
        self.keyframe_requests = 0
        self.first_video = asyncio.Event()

    def on_sent(self, kind: str, index: int, at: float) -> None:
        if kind == "video":
            self.video_sent.append((index, round(at, 5)))
            self.first_video.set()
        else:
            self.audio_sent += 1

    def count_keyframe_requests(self, sender: RTCRtpSender) -> None:
        # a looping publisher cannot make a keyframe on demand (its clip has one every second),
        # so it only counts the requests
        def counted() -> None:
            self.keyframe_requests += 1

        on_keyframe_request(sender, counted)


async def publish_to_node(
    url: str, show: str, token: str, tracks: list[MediaStreamTrack], counters: Counters
) -> tuple[Performer, Session]:
    session = await Session.connect(url)
    performer = Performer(session)
    await performer.start(show, token, tracks, "video/VP8")
    assert performer.pc is not None
    for sender in performer.pc.getSenders():
        if sender.track is not None and sender.track.kind == "video":
            counters.count_keyframe_requests(sender)
    return performer, session


async def publish_to_baseline(
    url: str, tracks: list[MediaStreamTrack], counters: Counters
) -> RTCPeerConnection:
    pc = RTCPeerConnection(rtc_configuration())
    for track in tracks:
        transceiver = pc.addTransceiver(track, direction="sendonly")
        if transceiver.kind == "video":
            prefer_codec(transceiver, "video/VP8")
            counters.count_keyframe_requests(transceiver.sender)
    await pc.setLocalDescription(await pc.createOffer())
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/publish", json={"sdp": pc.localDescription.sdp}) as response,
    ):
        response.raise_for_status()
        answer = await response.json()
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    return pc


async def run(args: argparse.Namespace) -> None:
    clip = load_clip(Path(args.clip))
    counters = Counters()
    start = SharedStart()  # both tracks share one clock, started by the first frame sent
    tracks: list[MediaStreamTrack] = [
        video_track(clip, start, counters.on_sent),
        audio_track(clip, start, counters.on_sent),
    ]
    performer: Performer | None = None
    session: Session | None = None
    pc: RTCPeerConnection | None = None
    try:
        async with asyncio.timeout(30):
            if args.mode == "node":
                performer, session = await publish_to_node(
                    args.url, args.show, args.token, tracks, counters
                )
            else:
                pc = await publish_to_baseline(args.url, tracks, counters)
            await counters.first_video.wait()
        emit("publishing", at=time.monotonic())
        await until_stopped(args.max_seconds)
    except Exception as exc:
        emit("error", message=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        emit(
            "result",
            video_sent=counters.video_sent,
            audio_sent=counters.audio_sent,
            keyframe_requests=counters.keyframe_requests,
        )
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                if performer is not None:
                    await performer.stop()
                if session is not None:
                    await session.close()
                if pc is not None:
                    await pc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["node", "baseline"], required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--show", default="")
    parser.add_argument("--token", default="")
    parser.add_argument("--clip", required=True)
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    use_host_addresses(["127.0.0.1"])  # loopback only
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
