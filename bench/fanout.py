"""Fan-out benchmark: server CPU per viewer and frame loss, our forwarding vs aiortc's MediaRelay.

    .venv/bin/python bench/fanout.py --viewers 24 --seconds 10

One run, every part its own process, loopback only:

1. encode a 1280×720 30 fps VP8 clip (~1.5 Mbit/s, a keyframe every second) and an Opus tone;
2. node phase: the real ``lampio-stream serve``; a show made with ``POST /api/shows``; a publisher
   looping the clip through ``perform.start``; N receive-only viewers (``watch.*``) in a few worker
   processes that count whole encoded frames without decoding;
3. baseline phase: the same publisher and a few viewers against ``bench/_baseline.py``, aiortc's
   MediaRelay (decode once, encode per viewer).

Each phase measures the server's CPU (utime + stime from /proc, all threads) over a steady window
of --seconds that starts once every viewer has its first frame, and the frames each viewer counted
in that window against the frames the publisher sent in it. See bench/README.md for every figure.
The last line printed is the JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiortc
import av
from _procs import Child, CpuSample, CpuUse, cpu_between, python_argv, sample_cpu
from _profile import load_profile, report
from _stream import (
    AUDIO_RATE,
    AUDIO_SAMPLES,
    FPS,
    HEIGHT,
    KEYFRAME_INTERVAL,
    VIDEO_STEP,
    WIDTH,
    Clip,
    encode_clip,
    save_clip,
)

from media.seams import vp8_payloads

SETTLE_SECONDS = 2.0  # after the last first frame, before the window: join bursts calm down
BASE_SECONDS = 3.0  # publisher only, no viewers: the server's fixed cost
LATE_MARGIN = 0.5  # a frame that reaches a viewer later than this after it was sent is lost
FLOOR_PACKET_SIZE = 1200  # bytes of the RTP packets the floor protects and sends


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Phase:
    """What one server did with one publisher and some viewers during the measured window."""

    kind: str  # "node", "baseline" or "janus" (bench/peer_janus.py)
    viewers: int
    seconds: float = 0.0
    server_cpu_pct: float = 0.0  # % of one core over the window
    server_base_cpu_pct: float = 0.0  # publisher connected, no viewers
    server_sys_pct: float = 0.0  # the kernel's part of server_cpu_pct
    clients_cpu_pct: float = 0.0  # all viewer workers together
    publisher_cpu_pct: float = 0.0
    machine_busy_pct: float = 0.0  # all cores: 100 × cores when saturated
    other_load_pct: float = 0.0  # machine busy minus this bench's processes: someone else's work
    frames_sent: int = 0  # publisher video frames in the window
    frames_received: list[int] = field(default_factory=list)  # per viewer, of those expected
    frames_expected: list[int] = field(default_factory=list)  # per viewer
    counted_only: int = 0  # viewers whose frames could not be matched one by one (baseline)
    delay_ms: list[float] = field(default_factory=list)  # publisher send → viewer, per frame
    frame_gaps: int = 0  # frames missing in viewers' RTP timestamp sequences, in the window
    first_frame_ms: list[float] = field(default_factory=list)
    # The first frame's wait in parts: watch.start → answer applied → connected → first frame.
    signaling_ms: list[float] = field(default_factory=list)
    connecting_ms: list[float] = field(default_factory=list)
    after_connect_ms: list[float] = field(default_factory=list)
    without_frames: int = 0  # viewers that never got a frame
    keyframe_requests: int = 0  # PLIs that reached the publisher (whole phase)
    audio_received: int = 0
    server_cpu_seconds: float = 0.0
    server_rss_base_mib: float = 0.0  # publisher connected, no viewers
    server_rss_mib: float = 0.0  # at the end of the window
    profile: str = ""

    @property
    def rss_per_viewer_mib(self) -> float:
        return (self.server_rss_mib - self.server_rss_base_mib) / self.viewers

    @property
    def cpu_per_viewer_pct(self) -> float:
        return self.server_cpu_pct / self.viewers

    @property
    def marginal_cpu_per_viewer_pct(self) -> float:
        return (self.server_cpu_pct - self.server_base_cpu_pct) / self.viewers

    @property
    def viewers_per_core_est(self) -> float:
        # One core holds the fixed cost once plus the marginal cost per viewer.
        marginal = self.marginal_cpu_per_viewer_pct
        return (100.0 - self.server_base_cpu_pct) / marginal if marginal > 0 else math.inf

    @property
    def frame_loss_pct(self) -> float:
        expected = sum(self.frames_expected)
        return 100.0 * (1 - sum(self.frames_received) / expected) if expected else 100.0

    @property
    def frame_gaps_pct(self) -> float:
        received = sum(self.frames_received)
        return 100.0 * self.frame_gaps / (received + self.frame_gaps) if received else 100.0

    def first_frame(self, quantile: float) -> float:
        return percentile(self.first_frame_ms, quantile)


def rss_mib(pid: int) -> float:
    """Resident memory of a process (VmRSS of /proc/PID/status), MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def percentile(values: list[float], quantile: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    values = sorted(values)
    if not values:
        return math.nan
    position = quantile * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def packets_per_viewer_second(clip: Clip) -> float:
    """RTP packets a viewer gets per second: VP8 as aiortc packetises it, plus Opus."""
    video = sum(len(vp8_payloads(data)) for _, _, data in clip.video)
    seconds = len(clip.video) / FPS
    return video / seconds + AUDIO_RATE / AUDIO_SAMPLES


def server_argv(port: int, key: str, media_sender: str, event_loop: str = "asyncio") -> list[str]:
    script = Path(sys.executable).parent / "lampio-stream"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lampio_stream.cli"]
    return [
        *command,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        f"--organiser-key={key}",  # "=": a key may start with "-"
        "--ice-host",
        "127.0.0.1",
        "--log-level",
        "warning",
        "--media-sender",
        media_sender,
        "--rtmp-port",
        "off",  # the bench publishes over WebRTC; another node on this machine may hold 1935
        "--event-loop",
        event_loop,
    ]


async def wait_until_serving(url: str, timeout: float = 30) -> None:
    """Poll /healthz: the server prints its address before it listens (lampio_stream/cli.py)."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            try:
                async with http.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


async def create_show(url: str, key: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/api/shows",
            json={"title": "Fan-out bench"},
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):
        response.raise_for_status()
        show: dict[str, Any] = await response.json()
        return show


async def wait_first_frames(workers: list[tuple[Child, int]], timeout: float) -> None:
    """Until every viewer of every worker reported its first frame (or the timeout passes)."""

    async def one(worker: Child, count: int) -> None:
        try:
            for _ in range(count):
                await worker.event("first_frame", timeout=timeout)
        except RuntimeError as exc:  # the worker failed; its viewers count as receiving nothing
            log(f"  {exc}")

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(one(worker, count) for worker, count in workers))
            return
    log(f"  not every viewer had a frame after {timeout:.0f} s; measuring anyway")


async def results_of(child: Child) -> dict[str, Any]:
    with contextlib.suppress(TimeoutError, RuntimeError):
        return await child.event("result", timeout=20)
    return {}


def helper_budget(viewers: int, seconds: float) -> float:
    """Seconds after which every helper process of a phase ends by itself."""
    return 60 + 3 * viewers + 2 * seconds


async def run_phase(
    kind: str,
    viewers: int,
    args: argparse.Namespace,
    clip_path: Path,
    work: Path,
    profile_path: Path | None,
) -> Phase:
    """One phase against the node (``kind`` "node") or the MediaRelay server ("baseline")."""
    phase = Phase(kind, viewers)
    children: list[Child] = []
    budget = helper_budget(viewers, args.seconds)
    try:
        key = secrets.token_urlsafe(24)
        if kind == "node":
            server = await Child.start(
                f"{kind}-server", server_argv(0, key, args.media_sender, args.event_loop), work
            )
            children.append(server)
            banner = await server.wait_text(lambda line: "is running at" in line, 30)
            url = re.search(r"(http://[^ ]+?)/?$", banner)
            if url is None:
                raise RuntimeError(f"cannot read the server's address from {banner!r}")
            base_url = url.group(1).rstrip("/")
            await wait_until_serving(base_url)
            show = await create_show(base_url, key)
            # "--flag=value": ids and tokens may start with "-".
            publisher_args = [f"--show={show['id']}", f"--token={show['performer_token']}"]
            viewer_args = [f"--code={show['code']}"]
        else:
            server = await Child.start(
                f"{kind}-server", python_argv("_baseline.py", "--max-seconds", str(budget)), work
            )
            children.append(server)
            listening = await server.event("listening", timeout=30)
            base_url = f"http://127.0.0.1:{listening['port']}"
            publisher_args, viewer_args = [], []
        publisher = await Child.start(
            f"{kind}-publisher",
            python_argv(
                "_publisher.py",
                "--mode",
                kind,
                "--url",
                base_url,
                "--clip",
                str(clip_path),
                "--max-seconds",
                str(budget),
                *publisher_args,
            ),
            work,
        )
        children.append(publisher)
        await publisher.event("publishing", timeout=30)
        return await measure_phase(
            phase, server, publisher, base_url, viewer_args, args, work, profile_path, children
        )
    finally:
        for child in reversed(children):
            await child.stop(15, terminate=child.name.endswith("server"))


async def measure_phase(
    phase: Phase,
    server: Child,
    publisher: Child,
    url: str,
    viewer_args: list[str],
    args: argparse.Namespace,
    work: Path,
    profile_path: Path | None,
    children: list[Child],
) -> Phase:
    """With the server up and the publisher sending: the fixed cost, the viewers' joins, the
    window, the frames. Viewer workers run ``_viewer.py --mode phase.kind --url URL
    *viewer_args`` and are appended to ``children`` (the caller stops them)."""
    kind, viewers = phase.kind, phase.viewers
    budget = helper_budget(viewers, args.seconds)
    pids = {"server": server.pid, "publisher": publisher.pid}

    await asyncio.sleep(1.0)
    before = sample_cpu(pids)
    await asyncio.sleep(BASE_SECONDS)
    phase.server_base_cpu_pct = cpu_between(before, sample_cpu(pids)).pct("server")
    phase.server_rss_base_mib = rss_mib(server.pid)

    workers: list[tuple[Child, int]] = []
    for number in range(min(args.workers, viewers)):
        # Viewer i goes to worker i mod W: each worker's viewers are spread over the join.
        indices = list(range(number, viewers, args.workers))
        worker = await Child.start(
            f"{kind}-viewers-{number}",
            python_argv(
                "_viewer.py",
                "--mode",
                kind,
                "--url",
                url,
                f"--indices={','.join(map(str, indices))}",
                "--max-seconds",
                str(budget),
                *viewer_args,
            ),
            work,
        )
        children.append(worker)
        workers.append((worker, len(indices)))
        pids[f"viewers-{number}"] = worker.pid
    for worker, _ in workers:
        await worker.event("ready", timeout=60)
    gap = args.join_spread / viewers
    go = time.monotonic() + 0.2
    for worker, _ in workers:
        worker.send(f"go {go} {gap}")
    log(
        f"  {kind}: {viewers} viewers joining over {args.join_spread:g} s "
        f"({len(workers)} worker processes)"
    )
    await wait_first_frames(workers, timeout=30 + 1.5 * viewers)
    await asyncio.sleep(SETTLE_SECONDS)

    spy: asyncio.subprocess.Process | None = None
    if profile_path is not None:
        spy = await start_profiler(server.pid, args.seconds, profile_path)
    start = sample_cpu(pids)
    await asyncio.sleep(args.seconds)
    end = sample_cpu(pids)
    phase.server_rss_mib = rss_mib(server.pid)
    if spy is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(spy.wait(), 20)
    use = cpu_between(start, end)
    record_cpu(phase, use, start, end)

    for worker, _ in workers:
        worker.send("stop")
    publisher.send("stop")
    worker_results = [await results_of(worker) for worker, _ in workers]
    publisher_result = await results_of(publisher)
    count_frames(phase, start, end, worker_results, publisher_result)
    if args.keep:
        raw = {"window": [start.at, end.at], "publisher": publisher_result}
        raw["workers"] = worker_results
        (work / f"{kind}-{viewers}-raw.json").write_text(json.dumps(raw))
    if profile_path is not None and os.path.exists(profile_path):  # noqa: ASYNC240
        phase.profile = str(profile_path)
    return phase


class _Drain(asyncio.DatagramProtocol):
    """The floor's receiver: takes every datagram off the socket, as a viewer's peer would."""

    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received += 1


async def measure_floor(work: Path, size: int = FLOOR_PACKET_SIZE) -> dict[str, Any]:
    """SRTP protect + one sendto per packet, in a tight loop in its own process (bench/_floor.py),
    to a receiver in this one: the per-packet floor of this machine, in this run."""
    loop = asyncio.get_running_loop()
    transport, drain = await loop.create_datagram_endpoint(_Drain, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        child = await Child.start("floor", python_argv("_floor.py", f"--port={port}"), work)
        try:
            result = await child.event("floor", timeout=120)
        finally:
            await child.stop(10)
        result["received"] = drain.received
        return result
    finally:
        transport.close()


async def start_profiler(pid: int, seconds: float, path: Path) -> asyncio.subprocess.Process | None:
    spy = shutil.which("py-spy", path=os.pathsep.join([str(Path(sys.executable).parent), ""]))
    spy = spy or shutil.which("py-spy")
    if spy is None:
        log("  py-spy not found: pip install py-spy into the venv to profile")
        return None
    return await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(math.ceil(seconds)),
        "--rate",
        "250",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def record_cpu(phase: Phase, use: CpuUse, start: CpuSample, end: CpuSample) -> None:
    phase.seconds = use.seconds
    phase.server_cpu_pct = use.pct("server")
    phase.server_sys_pct = use.system.get("server", 0.0)
    phase.server_cpu_seconds = end.per_process["server"] - start.per_process["server"]
    phase.publisher_cpu_pct = use.pct("publisher")
    phase.clients_cpu_pct = use.pct("viewers-")
    phase.machine_busy_pct = use.machine_busy_pct
    ours = phase.server_cpu_pct + phase.publisher_cpu_pct + phase.clients_cpu_pct
    phase.other_load_pct = max(0.0, use.machine_busy_pct - ours)


def align(viewer: dict[str, Any], sent: dict[int, float]) -> int | None:
    """K such that the viewer's frame with relative RTP timestamp r is the publisher's frame r + K.

    The node forwards the publisher's frames unchanged, so the viewer's keyframes sit where the
    publisher's do (index ≡ 0 mod KEYFRAME_INTERVAL): that fixes K modulo the interval, and the
    one-way delay (median between 0 and 1 s) fixes the rest. None if that does not work (the
    baseline re-encodes, so its keyframes are elsewhere).
    """
    keys: list[int] = viewer["video_keys"]
    at: list[float] = viewer["video_at"]
    relative: list[int] = [round(pts / VIDEO_STEP) for pts in viewer["video_pts"]]
    if not keys or not sent:
        return None
    residue = -relative[keys[0]] % KEYFRAME_INTERVAL
    if any((relative[j] + residue) % KEYFRAME_INTERVAL for j in keys):
        return None
    lowest = min(sent) - max(relative)
    offset = residue + KEYFRAME_INTERVAL * ((lowest - residue) // KEYFRAME_INTERVAL)
    while offset <= max(sent) - min(relative):
        delays = [
            a - sent[r + offset] for a, r in zip(at, relative, strict=True) if r + offset in sent
        ]
        if len(delays) > len(relative) // 2 and 0 <= statistics.median(delays) < 1.0:
            return offset
        offset += KEYFRAME_INTERVAL
    return None


def count_frames(
    phase: Phase,
    start: CpuSample,
    end: CpuSample,
    worker_results: list[dict[str, Any]],
    publisher_result: dict[str, Any],
) -> None:
    """Frames each viewer got of those the publisher sent in the window, and the first frame."""
    t0, t1 = start.at, end.at
    sent = {int(index): at for index, at in publisher_result.get("video_sent", [])}
    phase.frames_sent = sum(1 for at in sent.values() if t0 <= at <= t1)
    # Frame by frame (node): the frames sent in the window shifted LATE_MARGIN earlier, so that
    # each had LATE_MARGIN to arrive before the viewers stop; later ones count as lost.
    expected = {k for k, at in sent.items() if t0 - LATE_MARGIN <= at <= t1 - LATE_MARGIN}
    phase.keyframe_requests = int(publisher_result.get("keyframe_requests", 0))
    seen = 0
    for result in worker_results:
        for viewer in result.get("viewers", []):
            seen += 1
            phase.audio_received += viewer["audio_frames"]
            pairs = list(zip(viewer["video_at"], viewer["video_pts"], strict=True))
            offset = align(viewer, sent)
            if offset is not None:
                got = {round(pts / VIDEO_STEP) + offset: at for at, pts in pairs}
                phase.frames_received.append(len(expected & got.keys()))
                phase.frames_expected.append(len(expected))
                phase.delay_ms += [1000 * (got[k] - sent[k]) for k in expected & got.keys()]
            else:
                # By count (baseline): frames arrived in the window vs frames sent in it; the
                # window's edges make this ±1 frame per viewer.
                phase.frames_received.append(sum(1 for at, _ in pairs if t0 <= at <= t1))
                phase.frames_expected.append(phase.frames_sent)
                phase.counted_only += 1
            in_window = [pts for at, pts in pairs if t0 <= at <= t1]
            for previous, pts in itertools.pairwise(in_window):
                phase.frame_gaps += max(0, round((pts - previous) / VIDEO_STEP) - 1)
            if viewer["first_frame_at"] is None:
                phase.without_frames += 1
                continue
            phase.first_frame_ms.append(1000 * (viewer["first_frame_at"] - viewer["started_at"]))
            if viewer["answered_at"] is not None and viewer["connected_at"] is not None:
                steps = (
                    viewer["started_at"],
                    viewer["answered_at"],
                    viewer["connected_at"],
                    viewer["first_frame_at"],
                )
                phase.signaling_ms.append(1000 * (steps[1] - steps[0]))
                phase.connecting_ms.append(1000 * (steps[2] - steps[1]))
                phase.after_connect_ms.append(1000 * (steps[3] - steps[2]))
    # A worker that died reports nothing: its viewers count as having received nothing.
    phase.frames_received += [0] * (phase.viewers - seen)
    phase.frames_expected += [phase.frames_sent] * (phase.viewers - seen)
    phase.without_frames += phase.viewers - seen


def describe(phase: Phase, packets_per_second: float) -> str:
    """Human-readable figures of one phase (stderr)."""
    per_packet = 1e4 * phase.marginal_cpu_per_viewer_pct / packets_per_second
    by = "by count" if phase.counted_only else "frame by frame"
    lines = [
        f"{phase.kind} N={phase.viewers}: server {phase.server_cpu_pct:.1f} % of a core "
        f"({phase.server_sys_pct:.1f} % in the kernel; publisher only: "
        f"{phase.server_base_cpu_pct:.1f} %); per viewer "
        f"{phase.cpu_per_viewer_pct:.2f} %, marginal {phase.marginal_cpu_per_viewer_pct:.2f} % "
        f"= {per_packet:.1f} µs per packet; est. {phase.viewers_per_core_est:.0f} viewers/core",
        f"  frames: loss {phase.frame_loss_pct:.2f} % ({by}), RTP gaps "
        f"{phase.frame_gaps_pct:.2f} %, {phase.frames_sent} sent in the window; delay p50 "
        f"{percentile(phase.delay_ms, 0.5):.0f} ms, p99 {percentile(phase.delay_ms, 0.99):.0f} ms"
        + (f"; VIEWERS WITHOUT FRAMES: {phase.without_frames}" if phase.without_frames else ""),
        f"  first frame p50 {phase.first_frame(0.5):.0f} ms, p95 {phase.first_frame(0.95):.0f} ms"
        f" (p50 of its parts: signaling {percentile(phase.signaling_ms, 0.5):.0f} ms, ICE+DTLS "
        f"{percentile(phase.connecting_ms, 0.5):.0f} ms, connected to first frame "
        f"{percentile(phase.after_connect_ms, 0.5):.0f} ms); keyframe requests at the publisher "
        f"{phase.keyframe_requests}",
        f"  CPU elsewhere: viewers {phase.clients_cpu_pct:.1f} %, publisher "
        f"{phase.publisher_cpu_pct:.1f} %; machine busy {phase.machine_busy_pct:.0f} % of "
        f"{100 * (os.cpu_count() or 1)} %, of which {phase.other_load_pct:.0f} % not this bench"
        + (" (BUSY MACHINE: figures disturbed)" if phase.other_load_pct > 25 else ""),
        f"  memory: server RSS {phase.server_rss_base_mib:.1f} MiB with no viewer, "
        f"{phase.server_rss_mib:.1f} MiB with {phase.viewers}: "
        f"{phase.rss_per_viewer_mib:.2f} MiB per viewer",
    ]
    return "\n".join(lines)


def summary(
    node: Phase, baseline: Phase | None, packets_per_second: float, floor_us: float
) -> dict[str, Any]:
    def r(value: float, digits: int = 2) -> float | None:
        return None if math.isnan(value) or math.isinf(value) else round(value, digits)

    baseline_per_viewer = baseline.cpu_per_viewer_pct if baseline else math.nan
    per_packet = 1e4 * node.marginal_cpu_per_viewer_pct / packets_per_second
    return {
        "viewers": node.viewers,
        "cpu_per_viewer_pct": r(node.cpu_per_viewer_pct, 3),
        "baseline_cpu_per_viewer_pct": r(baseline_per_viewer),
        "ratio": r(baseline_per_viewer / node.cpu_per_viewer_pct, 1),
        "viewers_per_core_est": r(node.viewers_per_core_est, 0),
        "frame_loss_pct": r(node.frame_loss_pct),
        "first_frame_ms_p50": r(node.first_frame(0.5), 0),
        "first_frame_ms_p95": r(node.first_frame(0.95), 0),
        "seconds": r(node.seconds, 1),
        "server_cpu_pct": r(node.server_cpu_pct, 1),
        "server_base_cpu_pct": r(node.server_base_cpu_pct, 1),
        "server_sys_pct": r(node.server_sys_pct, 1),
        "marginal_cpu_per_viewer_pct": r(node.marginal_cpu_per_viewer_pct, 3),
        "us_per_packet_marginal": r(per_packet, 1),
        "floor_us_per_packet": r(floor_us, 2),
        "x_floor": r(per_packet / floor_us, 2),
        "server_rss_base_mib": r(node.server_rss_base_mib, 1),
        "server_rss_mib": r(node.server_rss_mib, 1),
        "rss_per_viewer_mib": r(node.rss_per_viewer_mib, 3),
        "frame_gaps_pct": r(node.frame_gaps_pct),
        "frame_delay_ms_p50": r(percentile(node.delay_ms, 0.5), 0),
        "frame_delay_ms_p99": r(percentile(node.delay_ms, 0.99), 0),
        "clients_cpu_pct": r(node.clients_cpu_pct, 1),
        "machine_busy_pct": r(node.machine_busy_pct, 1),
        "other_load_pct": r(node.other_load_pct, 1),
        "baseline_viewers": baseline.viewers if baseline else 0,
        "baseline_frame_loss_pct": r(baseline.frame_loss_pct) if baseline else None,
    }


def prepare_clip(work: Path) -> tuple[Path, float]:
    """Encode the clip into WORK/clip.bin; its path and RTP packets per viewer-second."""
    started = time.monotonic()
    clip = encode_clip()
    clip_path = work / "clip.bin"
    save_clip(clip, clip_path)
    packets = packets_per_viewer_second(clip)
    log(
        f"clip: {WIDTH}x{HEIGHT} {FPS} fps VP8 {clip.video_bitrate / 1e6:.2f} Mbit/s, "
        f"keyframe every {len(clip.video) // clip.keyframes} frames, + Opus; "
        f"{packets:.0f} RTP packets per viewer-second; encoded in "
        f"{time.monotonic() - started:.1f} s"
    )
    log(f"machine: {os.cpu_count()} cores; aiortc {aiortc.__version__}, av {av.__version__}")
    return clip_path, packets


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lampio-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        clip_path, packets = prepare_clip(work)
        floor = await measure_floor(work)
        log(
            f"floor: SRTP protect + sendto of a {floor['size']}-byte packet "
            f"{floor['us_per_packet']:.2f} µs (rounds {floor['rounds_us']})"
        )
        phases: list[Phase] = []
        sizes = [n for n in args.sweep if n != args.viewers] + [args.viewers]
        for size in sizes:
            profile = Path(args.profile) if args.profile and size == args.viewers else None
            phase = await run_phase("node", size, args, clip_path, work, profile)
            log(describe(phase, packets))
            phases.append(phase)
            if phase.profile and profile is not None:
                log(
                    report(
                        load_profile(profile),
                        phase.server_cpu_seconds,
                        # packets per viewer-second × viewer-seconds actually delivered
                        packets * phase.seconds * phase.viewers * (1 - phase.frame_loss_pct / 100),
                    )
                )
        baseline = None
        if args.baseline_viewers > 0:
            baseline = await run_phase(
                "baseline", args.baseline_viewers, args, clip_path, work, None
            )
            log(describe(baseline, packets))
        log(
            f"total {time.monotonic() - started:.0f} s" + (f"; logs in {work}" if args.keep else "")
        )
        return summary(phases[-1], baseline, packets, floor["us_per_packet"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=24, help="viewers of the node (24)")
    parser.add_argument("--seconds", type=float, default=10, help="measured window (10 s)")
    parser.add_argument(
        "--baseline-viewers", type=int, default=2, help="MediaRelay viewers (2; 0 skips it)"
    )
    parser.add_argument(
        "--workers", type=int, default=4, help="viewer worker processes per phase (4)"
    )
    parser.add_argument(
        "--join-spread",
        type=float,
        default=2.0,
        help="viewers join evenly over this many seconds (2 s: two keyframe intervals)",
    )
    parser.add_argument(
        "--sweep",
        type=lambda text: [int(n) for n in text.split(",") if n],
        default=[],
        help="also measure the node with these viewer counts first, e.g. 8,16 (table only)",
    )
    parser.add_argument(
        "--profile",
        default="",
        help="py-spy raw profile of the node during the --viewers window, written here",
    )
    parser.add_argument(
        "--media-sender",
        choices=["direct", "aiortc"],
        default="direct",
        help="the node's send path (--media-sender of lampio-stream serve; default direct)",
    )
    parser.add_argument(
        "--event-loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="the node's event loop (--event-loop of lampio-stream serve; default asyncio)",
    )
    parser.add_argument("--keep", default="", help="keep logs and the clip in this directory")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this (600 s)")
    args = parser.parse_args(argv)
    if args.viewers < 1 or args.seconds <= 0 or args.workers < 1 or args.baseline_viewers < 0:
        parser.error("viewers, seconds and workers must be positive")
    return args


def main() -> None:
    args = parse_args()
    log(f"{platform.node()}: fan-out bench, {args.viewers} viewers, {args.seconds:g} s window")

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(args.timeout):
            return await main_async(args)

    result = asyncio.run(bounded())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
