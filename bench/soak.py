"""Soak: viewers come and go for minutes; does the node give back what they took?

    .venv/bin/python bench/soak.py --viewers 300 --minutes 10      # the target run (~13 min)
    .venv/bin/python bench/soak.py                                 # make bench: 1 minute (~2.5 min)

One run, loopback only, every part its own process:

1. a real ``redis-server`` as the bus (``--bus memory`` for the in-process one) and the real
   ``lampio-stream serve --demo``: the demo performer publishes its test picture and chime from
   inside the node, as on any small installation; its show's code is read from the node's output;
2. viewers (``bench/_soak_viewers.py``, ``--workers`` processes) who join the show by its code,
   watch (``--media-viewers`` of them with real media, nothing decoded; the rest signaling only),
   chat, react, leave in one of four ways and come back, continuously;
3. the node's resident memory (VmRSS), its ``/metrics`` (WebSockets, peer connections, viewers,
   event-loop tasks, the in-process bus's keys) and, on Redis, the bus's keys, read at three
   points when nobody is connected: **cold** (the demo live, no viewer yet), **start** (after a
   ``--warmup`` of the same load and everyone gone: allocator arenas, caches and interned names
   have filled once) and **end** (after the soak and everyone gone).

Memory growth is end against start. Leaks: anything at end that is not back where it was cold —
peer connections, viewers, WebSockets, tasks, the bus's seats and lobbies — and any bus key with
no expiry. What the bus keeps by design with an expiry (lobby chat, its repeat ids, sessions) is
reported apart. The last line printed is the JSON summary; see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as redis
from _procs import REPO_DIR, Child, cpu_between, pin, python_argv, sample_cpu
from interaction import wait_until_serving

sys.path.insert(0, str(REPO_DIR))  # tests/ of this checkout
from tests.buskeys import NAMESPACE, keys_without_expiry
from tests.redis_server import RedisServer

# The bus's families that hold who sits where: back to where they were once everyone has left.
SEATING = ("members", "lobbies", "lobbycode")
# What the bus keeps by design after a visit, each with an expiry (docs/architecture.md).
KEPT_BY_DESIGN = {
    "chat": "lobby chat, --chat-retention (one day)",
    "chatid": "chat repeats, 10 minutes",
    "session": "a member's session, 12 hours",
    "ratelimit": "attempts under way per address, 1 minute",
    "ins": "the show's raw audience counts for its insight, a day",
}
SAMPLE_SECONDS = 10.0
# Other work on the machine beyond this (% of one core, over the soak) flags the run as disturbed,
# as in the fan-out bench: on 2 cores it takes the node's CPU, and errors and memory follow.
DISTURBED_PCT = 25.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resident_mb(pid: int) -> float:
    """VmRSS of a process, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_model() -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor()


def server_argv(port: int, redis_url: str | None) -> list[str]:
    script = Path(sys.executable).parent / "lampio-stream"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lampio_stream.cli"]
    return [
        *command,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ice-host",
        "127.0.0.1",
        "--demo",
        "--rtmp-port",
        "off",
        "--log-level",
        "warning",
        "--log-format",
        "json",
        *(["--redis-url", redis_url] if redis_url else []),
    ]


_SAMPLE = re.compile(r'^(lampio_[a-z_]+)(?:\{family="([^"]*)"\})? ([0-9.e+-]+)$')


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """The node's figures for leak checks, from its /metrics."""
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    figures: dict[str, Any] = {"bus_keys": {}}
    names = {
        "lampio_websocket_connections": "websockets",
        "lampio_peer_connections": "peers",
        "lampio_viewers": "viewers",
        "lampio_live_shows": "live_shows",
        "lampio_asyncio_tasks": "tasks",
    }
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, family, value = match.groups()
        if name == "lampio_bus_keys":
            figures["bus_keys"][family] = int(float(value))
        elif name in names:
            figures[names[name]] = int(float(value))
    return figures


def redis_family(key: str) -> str:
    """A Redis key's family as the in-process bus names it (a group's two keys by the group's)."""
    name = key.removeprefix(NAMESPACE)
    for prefix in ("group:", "group-expiry:"):
        if name.startswith(prefix):
            name = name.removeprefix(prefix)
    return name.partition(":")[0]


async def redis_keys(client: Any) -> dict[str, int]:
    held: Counter[str] = Counter()
    async for raw in client.scan_iter(count=1000):
        held[redis_family(raw.decode())] += 1
    return dict(sorted(held.items()))


