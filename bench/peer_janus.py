"""A C server side by side: CPU per forwarded RTP packet, Janus's streaming plugin vs the node.

    .venv/bin/python bench/peer_janus.py --viewers 24 --seconds 10

One run, every part its own process, loopback only:

1. encode the fan-out bench's clip (bench/_stream.py: 1280×720 30 fps VP8, ~1.5 Mbit/s, + Opus)
   and measure the per-packet floor (SRTP protect + sendto, bench/_floor.py);
2. Janus phase: Janus Gateway (Debian's ``janus``, installed with apt-get if missing) with only
   its streaming plugin and HTTP transport, one mountpoint of type "rtp" fed by
   bench/_rtp_source.py (the clip's VP8 frames and Opus packets as plain RTP, cut by aiortc's
   packetiser as the node cuts them), N aiortc viewers (bench/_viewer.py --mode janus) watching it
   through Janus's HTTP API;
3. node phase: bench/fanout.py's node phase with the same N (``fanout.run_phase``).

Each phase measures the server's CPU (utime + stime from /proc, all threads) with the source
alone and over a window with N viewers; the marginal cost per packet is (CPU with N − CPU with
none) / (N × packets per viewer-second). See bench/README.md. The last line is the JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from _janus import (
    MOUNTPOINT,
    build_shim,
    ensure_installed,
    free_port,
    inet_sockets,
    janus_version,
    wait_until_serving,
    write_config,
)
from _procs import Child, python_argv
from fanout import (
    Phase,
    describe,
    helper_budget,
    log,
    measure_floor,
    measure_phase,
    percentile,
    prepare_clip,
    run_phase,
)


class SocketWatch:
    """Samples a process's TCP/UDP sockets and thread count while it runs: every local address
    it bound (the bench is loopback only) and the most threads seen."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.addresses: set[str] = set()
        self.max_threads = 0
        self.max_sockets = 0

    def sample(self) -> None:
        sockets = inet_sockets(self.pid)
        self.addresses.update(address for _, address, _ in sockets)
        self.max_sockets = max(self.max_sockets, len(sockets))
        with contextlib.suppress(OSError):
            self.max_threads = max(self.max_threads, len(os.listdir(f"/proc/{self.pid}/task")))

    def check(self) -> None:
        """RuntimeError if the process bound anything but 127.0.0.1."""
        self.sample()
        outside = self.addresses - {"127.0.0.1"}
        if outside:
            raise RuntimeError(f"janus bound addresses off loopback: {sorted(outside)}")

    async def run(self) -> None:
        while True:
            self.check()
            await asyncio.sleep(0.5)


def udp_ports(count: int) -> list[int]:
    """Distinct free UDP ports on 127.0.0.1."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(socket.SOCK_DGRAM)
        if port not in ports:
            ports.append(port)
    return ports


async def run_janus_phase(
    viewers: int, args: argparse.Namespace, clip_path: Path, work: Path, janus: str
) -> tuple[Phase, SocketWatch]:
    """Janus, its RTP source and N viewers; the phase's figures and what Janus bound."""
    phase = Phase("janus", viewers)
    children: list[Child] = []
    budget = helper_budget(viewers, args.seconds)
    conf = work / "janus"
    conf.mkdir(parents=True, exist_ok=True)
    http_port = free_port(socket.SOCK_STREAM)
    video_port, audio_port = udp_ports(2)
    config = write_config(conf, http_port, video_port, audio_port, args.janus_event_loops)
    shim = build_shim(conf)
    watcher: asyncio.Task[None] | None = None
    try:
        # -N -L: Janus logs to a file rather than to stdout; -o: no colours in it.
        argv = [janus, "-C", str(config), "-F", str(conf), "-N", "-L", str(work / "janus.log")]
        server = await Child.start(
            "janus-server", [*argv, "-o"], work, env={"LD_PRELOAD": str(shim)}
        )
        children.append(server)
        url = f"http://127.0.0.1:{http_port}/janus"
        version = await wait_until_serving(url, server.process, 30)
        watch = SocketWatch(server.pid)
        watch.check()
        watcher = asyncio.get_running_loop().create_task(watch.run())
        source = await Child.start(
            "janus-rtp-source",
            python_argv(
                "_rtp_source.py",
                "--clip",
                str(clip_path),
                f"--video-port={video_port}",
                f"--audio-port={audio_port}",
                "--max-seconds",
                str(budget),
            ),
            work,
        )
        children.append(source)
        await source.event("publishing", timeout=30)
        log(f"  janus {version}: HTTP API at {url}, mountpoint {MOUNTPOINT} on UDP {video_port}")
        viewer_args = [f"--mountpoint={MOUNTPOINT}"]
        await measure_phase(phase, server, source, url, viewer_args, args, work, None, children)
        watch.check()
        return phase, watch
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await watcher
        for child in reversed(children):
            await child.stop(15, terminate=child.name.endswith("server"))


