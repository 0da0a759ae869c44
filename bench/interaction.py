"""Interaction benchmark: chat and reaction latency through one node with Redis, signaling only.

    .venv/bin/python bench/interaction.py --viewers 1000 --lobbies 100 --seconds 20

One run, loopback only, every part its own process:

1. a real ``redis-server`` (``tests.redis_server.RedisServer``) and the real
   ``lampio-stream serve --redis-url … --lobby-size viewers/lobbies --rtmp-port off``; a show made
   with ``POST /api/shows``;
2. viewers (``clients.client.Session``, one WebSocket each, no media) spread over worker processes
   (``bench/_interaction_viewers.py``), seated with ``watch.join`` lobby by lobby: seat 0 opens a
   lobby, the others join it with its code;
3. an observer in this process: ``perform.host`` (the performer's feed: every lobby's chat and the
   show's ``reactions``), or with ``--observer viewer`` one more viewer (``reactions`` only);
4. the window (--seconds): chat at --chat-rate messages a second in total from random viewers,
   each with a unique ``client_id`` and its send time in the text; a fraction of the viewers clap
   once every --clap-interval; then a grace period for late deliveries.

Chat latency: the sender's send → each other member of its lobby takes the ``chat.message`` off
its socket. Reaction latency: a click → the observer's first ``reactions`` event whose running
total includes it (counts matched in order). See bench/README.md for every figure. The last line
printed is the JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as redis
from _interaction_plan import Plan, percentile, reaction_latencies
from _procs import REPO_DIR, Child, CpuSample, cpu_between, pin, python_argv, sample_cpu
from _profile import load_profile

sys.path.insert(0, str(REPO_DIR))  # tests/ and clients/ of this checkout
from clients.client import Session
from tests.redis_server import RedisServer, free_port

SETTLE_SECONDS = 2.0  # after the last join: presence and member lists calm down
IDLE_SECONDS = 3.0  # everyone seated, observer connected, nobody chats: the node's resting cost


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Observer:
    """The performer's feed (perform.host) or one more viewer: what reached it, and when."""

    session: Session
    reactions: list[tuple[float, int]] = field(default_factory=list)  # (arrival, clicks in it)
    chat: dict[str, float] = field(default_factory=dict)  # client_id → arrival
    events: Counter[str] = field(default_factory=Counter)
    audience: int = -1
    task: asyncio.Task[None] | None = None

    async def consume(self) -> None:
        while True:
            event = await self.session.events.get()
            now = time.monotonic()
            kind = str(event.get("type"))
            self.events[kind] += 1
            if kind == "reactions":
                counts = event.get("counts", {})
                self.reactions.append((now, sum(int(n) for n in counts.values())))
            elif kind == "chat.message":
                self.chat.setdefault(str(event.get("client_id")), now)
            elif kind == "audience":
                self.audience = int(event.get("viewers", -1))
            elif kind == "closed":
                return

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.consume())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.session.close(), 5)


def server_argv(port: int, key: str, redis_url: str, lobby_size: int) -> list[str]:
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
        "--redis-url",
        redis_url,
        "--lobby-size",
        str(lobby_size),
        "--rtmp-port",
        "off",
        "--log-level",
        "warning",
    ]


async def wait_until_serving(url: str, timeout: float = 30) -> None:
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
            json={"title": "Interaction bench"},
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):
        response.raise_for_status()
        show: dict[str, Any] = await response.json()
        return show


async def redis_stats(client: Any) -> tuple[int, dict[str, int]]:
    """total_commands_processed and calls per command (INFO stats, INFO commandstats)."""
    stats = await client.info("stats")
    commands = await client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in commands.items()}
    return int(stats["total_commands_processed"]), calls


async def seat_everyone(plan: Plan, workers: list[Child], timeout: float) -> dict[int, str]:
    """Open and fill the lobbies one after another; viewer → lobby id."""
    seats: dict[int, str] = {}
    founder_ms: list[float] = []
    member_ms: list[float] = []
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        for lobby in range(plan.lobbies):
            members = plan.members(lobby)
            owner = workers[plan.worker_of(members[0])]
            owner.send(f"found {lobby}")
            founded = await owner.event("founded", timeout=timeout)
            seats[members[0]] = founded["id"]
            founder_ms.append(founded["ms"])
            fillers = sorted({plan.worker_of(i) for i in members[1:]})
            for number in fillers:
                workers[number].send(f"fill {lobby} {founded['code']}")
            for number in fillers:
                filled = await workers[number].event("filled", timeout=timeout)
                for index, lobby_id, ms in filled["joined"]:
                    if lobby_id.startswith("error"):
                        raise RuntimeError(f"viewer {index} could not join: {lobby_id}")
                    seats[index] = lobby_id
                    member_ms.append(ms)
            if lobby % 10 == 9 or lobby == plan.lobbies - 1:
                recent = percentile(member_ms[-len(members) :], 0.5)
                log(
                    f"  {len(seats)} seated in {lobby + 1} lobbies after "
                    f"{time.monotonic() - started:.1f} s; last opener's join "
                    f"{founded['ms']:.0f} ms, members' join p50 {recent:.0f} ms"
                )
    return seats


