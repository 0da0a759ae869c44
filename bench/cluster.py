"""Cluster benchmark: one show on several nodes, the performer on the first (the origin).

    .venv/bin/python bench/cluster.py --nodes 3 --viewers 24 --seconds 10

Every part its own process, loopback only: a real redis-server; ``--nodes`` real ``lampio-stream
serve`` processes on it with one cluster secret; the fan-out bench's publisher looping its clip
into node 0; viewers split evenly over the nodes (one worker process per node, counting whole
frames without decoding, as in bench/fanout.py). The others pull the show from node 0 once each
(docs/scaling.md). Measured over a window of ``--seconds`` once every viewer has a frame: each
node's CPU beyond its cost with the publisher alone, per viewer on it; the origin's streams to other
nodes (``lampio_feeds_out``); frame loss; the frame delay of viewers on the edges beyond that of
viewers on the origin (the hop). The last line printed is the JSON summary; chat, reactions and
failover across nodes are measured by the suite (tests/test_cascade.py, tests/test_haproxy.py)
and are ``null`` here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _procs import REPO_DIR, Child, cpu_between, python_argv, sample_cpu
from fanout import (
    SETTLE_SECONDS,
    Phase,
    count_frames,
    create_show,
    helper_budget,
    log,
    percentile,
    prepare_clip,
    results_of,
    server_argv,
    wait_first_frames,
    wait_until_serving,
)

sys.path.insert(0, str(REPO_DIR))  # tests/ of this checkout
from tests.redis_server import RedisServer, free_port

BASE_SECONDS = 3.0  # the publisher alone: every node's fixed cost


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, flags=re.MULTILINE)
    return float(found.group(1)) if found else float("nan")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lampio-cluster-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clip_path, packets = prepare_clip(work)
        redis = RedisServer()
        redis.start()
        children: list[Child] = []
        try:
            return await run(args, work, clip_path, packets, redis, children)
        finally:
            for child in reversed(children):
                await child.stop(15, terminate=child.name.startswith("node"))
            redis.close()


async def run(
    args: argparse.Namespace,
    work: Path,
    clip_path: Path,
    packets: float,
    redis: RedisServer,
    children: list[Child],
) -> dict[str, Any]:
    key, secret = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    urls: list[str] = []
    nodes: list[Child] = []
    for number in range(args.nodes):
        port = free_port()
        argv = [*server_argv(port, key, "direct"), f"--redis-url={redis.url}"]
        argv.append(f"--cluster-secret={secret}")
        node = await Child.start(f"node-{number}", argv, work)
        children.append(node)
        nodes.append(node)
        urls.append(f"http://127.0.0.1:{port}")
    for url in urls:
        await wait_until_serving(url)
    show = await create_show(urls[0], key)
    budget = helper_budget(args.viewers, args.seconds)
    publisher = await Child.start(
        "publisher",
        python_argv(
            "_publisher.py",
            "--mode=node",
            f"--url={urls[0]}",
            f"--clip={clip_path}",
            f"--max-seconds={budget}",
            f"--show={show['id']}",
            f"--token={show['performer_token']}",
        ),
        work,
    )
    children.append(publisher)
    await publisher.event("publishing", timeout=30)
    pids = {f"node-{n}": node.pid for n, node in enumerate(nodes)} | {"publisher": publisher.pid}
    await asyncio.sleep(1.0)
    before = sample_cpu(pids)
    await asyncio.sleep(BASE_SECONDS)
    base = cpu_between(before, sample_cpu(pids))

    workers: list[tuple[Child, int]] = []
    for number, url in enumerate(urls):
        indices = list(range(number, args.viewers, args.nodes))
        if not indices:
            continue
        worker = await Child.start(
            f"viewers-{number}",
            python_argv(
                "_viewer.py",
                "--mode=node",
                f"--url={url}",
                f"--code={show['code']}",
                f"--indices={','.join(map(str, indices))}",
                f"--max-seconds={budget}",
            ),
            work,
        )
        children.append(worker)
        workers.append((worker, len(indices)))
        pids[f"viewers-{number}"] = worker.pid
    for worker, _ in workers:
        await worker.event("ready", timeout=60)
    go = time.monotonic() + 0.2
    for worker, _ in workers:
        worker.send(f"go {go} {args.join_spread / args.viewers}")
    log(f"{args.viewers} viewers over {args.nodes} nodes, joining over {args.join_spread:g} s")
    await wait_first_frames(workers, timeout=30 + 1.5 * args.viewers)
    await asyncio.sleep(SETTLE_SECONDS)
    start = sample_cpu(pids)
    await asyncio.sleep(args.seconds)
    end = sample_cpu(pids)
    use = cpu_between(start, end)
    feeds_out = await metric(urls[0], "lampio_feeds_out")
    viewers_by_node = [await metric(url, "lampio_viewers") for url in urls]
    for worker, _ in workers:
        worker.send("stop")
    publisher.send("stop")
    results = [await results_of(worker) for worker, _ in workers]
    sent = await results_of(publisher)

    phases: list[Phase] = []
    for (_worker, count), result in zip(workers, results, strict=True):
        phase = Phase("node", count)
        count_frames(phase, start, end, [result], sent)
        phases.append(phase)
    cpu_per_viewer = []
    for n in range(args.nodes):
        name = f"node-{n}"
        count = len(range(n, args.viewers, args.nodes))
        extra = use.pct(name) - base.pct(name)
        cpu_per_viewer.append(round(extra / count, 3) if count else None)
        log(
            f"node {n}{' (origin)' if n == 0 else ''}: {count} viewers, CPU {use.pct(name):.1f} % "
            f"({base.pct(name):.1f} % with the publisher alone)"
        )
    origin_delay = statistics.median(phases[0].delay_ms) if phases[0].delay_ms else float("nan")
    edge_delays = [d for phase in phases[1:] for d in phase.delay_ms]
    edge_delay = statistics.median(edge_delays) if edge_delays else float("nan")
    received = sum(sum(p.frames_received) for p in phases)
    expected = sum(sum(p.frames_expected) for p in phases)
    ours = sum(use.pct(name) for name in pids)
    return {
        "nodes": args.nodes,
        "viewers": args.viewers,
        "viewers_by_node": viewers_by_node,
        "origin_streams_out": feeds_out,
        "cpu_per_viewer_pct_by_node": cpu_per_viewer,
        "edge_extra_latency_ms": round(edge_delay - origin_delay, 1),
        "frame_delay_ms_p50_origin": round(origin_delay, 1),
        "frame_delay_ms_p50_edges": round(edge_delay, 1),
        "frame_delay_ms_p99": round(percentile([d for p in phases for d in p.delay_ms], 0.99), 1),
        "frame_loss_pct": round(100 * (1 - received / expected), 2) if expected else None,
        "packets_per_viewer_second": round(packets, 1),
        "chat_p99_ms": None,
        "reaction_p99_ms": None,
        "failover_p95_s": None,
        "seconds": round(use.seconds, 1),
        "other_load_pct": round(max(0.0, use.machine_busy_pct - ours), 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=3, help="nodes on one Redis (3)")
    parser.add_argument("--viewers", type=int, default=24, help="viewers, split evenly (24)")
    parser.add_argument("--seconds", type=float, default=10, help="measured window (10 s)")
    parser.add_argument("--join-spread", type=float, default=2.0, help="joins over this (2 s)")
    parser.add_argument("--keep", default="", help="keep logs in this directory")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this (600 s)")
    args = parser.parse_args(argv)
    if args.nodes < 2 or args.viewers < args.nodes or args.seconds <= 0:
        parser.error("at least 2 nodes, a viewer per node, a positive window")
    return args


def main() -> None:
    args = parse_args()

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(args.timeout):
            return await main_async(args)

    print(json.dumps(asyncio.run(bounded())), flush=True)


if __name__ == "__main__":
    main()
