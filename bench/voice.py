"""Lobby voice: server CPU per forwarded voice packet, direct output vs aiortc's sender.

Lobbies of members talk at once (a few speakers each, everyone listening); the node forwards each
speaker's Opus to every other member of the lobby. The same load runs against a node that sends
through aiortc's own sender (``--media-sender aiortc``), the baseline, in the same run. Figures to
stderr; the last stdout line is the JSON summary.

    .venv/bin/python bench/voice.py --lobbies 4 --members 6 --speakers 3 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _procs import REPO_DIR, Child, cpu_between, python_argv, sample_cpu
from fanout import create_show, server_argv, wait_until_serving

sys.path.insert(0, str(REPO_DIR))  # tests/ of this checkout
from tests.redis_server import free_port


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def measure(args: argparse.Namespace, sender: str, log_dir: Path) -> dict[str, Any]:
    """One node with this sender under the voice load: its CPU and the frames that arrived."""
    port, key = free_port(), secrets.token_urlsafe(24)
    argv = [*server_argv(port, key, sender), "--lobby-size", str(args.members)]
    argv += ["--rtmp-port", "off"]
    node = await Child.start(f"node-{sender}", argv, log_dir)
    members: Child | None = None
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_until_serving(url)
        show = await create_show(url, key)
        members = await Child.start(
            f"members-{sender}",
            python_argv(
                "_voice_members.py",
                *("--url", url, "--code", show["code"]),
                *("--lobbies", str(args.lobbies), "--members", str(args.members)),
                *("--speakers", str(args.speakers), "--max-seconds", str(args.seconds + 120)),
            ),
            log_dir,
        )
        await members.event("joined", timeout=120)
        await asyncio.sleep(2.0)  # every voice connected and sending
        before = sample_cpu({"node": node.pid})
        await asyncio.sleep(args.seconds)
        after = sample_cpu({"node": node.pid})
        members.send("stop")
        result = await members.event("result", timeout=30)
    finally:
        if members is not None:
            await members.stop()
        await node.stop(terminate=True)
    use = cpu_between(before, after)
    cpu_pct = use.pct("node")
    expected = args.lobbies * args.speakers * (args.members - 1) * 50  # Opus: 50 frames a second
    seconds = after.at - before.at
    return {
        "cpu_pct": round(cpu_pct, 1),
        "expected_packets_per_s": expected,
        "us_per_packet": round(cpu_pct / 100 * 1e6 / expected, 1),
        "frames_received": sum(result["frames"]),
        "window_s": round(seconds, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="voice-bench-") as tmp:
        log_dir = Path(args.keep) if args.keep else Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        results = {}
        for sender in ("direct", "aiortc"):
            started = time.monotonic()
            results[sender] = await measure(args, sender, log_dir)
            log(f"{sender}: {results[sender]} ({time.monotonic() - started:.0f} s)")
    direct, baseline = results["direct"], results["aiortc"]
    return {
        "lobbies": args.lobbies,
        "members": args.lobbies * args.members,
        "speakers": args.lobbies * args.speakers,
        "packets_per_s": direct["expected_packets_per_s"],
        "direct_cpu_pct": direct["cpu_pct"],
        "direct_us_per_packet": direct["us_per_packet"],
        "aiortc_cpu_pct": baseline["cpu_pct"],
        "aiortc_us_per_packet": baseline["us_per_packet"],
        "ratio": round(baseline["cpu_pct"] / direct["cpu_pct"], 2) if direct["cpu_pct"] else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lobbies", type=int, default=4)
    parser.add_argument("--members", type=int, default=6, help="per lobby (at most 13)")
    parser.add_argument("--speakers", type=int, default=3, help="per lobby, talking at once")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--keep", help="keep the processes' logs in this directory")
    args = parser.parse_args()
    if not 2 <= args.members <= 13 or not 1 <= args.speakers <= args.members:
        parser.error("2–13 members per lobby, 1 to all of them speaking")

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(600):
            return await main_async(args)

    print(json.dumps(asyncio.run(bounded())))


if __name__ == "__main__":
    main()
