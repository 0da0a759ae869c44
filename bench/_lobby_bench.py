"""What bench/voice.py and bench/cameras.py share: one node per sender (the direct output, then
aiortc's own sender as the baseline, in the same run) under a load of lobby members in one worker
process (``_voice_members.py`` or ``_camera_members.py``), measured twice: with every connection
up and nothing sent (idle), then with the microphones or cameras on; the marginal CPU per
forwarded packet is the difference over the packets forwarded a second."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _procs import REPO_DIR, Child, cpu_between, python_argv, sample_cpu
from _profile import load_profile, report
from fanout import create_show, server_argv, start_profiler, wait_until_serving

sys.path.insert(0, str(REPO_DIR))  # tests/ of this checkout
from tests.redis_server import free_port


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Load:
    """One bench's load: its members' script and arguments, and how many packets a second the
    node forwards once they are on (from the members' ``joined`` event)."""

    name: str  # what goes on: "microphones", "cameras"
    script: str
    argv: list[str]
    lobby_size: int
    packets_per_second: Callable[[dict[str, Any]], float]
    frames_per_second: float  # frames the members should count a second, all told


async def measure(
    args: argparse.Namespace, load: Load, sender: str, log_dir: Path
) -> dict[str, Any]:
    """One node with this sender under the load: its CPU idle and on, the frames that arrived."""
    port, key = free_port(), secrets.token_urlsafe(24)
    argv = [*server_argv(port, key, sender), "--lobby-size", str(load.lobby_size)]
    argv += ["--rtmp-port", "off"]
    node = await Child.start(f"node-{sender}", argv, log_dir)
    members: Child | None = None
    profile = Path(args.profile).with_suffix(f".{sender}.txt") if args.profile else None
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_until_serving(url)
        show = await create_show(url, key)
        members = await Child.start(
            f"members-{sender}",
            python_argv(
                load.script, "--url", url, "--code", show["code"], *load.argv,
                "--max-seconds", str(args.seconds * 2 + 180),
            ),
            log_dir,
        )  # fmt: skip
        joined = await members.event("joined", timeout=180)
        await asyncio.sleep(2.0)  # every connection up, nothing on
        idle0 = sample_cpu({"node": node.pid})
        await asyncio.sleep(args.seconds / 2)
        idle1 = sample_cpu({"node": node.pid})
        members.send("on")
        await members.event("on", timeout=60)
        await asyncio.sleep(2.0)  # everything on and flowing
        spy = await start_profiler(node.pid, args.seconds, profile) if profile else None
        before = sample_cpu({"node": node.pid})
        await asyncio.sleep(args.seconds)
        after = sample_cpu({"node": node.pid})
        if spy is not None:
            await spy.wait()
        members.send("stop")
        result = await members.event("result", timeout=30)
    finally:
        if members is not None:
            await members.stop()
        await node.stop(terminate=True)
    idle_pct = cpu_between(idle0, idle1).pct("node")
    cpu_pct = cpu_between(before, after).pct("node")
    seconds = after.at - before.at
    expected = round(load.packets_per_second(joined))
    if profile is not None and profile.exists():
        summary = report(load_profile(profile), cpu_pct / 100 * seconds, expected * seconds)
        log(f"{sender} profile ({profile}):\n{summary}")
    return {
        "cpu_pct": round(cpu_pct, 1),
        "idle_cpu_pct": round(idle_pct, 1),  # every connection up, nothing on
        "expected_packets_per_s": expected,
        "us_per_packet": round(cpu_pct / 100 * 1e6 / expected, 1),
        "us_per_packet_marginal": round((cpu_pct - idle_pct) / 100 * 1e6 / expected, 1),
        "frames_per_s": round(sum(result["frames"]) / float(result["seconds"]), 1),
        "frames_per_s_expected": round(load.frames_per_second, 1),
        "window_s": round(seconds, 2),
    }


async def compare(args: argparse.Namespace, load: Load) -> dict[str, Any]:
    """Both senders in turn; the summary of the two."""
    with tempfile.TemporaryDirectory(prefix=f"{load.name}-bench-") as tmp:
        log_dir = Path(args.keep) if args.keep else Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        results = {}
        for sender in ("direct", "aiortc"):
            started = time.monotonic()
            results[sender] = await measure(args, load, sender, log_dir)
            log(f"{sender}: {results[sender]} ({time.monotonic() - started:.0f} s)")
    direct, baseline = results["direct"], results["aiortc"]
    return {
        "packets_per_s": direct["expected_packets_per_s"],
        **{f"direct_{k}": v for k, v in direct.items() if k != "expected_packets_per_s"},
        **{f"aiortc_{k}": v for k, v in baseline.items() if k != "expected_packets_per_s"},
        "ratio": round(baseline["cpu_pct"] / direct["cpu_pct"], 2) if direct["cpu_pct"] else None,
    }


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--keep", help="keep the processes' logs in this directory")
    parser.add_argument("--profile", help="py-spy the node while all is on (PATH.<sender>.txt)")


def run(args: argparse.Namespace, load: Load, summary: dict[str, Any]) -> None:
    """Measure, bounded in time; the JSON summary as the last stdout line."""

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(900):
            return await compare(args, load)

    print(json.dumps({**summary, **asyncio.run(bounded())}))