async def start_profiler(pid: int, seconds: float, path: Path) -> asyncio.subprocess.Process | None:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
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


def profile_report(path: Path, top: int = 12) -> str:
    """Busy share of the project's functions (inclusive) and of all functions (self time)."""
    profile = load_profile(path)
    if profile.samples == 0:
        return "profile: no samples"

    def row(count: int, name: str) -> str:
        return f"  {100 * count / profile.samples:5.1f} %  {name}"

    ours = [
        (name, count)
        for name, count in profile.inclusive.most_common()
        if name.startswith(("rooms/", "signaling/", "clients/"))
    ]
    lines = [f"profile: {profile.samples} busy samples ({profile.idle} idle in epoll left out)"]
    lines.append("project functions, inclusive:")
    lines += [row(count, name) for name, count in ours[:top]]
    lines.append("all functions, self time:")
    lines += [row(count, name) for name, count in profile.self_time.most_common(top)]
    return "\n".join(lines)


@dataclass
class Run:
    """Everything measured; turned into the summary by :func:`summary`."""

    plan: Plan
    observer_kind: str
    seats: dict[int, str] = field(default_factory=dict)
    join_seconds: float = 0.0
    pinned: bool = False  # the node on its own core (see --no-pin)
    window: tuple[float, float] = (0.0, 0.0)
    cpu: dict[str, float] = field(default_factory=dict)
    idle_cpu: dict[str, float] = field(default_factory=dict)
    machine_busy_pct: float = 0.0
    bus_commands: int = 0
    bus_calls: dict[str, int] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    observer: Observer | None = None