@dataclass
class Snapshot:
    """The node with nobody connected."""

    at: float
    rss_mb: float
    figures: dict[str, Any]
    bus_keys: dict[str, int]
    settled_s: float


@dataclass
class Run:
    cold: Snapshot | None = None
    start: Snapshot | None = None
    end: Snapshot | None = None
    load_rss: list[tuple[float, float]] = field(default_factory=list)  # (s since go, MiB)
    load_samples: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    warmup_results: list[dict[str, Any]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    machine_busy_pct: float = 0.0
    soak_seconds: float = 0.0
    node_log: dict[str, Any] = field(default_factory=dict)
    node_exit: int | None = None
    pinned: bool = False


class Node:
    """The node under test, its bus and how to read them."""

    def __init__(self, child: Child, url: str, redis_client: Any) -> None:
        self.child, self.url, self.redis = child, url, redis_client
        self.http = aiohttp.ClientSession()

    async def bus_keys(self, figures: dict[str, Any]) -> dict[str, int]:
        if self.redis is not None:
            return await redis_keys(self.redis)
        return dict(sorted(figures["bus_keys"].items()))

    async def idle(self, expect: Snapshot | None, timeout: float) -> Snapshot:
        """Wait until nobody is connected (and, given ``expect``, until the peers, WebSockets and
        tasks are back to it), then one more second; the snapshot then."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            figures = await scrape(self.http, self.url)
            back = figures.get("viewers", 0) == 0
            if expect is not None:
                cold = expect.figures
                back = back and all(
                    figures.get(k) == cold.get(k) for k in ("websockets", "peers", "live_shows")
                )
                back = back and figures.get("tasks", 0) <= cold.get("tasks", 0)
            if back or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        settled = time.monotonic() - started
        await asyncio.sleep(1.0)
        figures = await scrape(self.http, self.url)
        return Snapshot(
            time.monotonic(),
            resident_mb(self.child.pid),
            figures,
            await self.bus_keys(figures),
            round(settled, 1),
        )

    async def close(self) -> None:
        await self.http.close()


async def demo_code(server: Child) -> tuple[str, str]:
    """The node's address and the demo show's code, from what it prints."""
    banner = await server.wait_text(lambda line: "is running at" in line, 30)
    found = re.search(r"(http://[^ ]+?)/?$", banner)
    if found is None:
        raise RuntimeError(f"cannot read the node's address from {banner!r}")
    line = await server.wait_text(lambda text: text.startswith("Demo show is on"), 30)
    code = re.search(r"code ([0-9 ]+) —", line)
    if code is None:
        raise RuntimeError(f"cannot read the demo's code from {line!r}")
    return found.group(1).rstrip("/"), code.group(1).replace(" ", "")


async def until_live(node: Node, timeout: float = 30) -> None:
    """Until the demo performer is on air (the node's metrics say so)."""
    deadline = time.monotonic() + timeout
    while (await scrape(node.http, node.url)).get("live_shows", 0) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo show was not live after {timeout:g} s")
        await asyncio.sleep(0.2)


def media_indices(viewers: int, media: int) -> set[int]:
    """Media viewers spread evenly over the audience (and so over the workers)."""
    return {round(k * viewers / media) for k in range(media)} if media else set()


def node_log_summary(path: Path) -> dict[str, Any]:
    """The node's log lines by level and, for warnings and errors, by event."""
    levels: Counter[str] = Counter()
    events: Counter[str] = Counter()
    other: list[str] = []
    with contextlib.suppress(OSError), open(path) as lines:
        for text in lines:
            try:
                entry = json.loads(text)
            except ValueError:
                if text.strip():
                    other.append(text.strip()[:200])
                continue
            level = str(entry.get("level", "?"))
            levels[level] += 1
            if level in ("warning", "error", "critical"):
                events[f"{level}:{entry.get('event')}"] += 1
    return {"levels": dict(levels), "events": dict(events), "not_json": other[:10]}


async def measure(args: argparse.Namespace, work: Path) -> Run:
    run = Run()
    redis_server = RedisServer() if args.bus == "redis" else None
    children: list[Child] = []
    node: Node | None = None
    redis_client: Any = None
    budget = args.warmup + 60 * args.minutes + 300  # every helper ends by itself after this
    try:
        if redis_server is not None:
            redis_server.start()
            redis_client = redis.Redis.from_url(redis_server.url)
        server = await Child.start(
            "server", server_argv(0, redis_server.url if redis_server else None), work
        )
        children.append(server)
        url, code = await demo_code(server)
        await wait_until_serving(url)
        node = Node(server, url, redis_client)
        await until_live(node)

        cores = sorted(os.sched_getaffinity(0))
        pinned = args.pin and len(cores) >= 2
        node_cores, load_cores = {cores[0]}, set(cores[1:])
        pids = {"server": server.pid, "conductor": os.getpid()}
        if pinned:
            pinned = pin(server.pid, node_cores)
            if redis_server is not None and redis_server.proc is not None:
                pinned = pin(redis_server.proc.pid, node_cores) and pinned
            pinned = pin(os.getpid(), load_cores) and pinned
        if redis_server is not None and redis_server.proc is not None:
            pids["redis"] = redis_server.proc.pid
        run.pinned = pinned

        await asyncio.sleep(2.0)  # the demo's first keyframes, the relay's first subscriptions
        run.cold = await node.idle(None, 10)
        log(f"  cold: RSS {run.cold.rss_mb:.1f} MiB, {fmt(run.cold)}")

        media = media_indices(args.viewers, args.media_viewers)
        workers: list[Child] = []
        for number in range(args.workers):
            mine = list(range(number, args.viewers, args.workers))
            worker = await Child.start(
                f"viewers-{number}",
                python_argv(
                    "_soak_viewers.py",
                    f"--url={url}",
                    f"--code={code}",
                    f"--worker={number}",
                    f"--indices={','.join(map(str, mine))}",
                    f"--media={','.join(str(i) for i in mine if i in media)}",
                    f"--seed={args.seed}",
                    f"--ramp={args.ramp}",
                    f"--stay-range={args.stay}",
                    f"--pause-range={args.pause}",
                    f"--max-seconds={budget}",
                ),
                work,
            )
            children.append(worker)
            workers.append(worker)
            pids[f"viewers-{number}"] = worker.pid
            if pinned:
                pin(worker.pid, load_cores)
        for worker in workers:
            await worker.event("ready", timeout=60)
        go = time.monotonic()
        log(
            f"  {args.viewers} viewers ({len(media)} with media) in {args.workers} workers; "
            f"warm-up {args.warmup:g} s"
        )

        async def load(seconds: float) -> None:
            """The audience comes and goes for this long; every 10 s the node's RSS, how long its
            /metrics took to answer (its event loop's lag, roughly), and CPU since the last
            sample (the node's, Redis's, and the machine's load that is not this bench's)."""
            end = time.monotonic() + seconds
            before = sample_cpu(pids)
            while (left := end - time.monotonic()) > 0:
                await asyncio.sleep(min(SAMPLE_SECONDS, left))
                asked = time.monotonic()
                figures = await scrape(node.http, node.url)
                answered_ms = 1000 * (time.monotonic() - asked)
                rss = resident_mb(server.pid)
                now = sample_cpu(pids)
                use = cpu_between(before, now)
                before = now
                other = max(0.0, use.machine_busy_pct - sum(use.per_process.values()))
                at = round(time.monotonic() - go, 1)
                run.load_rss.append((at, round(rss, 2)))
                run.load_samples.append(
                    {
                        "at": at,
                        "rss_mb": round(rss, 2),
                        "metrics_ms": round(answered_ms, 1),
                        "server_cpu_pct": round(use.per_process.get("server", 0.0), 1),
                        "other_load_pct": round(other, 1),
                        **{k: figures.get(k) for k in ("websockets", "viewers", "tasks")},
                    }
                )
                log(
                    f"  {at:5.0f} s: RSS {rss:.1f} MiB, {figures.get('websockets')} sockets, "
                    f"{figures.get('viewers')} with media, {figures.get('tasks')} tasks; "
                    f"/metrics {answered_ms:.0f} ms; node CPU "
                    f"{use.per_process.get('server', 0.0):.0f} %, other load {other:.0f} %"
                )

        async def drain(kind: str) -> list[dict[str, Any]]:
            for worker in workers:
                worker.send(kind)
            done = []
            for worker in workers:
                done.append(await worker.event("drained" if kind == "drain" else "result", 120))
            return done

        for worker in workers:
            worker.send("go")
        if args.warmup > 0:
            await load(args.warmup)
            run.warmup_results = await drain("drain")
            run.start = await node.idle(run.cold, args.settle)
            log(f"  start (after the warm-up): RSS {run.start.rss_mb:.1f} MiB, {fmt(run.start)}")
            for worker in workers:
                worker.send("resume")
        else:
            run.start = run.cold
        first = sample_cpu(pids)
        await load(60 * args.minutes)
        last = sample_cpu(pids)
        use = cpu_between(first, last)
        run.cpu, run.machine_busy_pct = use.per_process, use.machine_busy_pct
        run.soak_seconds = use.seconds
        run.results = await drain("stop")
        run.end = await node.idle(run.cold, args.settle)
        log(f"  end: RSS {run.end.rss_mb:.1f} MiB, {fmt(run.end)}")
        return run
    finally:
        if node is not None:
            await node.close()
        for child in reversed(children):
            code_ = await child.stop(15, terminate=child.name == "server")
            if child.name == "server":
                run.node_exit = code_
                run.node_log = node_log_summary(child.log_path)
        if redis_client is not None:
            with contextlib.suppress(Exception):
                await redis_client.aclose()
        if redis_server is not None:
            if run.end is not None:
                run.node_log["keys_without_expiry"] = await keys_without_expiry(redis_server.url)
            redis_server.close()


def fmt(snapshot: Snapshot) -> str:
    f = snapshot.figures
    keys = ", ".join(f"{k} {v}" for k, v in snapshot.bus_keys.items())
    return (
        f"{f.get('websockets')} sockets, {f.get('peers')} peers, {f.get('viewers')} viewers, "
        f"{f.get('tasks')} tasks; bus keys: {keys or 'none'} (settled in {snapshot.settled_s} s)"
    )


def summed(results: list[dict[str, Any]], part: str) -> dict[str, int]:
    total: Counter[str] = Counter()
    for result in results:
        total.update(result.get(part, {}))
    return dict(sorted(total.items()))


def leaks(run: Run) -> list[str]:
    """What was not given back once everyone had left."""
    assert run.cold is not None and run.end is not None
    cold, end = run.cold.figures, run.end.figures
    found = []
    for name in ("peers", "websockets", "live_shows"):
        if end.get(name) != cold.get(name):
            found.append(f"{name}: {end.get(name)} at the end, {cold.get(name)} cold")
    if end.get("viewers"):
        found.append(f"viewers: {end.get('viewers')} at the end")
    if end.get("tasks", 0) > cold.get("tasks", 0):
        found.append(f"tasks: {end.get('tasks')} at the end, {cold.get('tasks')} cold")
    for family, count in run.end.bus_keys.items():
        before = run.cold.bus_keys.get(family, 0)
        if count <= before:
            continue
        if family in SEATING:
            found.append(f"bus {family}: {count} at the end, {before} cold")
        elif family not in KEPT_BY_DESIGN:
            found.append(f"bus {family}: {count} at the end, {before} cold (not kept by design)")
    for key, why in run.node_log.get("keys_without_expiry", {}).items():
        found.append(f"bus key {key}: {why}")
    return found


def summary(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    assert run.cold is not None and run.start is not None and run.end is not None
    errors = summed(run.results, "errors")
    counts = summed(run.results, "counts")
    node_events = run.node_log.get("events", {})
    node_errors = sum(n for k, n in node_events.items() if not k.startswith("warning:"))
    growth = 100 * (run.end.rss_mb - run.start.rss_mb) / run.start.rss_mb
    load = [mb for _, mb in run.load_rss]
    soak_rss = [mb for t, mb in run.load_rss if t > args.warmup]
    workers = sum(v for k, v in run.cpu.items() if k.startswith("viewers-"))
    found = leaks(run)
    kept = {
        family: f"{run.start.bus_keys.get(family, 0)} → {count} ({why})"
        for family, why in KEPT_BY_DESIGN.items()
        if (count := run.end.bus_keys.get(family, 0))
    }
    return {
        "errors": sum(errors.values()) + node_errors,
        "reconnects": counts.get("reconnects", 0),
        "rss_start_mb": round(run.start.rss_mb, 1),
        "rss_end_mb": round(run.end.rss_mb, 1),
        "rss_growth_pct": round(growth, 2),
        "peers_end": run.end.figures.get("peers"),
        "tasks_end": run.end.figures.get("tasks"),
        "bus_keys_end": run.end.bus_keys,
        "leaks": found,
        "viewers": args.viewers,
        "media_viewers": args.media_viewers,
        "minutes": args.minutes,
        "warmup_s": args.warmup,
        "bus": args.bus,
        "client_errors": errors,
        "error_samples": [s for r in run.results for s in r.get("samples", [])][:20],
        "node_errors": node_errors,
        "node_log": {k: v for k, v in run.node_log.items() if k != "keys_without_expiry"},
        "node_exit": run.node_exit,
        "visits": counts.get("visits", 0),
        "joins": counts.get("joins", 0),
        "returning_joins": counts.get("returning_joins", 0),
        "first_frames": counts.get("first_frames", 0),
        "chat_sent": counts.get("chat_sent", 0),
        "reactions_sent": counts.get("reactions_sent", 0),
        "exits": summed(run.results, "exits"),
        "refused": summed(run.results, "refused"),
        "events": {k.removeprefix("event:"): v for k, v in counts.items() if ":" in k},
        "rss_cold_mb": round(run.cold.rss_mb, 1),
        "rss_load_peak_mb": max(load, default=None),
        "rss_soak_first_mb": soak_rss[0] if soak_rss else None,
        "rss_soak_last_mb": soak_rss[-1] if soak_rss else None,
        "cold": run.cold.figures | {"bus_keys": run.cold.bus_keys},
        "start": run.start.figures | {"bus_keys": run.start.bus_keys},
        "end": run.end.figures | {"bus_keys": run.end.bus_keys},
        "kept_by_design": kept,
        "settled_s": run.end.settled_s,
        "server_cpu_pct": round(run.cpu.get("server", 0.0), 1),
        "redis_cpu_pct": round(run.cpu["redis"], 1) if "redis" in run.cpu else None,
        "clients_cpu_pct": round(workers, 1),
        "machine_busy_pct": round(run.machine_busy_pct, 1),
        "other_load_pct": round(max(0.0, run.machine_busy_pct - sum(run.cpu.values())), 1),
        "metrics_ms_max": max((s["metrics_ms"] for s in run.load_samples), default=None),
        "disturbed": max(0.0, run.machine_busy_pct - sum(run.cpu.values())) > DISTURBED_PCT,
        "soak_seconds": round(run.soak_seconds, 1),
        "node_pinned": run.pinned,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lampio-soak-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        run = await measure(args, work)
        result = summary(args, run)
        if args.keep:
            raw = {"summary": result, "load": run.load_samples, "workers": run.results}
            (work / "soak-raw.json").write_text(json.dumps(raw))
        log(
            f"total {time.monotonic() - started:.0f} s" + (f"; logs in {work}" if args.keep else "")
        )
        return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=300, help="viewers (300)")
    parser.add_argument(
        "--media-viewers", type=int, default=6, help="of them with real media (6; 2 cores)"
    )
    parser.add_argument("--minutes", type=float, default=1.0, help="the soak, after warm-up (1)")
    parser.add_argument(
        "--warmup", type=float, default=40.0, help="seconds of load before the start (40; 0: none)"
    )
    parser.add_argument("--workers", type=int, default=3, help="viewer worker processes (3)")
    parser.add_argument("--bus", choices=["redis", "memory"], default="redis", help="(redis)")
    parser.add_argument("--ramp", type=float, default=10.0, help="first visits spread over (10 s)")
    parser.add_argument("--stay", default="5,25", help="a visit lasts LOW,HIGH seconds (5,25)")
    parser.add_argument("--pause", default="1,4", help="between visits, LOW,HIGH seconds (1,4)")
    parser.add_argument(
        "--settle", type=float, default=45.0, help="wait this long at most for the node to idle"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let the node share cores with the viewers (default: node and Redis on the first "
        "core, the viewers and the conductor on the others)",
    )
    parser.add_argument("--keep", default="", help="keep logs and raw results in this directory")
    parser.add_argument("--timeout", type=float, default=0, help="give up after (default: ample)")
    args = parser.parse_args(argv)
    if args.viewers < 1 or args.workers < 1 or args.minutes <= 0 or args.warmup < 0:
        parser.error("viewers ≥ 1, workers ≥ 1, minutes > 0, warm-up ≥ 0")
    if not 0 <= args.media_viewers <= args.viewers:
        parser.error("media viewers: 0 … viewers")
    if args.bus == "redis" and shutil.which("redis-server") is None:
        parser.error("redis-server is not installed (or use --bus memory)")
    args.workers = min(args.workers, args.viewers)
    return args


def main() -> None:
    args = parse_args()
    log(
        f"{platform.node()}: soak, {args.viewers} viewers ({args.media_viewers} with media), "
        f"{args.minutes:g} min after a {args.warmup:g} s warm-up, bus {args.bus}, "
        f"{os.cpu_count()} cores"
    )
    timeout = args.timeout or args.warmup + 60 * args.minutes + 600

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            return await main_async(args)

    result = asyncio.run(bounded())
    print(json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
