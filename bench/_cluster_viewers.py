"""Cluster bench viewers (one worker process hosting several): the Python client's ``Watcher``
(``decode=False``) on a ``Session(resume=True)``, through HAProxy, so that a viewer whose node is
killed comes back by itself on another node as the pages do.

Each viewer counts whole frames without decoding (as bench/_viewer.py does) and keeps every video
frame's arrival and RTP timestamp until the bench says ``report``. Then, on the bench's word, the
viewers chat and clap (``interact``) and wait for their node to die (``failover``).

Commands on stdin, one a line; JSON lines on stdout (times are ``time.monotonic()``, the same
clock in every process of the machine):

- ``go START GAP``: viewer i joins at START + i × GAP; ``first_frame`` per viewer, ``joined``;
- ``report``: ``result`` with each viewer's frames so far (the bench's window is over);
- ``interact START SECONDS CHAT_EVERY CLAP_EVERY SEED``: from START, each viewer says something
  every CHAT_EVERY seconds and claps every CLAP_EVERY seconds at its own random phase, for
  SECONDS; then ``interaction`` with what was sent and what arrived;
- ``failover KILLED_AT TIMEOUT``: once every viewer has come back on another connection with video
  again (or after TIMEOUT), ``failover`` with each one's seconds from KILLED_AT to its first new
  video frame (``Watcher.media_since``, as tests/test_failover.py measures it);
- ``stop``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import time
from typing import Any

from _procs import emit, loopback_address, stdin_lines

from clients.client import ProtocolError, Session, Watcher
from media.frame import EncodedFrame
from media.ice import use_host_addresses
from media.receiver import EncodedReceiver

CHAT_PREFIX = "cb-"  # client_id prefix of the bench's chat messages
GRACE_SECONDS = 1.5  # after the last message and clap: late deliveries (viewers' totals: 0.5 s)
START_WITHIN = 15.0  # seconds a viewer retries watch.start while its node says not_live


class ClusterViewer(Watcher):
    """A watcher that also keeps what the bench measures: frames, chat and reactions, timed."""

    def __init__(self, index: int, node: int, session: Session) -> None:
        super().__init__(session, decode=False)
        self.index = index
        self.node = node
        self.recording = True  # frames are kept until the bench's window is over
        self.first_frame_at: float | None = None
        self.video_at: list[float] = []
        self.video_pts: list[int] = []
        self.video_keys: list[int] = []
        self.audio_frames = 0
        self.chat_heard: list[tuple[str, float]] = []  # (client_id, arrival)
        self.claps_heard: list[tuple[float, int]] = []  # (arrival, this lobby's clicks in it)
        self.killed_at = math.inf  # when the bench killed our node
        self.video_again = asyncio.Event()  # a video frame on a peer connection made since
        self.resumed_at: float | None = None  # seated again, media answered, since killed_at
        session.listen(self._timed)

    @property
    def lobby(self) -> str:
        return str(self.joined.get("lobby", {}).get("id", ""))

    def _count_encoded(self, peer: Any) -> None:
        # Watcher's own counting (video and audio stats, media_since) plus each video frame's
        # arrival and RTP timestamp, which the frame figures match to the publisher's frames.
        for transceiver in peer.pc.getTransceivers():
            video = transceiver.kind == "video"
            stats = self.video if video else self.audio

            def on_frame(frame: EncodedFrame, video: bool = video, stats: Any = stats) -> None:
                now = time.monotonic()
                stats.arrived(now)
                if not video:
                    self.audio_frames += self.recording
                    return
                peer.saw_video(now)
                if (self.media_since or 0) > self.killed_at:
                    self.video_again.set()
                if not self.recording:
                    return
                self.video_at.append(now)
                self.video_pts.append(frame.pts)
                if frame.keyframe:
                    self.video_keys.append(len(self.video_at) - 1)
                if self.first_frame_at is None:
                    self.first_frame_at = now
                    emit("first_frame", viewer=self.index, ms=1000 * (now - self.started_at))

            peer.taps.append(EncodedReceiver(transceiver.receiver, on_frame=on_frame))

    async def resumed(self, link: Any, moving: bool) -> None:
        """A resumer that runs after the watcher's own: watch.join, watch.start and watch.answer
        on the new connection are done."""
        now = time.monotonic()
        if self.resumed_at is None and now > self.killed_at:
            self.resumed_at = now

    def _timed(self, event: dict[str, Any]) -> None:
        # Listeners run as the event is taken off the socket, before it is queued.
        kind = event.get("type")
        if kind == "chat.message" and str(event.get("client_id", "")).startswith(CHAT_PREFIX):
            self.chat_heard.append((str(event["client_id"]), time.monotonic()))
        elif kind == "reactions":
            mine = event.get("lobbies", {}).get(self.lobby, {})
            clicks = sum(int(n) for n in mine.values())
            if clicks:
                self.claps_heard.append((time.monotonic(), clicks))

    def result(self) -> dict[str, Any]:
        return {
            "viewer": self.index,
            "started_at": self.started_at,
            "answered_at": None,
            "connected_at": None,
            "first_frame_at": self.first_frame_at,
            "video_at": [round(t, 5) for t in self.video_at],
            "video_pts": self.video_pts,
            "video_keys": self.video_keys,
            "audio_frames": self.audio_frames,
        }


async def watch(viewer: ClusterViewer, code: str) -> None:
    joined = await viewer.join(code, name=f"Katsoja {viewer.index}")
    viewer.session.on_resume(viewer.resumed)  # after the watcher's, which join registered
    if not joined["live"]:
        event = await viewer.session.next_event("show.state", timeout=30)
        while event.get("state") != "live":
            event = await viewer.session.next_event("show.state", timeout=30)
    # `live` can come just before the origin's claim is stored: an edge answers not_live then
    deadline = time.monotonic() + START_WITHIN
    while True:
        try:
            await viewer.start()
            return
        except ProtocolError as exc:
            if exc.code != "not_live" or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def interact(viewers: list[ClusterViewer], words: list[bytes]) -> dict[str, Any]:
    start, seconds, chat_every, clap_every, seed = (float(w) for w in words[1:6])
    rng = random.Random(int(seed))
    said: list[dict[str, Any]] = []
    clicks: list[dict[str, Any]] = []
    refused: dict[str, int] = {}

    async def one(viewer: ClusterViewer) -> None:
        actions: list[tuple[float, str]] = []
        for every, kind in ((chat_every, "chat"), (clap_every, "clap")):
            if every <= 0:
                continue
            at = rng.uniform(0, every)
            while at < seconds:
                actions.append((start + at, kind))
                at += every
        actions.sort()
        for number, (at, kind) in enumerate(actions):
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            sent_at = time.monotonic()
            try:
                if kind == "chat":
                    client_id = f"{CHAT_PREFIX}{viewer.index}-{number}"
                    await viewer.session.request(
                        "chat.send", timeout=10, text=f"Hei {number}", client_id=client_id
                    )
                    said.append({"client_id": client_id, "at": sent_at, **whose(viewer)})
                else:
                    await viewer.session.request("react", timeout=10, kind="applause")
                    clicks.append({"at": sent_at, **whose(viewer)})
            except (ProtocolError, ConnectionError, TimeoutError) as exc:
                code = exc.code if isinstance(exc, ProtocolError) else type(exc).__name__
                refused[f"{kind}:{code}"] = refused.get(f"{kind}:{code}", 0) + 1

    await asyncio.gather(*(one(viewer) for viewer in viewers))
    await asyncio.sleep(max(0.0, start + seconds + GRACE_SECONDS - time.monotonic()))
    return {
        "said": said,
        "clicks": clicks,
        "refused": refused,
        "heard": [
            {
                **whose(viewer),
                "chat": viewer.chat_heard,
                "claps": viewer.claps_heard,
            }
            for viewer in viewers
        ],
    }


def whose(viewer: ClusterViewer) -> dict[str, Any]:
    return {"viewer": viewer.index, "node": viewer.node, "lobby": viewer.lobby}


async def failover(viewers: list[ClusterViewer], words: list[bytes]) -> dict[str, Any]:
    killed_at, timeout = float(words[1]), float(words[2])

    for viewer in viewers:
        viewer.killed_at = killed_at
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, killed_at + timeout - time.monotonic())):
            await asyncio.gather(*(viewer.video_again.wait() for viewer in viewers))

    def back(viewer: ClusterViewer) -> bool:
        return viewer.video_again.is_set()

    return {
        "took": [(v.media_since or 0) - killed_at for v in viewers if back(v)],
        "resumed": [v.resumed_at - killed_at for v in viewers if v.resumed_at is not None],
        "not_back": sum(1 for v in viewers if not back(v)),
        "reconnects": sum(v.session.reconnects for v in viewers),
    }


async def run(args: argparse.Namespace) -> None:
    indices = [int(i) for i in args.indices.split(",")]
    viewers: list[ClusterViewer] = []
    try:
        async with asyncio.timeout(args.max_seconds):
            commands = await stdin_lines()
            emit("ready")
            go = (await commands.readline()).split()
            if len(go) != 3 or go[0] != b"go":
                raise RuntimeError(f"expected 'go START GAP', got {go!r}")
            start, gap = float(go[1]), float(go[2])

            async def join(index: int) -> None:
                await asyncio.sleep(max(0.0, start + index * gap - time.monotonic()))
                session = await Session.connect(
                    args.url, local_address=loopback_address(index), resume=True
                )
                viewer = ClusterViewer(index, args.node, session)
                viewers.append(viewer)
                await watch(viewer, args.code)

            await asyncio.gather(*(join(index) for index in indices))
            emit("joined", viewers=len(viewers))
            while line := await commands.readline():
                words = line.split()
                if not words or words[0] == b"stop":
                    break
                if words[0] == b"report":
                    for viewer in viewers:
                        viewer.recording = False
                    emit("result", viewers=[viewer.result() for viewer in viewers])
                elif words[0] == b"interact":
                    emit("interaction", **await interact(viewers, words))
                elif words[0] == b"failover":
                    emit("failover", **await failover(viewers, words))
    except Exception as exc:
        emit("error", message=f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await asyncio.gather(*(close(viewer) for viewer in viewers))


async def close(viewer: ClusterViewer) -> None:
    await viewer.close()
    await viewer.session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="HAProxy's address for this node")
    parser.add_argument("--node", type=int, required=True, help="the node HAProxy sends us to")
    parser.add_argument("--code", required=True)
    parser.add_argument("--indices", required=True, help="viewer numbers, e.g. 0,3,6")
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    use_host_addresses(["127.0.0.1"])  # loopback only
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
