"""A garbage peer: one viewer joins and watches like any other, then for 30 s floods the node with
malformed WebSocket messages and with junk datagrams (random bytes, empty and truncated RTP
headers, RTP without SRTP's authentication, bogus RTCP, STUN- and DTLS-looking noise) at its own
peer connection's server port, from its own ICE socket, while 20 honest viewers watch.

What must hold over the flood: the honest viewers lose at most 1 % of the frames the node received
from the performer meanwhile, the process's resident memory grows by less than 50 MB, and the event
loop lags less than 100 ms at the 99th percentile (a timer's drift sampled every 50 ms). The node,
the performer and every viewer run in this process and on this loop, so all three figures are the
node's and then some. The honest viewers count encoded frames without decoding them
(``decode=False``): the node's work is the same either way, and on the 2 cores this suite shares
with others, 20 decoding viewers leave too little margin (measured once: loop lag p99 32 ms, max
127 ms, and the kernel dropped 40 % of the flood before the node could read it; counting: p99
5-8 ms, at most 1 % dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import socket
import statistics
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clients.client import Performer, Watcher
from media.seams import rtp_path
from tests.helpers import eventually
from tests.nodes import Node, serve, start_performer, start_viewer

pytestmark = pytest.mark.usefixtures("loopback_ice")

HONEST = 20
FLOOD = 30.0  # seconds
TICK = 0.01  # the flood goes out in bursts this far apart
DATAGRAMS_PER_SECOND = 5000
MESSAGES_PER_SECOND = 200  # ten times what one socket may send (signaling.ws.MESSAGE_RATE)
LAG_SAMPLE = 0.05
MAX_LOSS = 0.01
MAX_RSS_GROWTH = 50 * 2**20
MAX_LAG_P99 = 0.100

# Malformed or refused messages: none of them takes, leaves or changes a seat or a peer.
MALFORMED = [
    "not json",
    "{",
    "[1, 2",
    '{"id": 1, "type": "ping"',
    "null",
    "[]",
    "42",
    '"just text"',
    '{"type": "chat.send"}',
    '{"id": "1", "type": "ping"}',
    '{"id": true, "type": "ping"}',
    '{"id": 1, "type": 5}',
    '{"id": 1, "type": "no.such.command"}',
    '{"id": 1, "type": "chat.send", "text": 5, "client_id": "x"}',
    '{"id": 1, "type": "chat.send", "text": "\\ud800", "client_id": "x"}',
    '{"id": 1, "type": "react", "kind": "tomato"}',
    '{"id": 1, "type": "watch.answer", "sdp": "v=0 no sdp at all"}',
    '{"id": 1, "type": "chat.history", "after": "not-an-id"}',
    '{"id": 1, "type": "member.rename", "name": ' + '"' + "x" * 500 + '"}',
    "[" * 5000 + "]" * 5000,
    '{"id": 1e999999, "type": "ping"}',
    '{"id": ' + "9" * 4000 + ', "type": "ping"}',
    '{"id": 1, "type": "ping", "a": ' + '{"a": ' * 300 + "1" + "}" * 301,
    "\x00\x01\x02\x7f",
    "\ufeff{}",
]


def junk_datagrams(rng: random.Random, count: int = 700) -> list[bytes]:
    """Datagrams no honest peer sends: each kind in turn, sizes and contents at random."""

    def rtp_header(payload_type: int) -> bytes:
        return struct.pack(
            "!BBHII",
            0x80,
            payload_type,
            rng.getrandbits(16),
            rng.getrandbits(32),
            rng.getrandbits(32),
        )

    makers = [
        lambda: b"",  # empty: aiortc read its first byte unguarded (media.seams)
        lambda: rng.randbytes(rng.randint(1, 1400)),
        lambda: bytes([0x80 | rng.getrandbits(6)]) + rng.randbytes(rng.randint(0, 10)),
        lambda: rtp_header(rng.choice([96, 97, 111, 127])) + rng.randbytes(rng.randint(0, 1200)),
        lambda: (
            bytes([0x80 | rng.getrandbits(5), rng.randint(192, 223)])
            + struct.pack("!H", rng.getrandbits(16))
            + rng.randbytes(rng.randint(0, 200))
        ),
        lambda: b"\x00\x01" + struct.pack("!H", rng.getrandbits(16)) + rng.randbytes(16),
        lambda: bytes([rng.randint(20, 63), 0xFE, 0xFD]) + rng.randbytes(rng.randint(0, 300)),
    ]
    return [makers[n % len(makers)]() for n in range(count)]


def resident_bytes() -> int:
    """This process's resident set size (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def sample_lag(lags: list[float], stop: asyncio.Event, limit: float) -> None:
    """How late a 50 ms timer fires, again and again until ``stop`` (at most ``limit`` s)."""
    loop = asyncio.get_running_loop()
    for _ in range(int(limit / LAG_SAMPLE)):
        if stop.is_set():
            return
        started = loop.time()
        await asyncio.sleep(LAG_SAMPLE)
        lags.append(loop.time() - started - LAG_SAMPLE)