def per_packet_us(phase: Phase, packets_per_second: float) -> float:
    """Marginal server CPU per packet sent to a viewer, µs."""
    return 1e4 * phase.marginal_cpu_per_viewer_pct / packets_per_second


def cpu_model() -> str:
    """The CPU's model name (what ``lscpu`` calls it), from /proc/cpuinfo."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def summary(
    janus: Phase,
    ours: Phase,
    watch: SocketWatch,
    packets_per_second: float,
    floor_us: float,
    version: str,
    janus_event_loops: int,
) -> dict[str, Any]:
    def r(value: float, digits: int = 2) -> float | None:
        return None if math.isnan(value) or math.isinf(value) else round(value, digits)

    janus_us = per_packet_us(janus, packets_per_second)
    ours_us = per_packet_us(ours, packets_per_second)
    return {
        "viewers": janus.viewers,
        "janus_us_per_packet_marginal": r(janus_us, 1),
        "ours_us_per_packet_marginal": r(ours_us, 1),
        "ratio_ours_over_janus": r(ours_us / janus_us if janus_us > 0 else math.nan),
        "janus_frame_loss_pct": r(janus.frame_loss_pct),
        "floor_us_per_packet": r(floor_us, 2),
        "ours_frame_loss_pct": r(ours.frame_loss_pct),
        "janus_x_floor": r(janus_us / floor_us),
        "ours_x_floor": r(ours_us / floor_us),
        "packets_per_viewer_second": r(packets_per_second, 1),
        "seconds": r(janus.seconds, 1),
        "janus_server_cpu_pct": r(janus.server_cpu_pct, 1),
        "janus_base_cpu_pct": r(janus.server_base_cpu_pct, 1),
        "janus_sys_pct": r(janus.server_sys_pct, 1),
        "ours_server_cpu_pct": r(ours.server_cpu_pct, 1),
        "ours_base_cpu_pct": r(ours.server_base_cpu_pct, 1),
        "ours_sys_pct": r(ours.server_sys_pct, 1),
        "janus_frame_gaps_pct": r(janus.frame_gaps_pct),
        "janus_frame_delay_ms_p50": r(percentile(janus.delay_ms, 0.5), 0),
        "ours_frame_delay_ms_p50": r(percentile(ours.delay_ms, 0.5), 0),
        "janus_first_frame_ms_p50": r(janus.first_frame(0.5), 0),
        "ours_first_frame_ms_p50": r(ours.first_frame(0.5), 0),
        "janus_rss_per_viewer_mib": r(janus.rss_per_viewer_mib, 3),
        "ours_rss_per_viewer_mib": r(ours.rss_per_viewer_mib, 3),
        "janus_threads": watch.max_threads,
        "janus_event_loops": janus_event_loops,
        "janus_version": version,
        "janus_other_load_pct": r(janus.other_load_pct, 1),
        "ours_other_load_pct": r(ours.other_load_pct, 1),
        "machine": f"{os.cpu_count()} × {cpu_model()}",
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    janus = ensure_installed()
    version = janus_version(janus)
    with tempfile.TemporaryDirectory(prefix="lampio-janus-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        clip_path, packets = prepare_clip(work)
        floor = await measure_floor(work)
        log(
            f"floor: SRTP protect + sendto of a {floor['size']}-byte packet "
            f"{floor['us_per_packet']:.2f} µs (rounds {floor['rounds_us']})"
        )
        janus_phase, watch = await run_janus_phase(args.viewers, args, clip_path, work, janus)
        log(describe(janus_phase, packets))
        log(
            f"  janus: {watch.max_threads} threads, {watch.max_sockets} sockets at most, "
            f"bound only {sorted(watch.addresses)}"
        )
        ours = await run_phase("node", args.viewers, args, clip_path, work, None)
        log(describe(ours, packets))
        log(
            f"total {time.monotonic() - started:.0f} s" + (f"; logs in {work}" if args.keep else "")
        )
        loops = args.janus_event_loops
        return summary(janus_phase, ours, watch, packets, floor["us_per_packet"], version, loops)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=24, help="viewers of each server (24)")
    parser.add_argument("--seconds", type=float, default=10, help="measured window (10 s)")
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
        "--janus-event-loops",
        type=int,
        default=0,
        help="Janus's event_loops (0, its default: one thread per PeerConnection)",
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
    if args.viewers < 1 or args.seconds <= 0 or args.workers < 1 or args.janus_event_loops < 0:
        parser.error("viewers, seconds and workers must be positive")
    return args


def main() -> None:
    args = parse_args()
    log(f"{platform.node()}: Janus side by side, {args.viewers} viewers, {args.seconds:g} s window")

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(args.timeout):
            return await main_async(args)

    result = asyncio.run(bounded())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