async def measure(args: argparse.Namespace, plan: Plan, work: Path) -> Run:
    run = Run(plan, args.observer)
    children: list[Child] = []
    redis_server = RedisServer()
    client: Any = None
    observer: Observer | None = None
    # Every helper process ends by itself after this, whatever happens here.
    budget = args.timeout + 30
    try:
        redis_server.start()
        assert redis_server.proc is not None
        client = redis.Redis.from_url(redis_server.url)
        key = secrets.token_urlsafe(24)
        port = free_port()
        server = await Child.start(
            "server", server_argv(port, key, redis_server.url, plan.lobby_size), work
        )
        children.append(server)
        url = f"http://127.0.0.1:{port}"
        await wait_until_serving(url)
        show = await create_show(url, key)
        pids = {"server": server.pid, "redis": redis_server.proc.pid, "conductor": os.getpid()}
        # The node (and its Redis) on one core, the load generators on the others: a real
        # audience's devices are elsewhere, and sharing cores with them made their bursts of work
        # part of the node's latency.
        cores = sorted(os.sched_getaffinity(0))
        pinned = args.pin and len(cores) >= 2
        node_cores, load_cores = {cores[0]}, set(cores[1:])
        if pinned:
            pinned = pin(server.pid, node_cores) and pin(redis_server.proc.pid, node_cores)
            pinned = pin(os.getpid(), load_cores) and pinned
        run.pinned = pinned

        workers: list[Child] = []
        for number in range(plan.workers):
            worker = await Child.start(
                f"viewers-{number}",
                python_argv(
                    "_interaction_viewers.py",
                    f"--url={url}",
                    f"--code={show['code']}",
                    f"--worker={number}",
                    f"--max-seconds={budget}",
                    *plan.args(),
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

        log(
            f"  seating {plan.viewers} viewers in {plan.lobbies} lobbies of {plan.lobby_size} "
            f"({plan.workers} worker processes)"
        )
        started = time.monotonic()
        run.seats = await seat_everyone(plan, workers, timeout=args.timeout)
        run.join_seconds = time.monotonic() - started

        session = await Session.connect(url)
        observer = run.observer = Observer(session)
        observer.start()
        if args.observer == "host":
            await session.request("perform.host", show=show["id"], token=show["performer_token"])
        else:
            await session.request("watch.join", code=show["code"], name="Tarkkailija")
        await asyncio.sleep(SETTLE_SECONDS)
        before = sample_cpu(pids)
        await asyncio.sleep(IDLE_SECONDS)
        run.idle_cpu = cpu_between(before, sample_cpu(pids)).per_process

        start = time.monotonic() + 0.5
        for worker in workers:
            worker.send(f"go {start}")
        gc.collect()  # the observer's pauses are not the node's (see _interaction_viewers.py)
        gc.freeze()
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        spy = None
        if args.profile:
            spy = await start_profiler(server.pid, plan.seconds, Path(args.profile))
        first: CpuSample = sample_cpu(pids)
        commands_before, calls_before = await redis_stats(client)
        log(f"  window: {plan.seconds:g} s of chat ({plan.chat_rate:g}/s) and claps")
        await asyncio.sleep(start + plan.seconds - time.monotonic())
        last = sample_cpu(pids)
        commands_after, calls_after = await redis_stats(client)
        use = cpu_between(first, last)
        run.window = (first.at, last.at)
        run.cpu = use.per_process
        run.machine_busy_pct = use.machine_busy_pct
        run.bus_commands = commands_after - commands_before
        run.bus_calls = {
            name: calls - calls_before.get(name, 0)
            for name, calls in calls_after.items()
            if calls > calls_before.get(name, 0)
        }
        await asyncio.sleep(args.grace)
        for worker in workers:
            worker.send("stop")
        for worker in workers:
            try:
                run.results.append(await worker.event("result", timeout=60))
            except (TimeoutError, RuntimeError) as exc:
                log(f"  no result from {worker.name}: {exc}")
        if spy is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(spy.wait(), 20)
            if os.path.exists(args.profile):  # noqa: ASYNC240
                log(profile_report(Path(args.profile)))
        return run
    finally:
        if observer is not None:
            await observer.close()
        for child in reversed(children):
            await child.stop(15, terminate=child.name == "server")
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        redis_server.close()


def summary(run: Run) -> dict[str, Any]:
    seconds = run.window[1] - run.window[0]
    members: dict[str, set[int]] = defaultdict(set)
    for viewer, lobby in run.seats.items():
        members[lobby].add(viewer)
    sends = [tuple(s) for res in run.results for s in res["sends"]]
    sent_at = {str(s[0]): float(s[3]) for s in sends}
    acked = [s for s in sends if s[4] is not None]
    expected = {(str(s[0]), v) for s in acked for v in members[str(s[2])] if v != s[1]}
    latencies: list[float] = []
    received: set[tuple[str, int]] = set()
    unexpected = 0
    for result in run.results:
        for client_id, viewer, arrival, sent in result["deliveries"]:
            pair = (str(client_id), int(viewer))
            if pair not in expected or pair in received:
                unexpected += 1
                continue
            received.add(pair)
            latencies.append(1000 * (arrival - sent))
    unacked = len(sends) - len(acked)
    ack_ms = [1000 * (s[4] - s[3]) for s in acked]
    errors = Counter(str(s[5]) for s in sends if s[5])

    observer = run.observer
    feed_ms: list[float] = []
    reaction_ms: list[float] = []
    uncovered = 0
    clicks = [t for res in run.results for t in res["clicks"]]
    click_errors: Counter[str] = Counter()
    for res in run.results:
        click_errors.update(res["click_errors"])
    seen = 0
    if observer is not None:
        feed_ms = [
            1000 * (observer.chat[cid] - sent_at[cid]) for cid in sent_at if cid in observer.chat
        ]
        latencies_s, uncovered = reaction_latencies(clicks, observer.reactions)
        reaction_ms = [1000 * t for t in latencies_s]
        seen = sum(n for _, n in observer.reactions)
    events: Counter[str] = Counter()
    for res in run.results:
        events.update(res["events"])
    sizes = Counter(len(v) for v in members.values())
    clients = sum(v for k, v in run.cpu.items() if k.startswith("viewers-"))
    ours = clients + sum(run.cpu.get(k, 0.0) for k in ("server", "redis", "conductor"))

    def r(value: float, digits: int = 1) -> float | None:
        return None if math.isnan(value) or math.isinf(value) else round(value, digits)

    return {
        "viewers": len(run.seats),
        "chat_p50_ms": r(percentile(latencies, 0.5)),
        "chat_p99_ms": r(percentile(latencies, 0.99)),
        "chat_lost": len(expected) - len(received) + unacked,
        "reaction_p99_ms": r(percentile(reaction_ms, 0.99)),
        "bus_msgs_per_s": r(run.bus_commands / seconds if seconds else math.nan, 0),
        "server_cpu_pct": r(run.cpu.get("server", math.nan)),
        "lobbies": len(members),
        "lobby_sizes": {str(k): v for k, v in sorted(sizes.items())},
        "seconds": r(seconds, 2),
        "observer": run.observer_kind,
        "chat_sent": len(sends),
        "chat_unacked": unacked,
        "chat_errors": dict(errors),
        "chat_deliveries": len(received),
        "chat_expected": len(expected),
        "chat_unexpected": unexpected,
        "chat_ack_p50_ms": r(percentile(ack_ms, 0.5)),
        "chat_ack_p99_ms": r(percentile(ack_ms, 0.99)),
        "chat_max_ms": r(max(latencies, default=math.nan)),
        "feed_chat_p99_ms": r(percentile(feed_ms, 0.99)),
        "feed_chat_lost": len(acked) - len(feed_ms) if run.observer_kind == "host" else None,
        "reaction_p50_ms": r(percentile(reaction_ms, 0.5)),
        "reaction_max_ms": r(max(reaction_ms, default=math.nan)),
        "reactions_sent": len(clicks),
        "reactions_refused": dict(click_errors),
        "reactions_seen": seen,
        "reactions_uncovered": uncovered,
        "reaction_events": observer.events.get("reactions", 0) if observer else 0,
        "viewer_events": dict(events),
        "connections_closed": sum(int(res["closed"]) for res in run.results),
        "bus_calls_per_s": {
            k: r(v / seconds, 0)
            for k, v in sorted(run.bus_calls.items(), key=lambda kv: -kv[1])[:12]
        },
        "redis_cpu_pct": r(run.cpu.get("redis", math.nan)),
        "clients_cpu_pct": r(clients),
        "conductor_cpu_pct": r(run.cpu.get("conductor", math.nan)),
        "server_idle_cpu_pct": r(run.idle_cpu.get("server", math.nan)),
        "redis_idle_cpu_pct": r(run.idle_cpu.get("redis", math.nan)),
        "machine_busy_pct": r(run.machine_busy_pct),
        "other_load_pct": r(max(0.0, run.machine_busy_pct - ours)),
        "join_seconds": r(run.join_seconds),
        "node_pinned": run.pinned,
    }


async def main_async(args: argparse.Namespace, plan: Plan) -> dict[str, Any]:
    gc.set_threshold(20_000, 50, 10)
    with tempfile.TemporaryDirectory(prefix="lampio-bench-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        run = await measure(args, plan, work)
        result = summary(run)
        if args.keep:
            raw = {"summary": result, "workers": run.results, "seats": run.seats}
            if run.observer is not None:
                raw["observer_reactions"] = run.observer.reactions
                raw["observer_chat"] = run.observer.chat
            (work / "interaction-raw.json").write_text(json.dumps(raw))
        log(
            f"total {time.monotonic() - started:.0f} s" + (f"; logs in {work}" if args.keep else "")
        )
        return result


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=300, help="viewers (300)")
    parser.add_argument("--lobbies", type=int, default=30, help="lobbies (30: lobby size 10)")
    parser.add_argument("--seconds", type=float, default=10, help="measured window (10 s)")
    parser.add_argument("--workers", type=int, default=4, help="viewer worker processes (4)")
    parser.add_argument(
        "--chat-rate", type=float, default=20, help="chat messages a second, all viewers (20)"
    )
    parser.add_argument(
        "--clappers", type=float, default=0.1, help="fraction of viewers that clap (0.1)"
    )
    parser.add_argument(
        "--clap-interval", type=float, default=1.0, help="seconds between a clapper's claps (1)"
    )
    parser.add_argument(
        "--grace", type=float, default=3.0, help="after the window, for late deliveries (3 s)"
    )
    parser.add_argument(
        "--observer",
        choices=["host", "viewer"],
        default="host",
        help="who measures reactions: perform.host (default) or one more viewer",
    )
    parser.add_argument("--seed", type=int, default=1, help="random senders and clappers (1)")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let the node share cores with the load generators (default: node and Redis on the "
        "first core, viewers and the conductor on the others)",
    )
    parser.add_argument(
        "--profile", default="", help="py-spy raw profile of the node during the window, here"
    )
    parser.add_argument("--keep", default="", help="keep logs and raw results in this directory")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this (900 s)")
    args = parser.parse_args(argv)
    if args.viewers < 2 or args.lobbies < 1 or args.seconds <= 0 or args.workers < 1:
        parser.error("viewers ≥ 2, lobbies ≥ 1, seconds > 0, workers ≥ 1")
    if not 0 <= args.clappers <= 1 or args.clap_interval < 0.5 or args.chat_rate <= 0:
        parser.error("clappers in 0…1, clap interval ≥ 0.5 s (the limit is 2/s), chat rate > 0")
    size = math.ceil(args.viewers / args.lobbies)
    if size < 2:
        parser.error("a lobby needs two viewers at least, or chat reaches nobody")
    plan = Plan(
        args.viewers,
        size,
        min(args.workers, args.viewers),
        args.seconds,
        args.chat_rate,
        args.clappers,
        args.clap_interval,
        args.seed,
    )
    return args, plan


def main() -> None:
    args, plan = parse_args()
    log(
        f"{platform.node()}: interaction bench, {plan.viewers} viewers in {plan.lobbies} lobbies "
        f"of {plan.lobby_size}, {plan.seconds:g} s window, {os.cpu_count()} cores"
    )

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(args.timeout):
            return await main_async(args, plan)

    result = asyncio.run(bounded())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