@dataclass
class Flooded:
    datagrams: int = 0
    messages: int = 0


async def flood(garbage: Watcher, seconds: float, rng: random.Random) -> Flooded:
    """Send the flood for ``seconds``: bursts every :data:`TICK`, bounded in count and time."""
    assert garbage.pc is not None
    path = rtp_path(garbage.pc.getTransceivers()[0].sender)
    assert path is not None, "the garbage peer is connected"
    datagrams = junk_datagrams(rng)
    ws = garbage.session.ws
    sent = Flooded()
    # From the garbage peer's own address, through a socket of its own on the same descriptor:
    # asyncio's transports silently skip empty datagrams, which are part of the junk.
    own = path.transport.get_extra_info("socket")
    udp = socket.fromfd(own.fileno(), own.family, own.type)
    udp.setblocking(False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    per_tick_datagrams = round(DATAGRAMS_PER_SECOND * TICK)
    per_tick_messages = max(1, round(MESSAGES_PER_SECOND * TICK))
    with udp:
        for tick in range(round(seconds / TICK)):
            if loop.time() - started >= seconds:
                break
            await burst(
                udp, path.addr, datagrams, per_tick_datagrams, ws, per_tick_messages, rng, sent
            )
            await asyncio.sleep(max(0.0, started + (tick + 1) * TICK - loop.time()))
    return sent


async def burst(
    udp: socket.socket,
    addr: tuple[str, int],
    datagrams: list[bytes],
    count: int,
    ws: aiohttp.ClientWebSocketResponse,
    messages: int,
    rng: random.Random,
    sent: Flooded,
) -> None:
    """One tick's datagrams and messages."""
    for _ in range(count):
        with contextlib.suppress(BlockingIOError):  # the socket's buffer full: dropped
            udp.sendto(datagrams[sent.datagrams % len(datagrams)], addr)
        sent.datagrams += 1
    for _ in range(messages):
        if sent.messages % 10 == 9:
            await ws.send_bytes(rng.randbytes(rng.randint(1, 2000)))
        else:
            await ws.send_str(MALFORMED[sent.messages % len(MALFORMED)])
        sent.messages += 1


async def message_results(node: Node) -> Counter[str]:
    """The node's count of WebSocket messages by how they ended (its metrics)."""
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as response:
        text = await response.text()
    results: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith('lampio_websocket_messages_total{result="'):
            result = line.split('"')[1]
            results[result] = int(float(line.rsplit(" ", 1)[1]))
    return results


async def datagrams_read(node: Node, show_id: str) -> list[int]:
    """How many datagrams each of the node's viewer peer connections has read."""
    counts = []
    for pc in node.viewer_peers(show_id):
        report = await pc.getStats()
        counts.append(max(s.packetsReceived for s in report.values() if s.type == "transport"))
    return counts


@contextlib.asynccontextmanager
async def audience(node: Node, code: str, count: int) -> AsyncIterator[list[Watcher]]:
    viewers: list[Watcher] = []
    try:
        for _ in range(0, count, 5):  # a few at a time, as an audience arrives
            arriving = min(5, count - len(viewers))
            batch = [start_viewer(node, code, decode=False) for _ in range(arriving)]
            viewers += await asyncio.gather(*batch)
        yield viewers
    finally:
        await asyncio.gather(*(v.close() for v in viewers), return_exceptions=True)
        await asyncio.gather(*(v.session.close() for v in viewers), return_exceptions=True)


async def test_a_garbage_peer_does_not_disturb_twenty_honest_viewers() -> None:
    async with serve() as node:
        show = await node.create_show()
        performer: Performer = await start_performer(node, show, "video/VP8")
        try:
            async with (
                audience(node, show["code"], HONEST) as honest,
                audience(node, show["code"], 1) as (garbage,),
            ):
                everyone = [*honest, garbage]
                await eventually(
                    lambda: all(v.video.frames >= 20 and v.audio.frames >= 20 for v in everyone),
                    30,
                    "every viewer receives video and audio",
                )
                await run_flood(node, show, honest, garbage)
        finally:
            await performer.stop()
            await performer.session.close()


async def run_flood(
    node: Node, show: dict[str, Any], honest: list[Watcher], garbage: Watcher
) -> None:
    results = await message_results(node)
    read_before = await datagrams_read(node, show["id"])
    lags: list[float] = []
    stop = asyncio.Event()
    gc.collect()
    rss_before = resident_bytes()
    ingested = {kind: node.ingested(show["id"], kind) for kind in ("video", "audio")}
    before = [(v.video.frames, v.audio.frames) for v in honest]
    garbage_before = garbage.video.frames
    sampler = asyncio.get_running_loop().create_task(sample_lag(lags, stop, FLOOD + 10))
    started = time.monotonic()
    try:
        sent = await flood(garbage, FLOOD, random.Random(1234))
    finally:
        stop.set()
        await sampler
    took = time.monotonic() - started
    received = {kind: node.ingested(show["id"], kind) - ingested[kind] for kind in ingested}
    after = [(v.video.frames, v.audio.frames) for v in honest]
    gc.collect()
    growth = resident_bytes() - rss_before
    codes = await message_results(node) - results
    read = max(await datagrams_read(node, show["id"])) - max(read_before)

    losses = {
        kind: max(1 - (a[i] - b[i]) / received[kind] for a, b in zip(after, before, strict=True))
        for i, kind in enumerate(("video", "audio"))
    }
    p99 = statistics.quantiles(lags, n=100)[98]
    print(
        f"\nflood {took:.1f} s: {sent.datagrams} datagrams ({read} read by the garbage peer's "
        f"transport on the node), {sent.messages} messages; "
        f"node received {received['video']} video and {received['audio']} audio frames; "
        f"worst honest loss video {losses['video']:.2%}, audio {losses['audio']:.2%}; "
        f"RSS {growth / 2**20:+.1f} MB; loop lag p50 {statistics.median(lags) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms; replies {dict(codes)}"
    )
    assert took >= FLOOD and sent.datagrams >= 0.9 * DATAGRAMS_PER_SECOND * FLOOD
    assert sent.messages >= 0.9 * MESSAGES_PER_SECOND * FLOOD
    # The junk reached the node's DTLS transport (all but the empty datagrams, which it drops).
    assert read >= 0.5 * sent.datagrams, f"{read} of {sent.datagrams} datagrams read"
    assert received["video"] >= 0.9 * 20 * FLOOD, "the performer kept sending (20 fps)"
    assert losses["video"] <= MAX_LOSS and losses["audio"] <= MAX_LOSS, losses
    assert growth < MAX_RSS_GROWTH, f"RSS grew {growth / 2**20:.1f} MB"
    assert p99 < MAX_LAG_P99, f"loop lag p99 {p99 * 1000:.1f} ms"
    # Every malformed message got a precise refusal, none an internal error; the socket stayed.
    assert "internal_error" not in codes and not garbage.session.ws.closed, codes
    assert codes["invalid_json"] and codes["rate_limited"] and codes["invalid_message"], codes
    # Nor did the junk cut the garbage peer's own media: the node drops what it cannot use.
    assert garbage.video.frames - garbage_before >= 0.9 * received["video"]
    async with aiohttp.ClientSession() as http, http.get(f"{node.url}/metrics") as response:
        assert f"lampio_viewers {HONEST + 1}.0" in await response.text()


async def test_an_empty_datagram_from_a_stranger_does_not_cut_a_viewer_off() -> None:
    # aioice hands the DTLS transport what does not parse as STUN, from any address; aiortc read
    # the first byte of that unguarded, so one empty datagram ended the viewer's connection.
    async with serve() as node:
        show = await node.create_show()
        performer = await start_performer(node, show, "video/VP8")
        viewer = await start_viewer(node, show["code"], decode=False)
        try:
            await eventually(lambda: viewer.video.frames >= 5, 20)
            assert viewer.pc is not None
            path = rtp_path(viewer.pc.getTransceivers()[0].sender)
            assert path is not None
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
                stranger.bind(("127.0.0.1", 0))
                for _ in range(3):
                    stranger.sendto(b"", path.addr)
            seen = viewer.video.frames
            await eventually(lambda: viewer.video.frames >= seen + 20, 10, "video goes on")
            assert node.stage.viewers(show["id"]) == 1
        finally:
            await viewer.close()
            await viewer.session.close()
            await performer.stop()
            await performer.session.close()
