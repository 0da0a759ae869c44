"""Cluster benchmark: one show on several nodes, the performer on the first (the origin).

    .venv/bin/python bench/cluster.py --nodes 3 --viewers 24 --seconds 10
    .venv/bin/python bench/cluster.py --nodes 2 --viewers-by-node 10,60   # 60 on the edge

Every part its own process, loopback only: a real redis-server; ``--nodes`` real ``lampio-stream
serve`` processes on it with one cluster secret; a real HAProxy in front of them; the fan-out
bench's publisher looping its clip into node 0; the viewers split over the nodes (evenly, or as
``--viewers-by-node`` says), each node's in worker processes of their own
(bench/_cluster_viewers.py: the Python client's ``Watcher`` on a ``Session(resume=True)``,
counting whole frames without decoding). Viewers reach the nodes only through HAProxy, whose
frontend for node k sends them to node k while it is up (``use-server``) and to the others
otherwise, as its one frontend would; the others pull the show from node 0 once each
(docs/scaling.md).

1. **Media**, measured over a window of ``--seconds`` once every viewer has a frame: each node's
   CPU beyond its cost with the publisher alone, per viewer on it; the origin's streams to other
   nodes (``lampio_feeds_out``); frame loss; the frame delay of viewers on the edges beyond that
   of viewers on the origin (the hop).
2. **Chat and reactions**, for ``--interact-seconds`` after that, the media still flowing: every
   viewer says something every ``--chat-every`` seconds and claps every ``--clap-every`` (within
   the node's limits, one message a second and two claps a second per member), each at its own
   phase. Chat: ``chat.send`` → each other member of the lobby (members of a lobby sit on every
   node) and the performer's feed take the ``chat.message`` off their sockets; ``chat_p99_ms`` is
   over the deliveries to another node than the sender's. Reactions: a click → the first
   ``reactions`` total that includes it, at the performer's feed (each node's totals every 50 ms;
   ``reaction_p99_ms``) and at the lobby's members (merged totals twice a second;
   ``reaction_lobby_p99_ms``). The performer's feed is a ``perform.host`` session on the origin.
3. **Failover** (unless ``--no-failover``): SIGKILL the edge with the most viewers; each of its
   viewers' time until its first video frame on a new connection (``failover_p95_s``).

The last line printed is the JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _interaction_plan import reaction_latencies
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

sys.path.insert(0, str(REPO_DIR))  # tests/ and clients/ of this checkout
from clients.client import Session
from tests.redis_server import RedisServer, free_port

BASE_SECONDS = 3.0  # the publisher alone: every node's fixed cost
VIEWERS_PER_WORKER = 20  # one process is one core at most: 20 frame-counting viewers use ~0.4
HAPROXY = Path("/usr/sbin/haproxy")
ALL_UP = "/haproxy/all-up"  # answered by HAProxy itself once it counts every node up


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, flags=re.MULTILINE)
    return float(found.group(1)) if found else float("nan")


async def node_id(url: str, key: str) -> str:
    """The node's id in the registry (``GET /api/nodes``, the entry marked ``self``)."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/api/nodes", headers=headers) as response,
    ):
        response.raise_for_status()
        listing = await response.json()
    return str(next(node["id"] for node in listing["nodes"] if node.get("self")))


def haproxy_config(fronts: list[int], nodes: list[int]) -> str:
    """As tests/cluster_procs.py runs HAProxy (round robin, health checks on /readyz, a refused
    connection tried again on another node at once), with one listening port per node: a client
    that connects to ``fronts[k]`` lands on node k while it is up, else on another, as if the
    round robin had placed it there. ``option forwardfor``: the nodes count each client by its
    own address (the bench's viewers use several), not HAProxy's."""
    binds = "\n".join(f"    bind 127.0.0.1:{port}" for port in fronts)
    rules = "\n".join(
        f"    use-server n{k} if {{ dst_port {port} }}" for k, port in enumerate(fronts)
    )
    servers = "\n".join(
        f"    server n{k} 127.0.0.1:{port} check inter 500 fall 2 rise 1"
        for k, port in enumerate(nodes)
    )
    return f"""
global
    maxconn 2048

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    option http-server-close
    retries 3
    option redispatch 1

frontend audience
{binds}
    option forwardfor
    http-request return status 200 if {{ path {ALL_UP} }} {{ nbsrv(nodes) ge {len(nodes)} }}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{rules}
{servers}
"""


async def all_up(url: str, timeout: float = 30) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + ALL_UP) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


def placement(by_node: list[int]) -> list[int]:
    """The node of each viewer in joining order: each node's viewers spread evenly over the
    joins (round robin when the split is even)."""
    slots = sorted(
        ((j + 0.5) / count, node) for node, count in enumerate(by_node) for j in range(count)
    )
    return [node for _, node in slots]


@dataclass
class Feed:
    """The performer's feed (``perform.host`` on the origin): chat and reaction totals, timed."""

    session: Session
    chat: dict[str, float] = field(default_factory=dict)  # client_id → arrival
    reactions: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def heard(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "chat.message":
            self.chat.setdefault(str(event.get("client_id")), time.monotonic())
        elif kind == "reactions":
            self.reactions.append((time.monotonic(), str(event["node"]), event["lobbies"]))


def ms(values: list[float], quantile: float) -> float | None:
    return round(1000 * percentile(values, quantile), 1) if values else None


def chat_figures(parts: list[dict[str, Any]], feed: Feed, origin: int) -> dict[str, Any]:
    """Send → delivery of every message to each other member of its lobby and to the feed."""
    said = {m["client_id"]: m for part in parts for m in part["said"]}
    members: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        for heard in part["heard"]:
            members.setdefault(heard["lobby"], []).append(heard)
    cross: list[float] = []
    same: list[float] = []
    expected = delivered = 0
    for message in said.values():
        expected += len(members.get(message["lobby"], [])) - 1 + 1  # the others, and the feed
        arrived = feed.chat.get(message["client_id"])
        if arrived is not None:
            delivered += 1
            (cross if message["node"] != origin else same).append(arrived - message["at"])
    for lobby in members.values():
        for member in lobby:
            first: dict[str, float] = {}
            for client_id, arrived in member["chat"]:
                first.setdefault(client_id, arrived)  # a message may come twice near a move
            for client_id, arrived in first.items():
                message = said.get(client_id)
                if message is None or message["viewer"] == member["viewer"]:
                    continue
                if message["lobby"] != member["lobby"]:
                    continue
                delivered += 1
                (cross if message["node"] != member["node"] else same).append(
                    arrived - message["at"]
                )
    return {
        "chat_p99_ms": ms(cross, 0.99),
        "chat_p50_ms": ms(cross, 0.5),
        "chat_same_node_p99_ms": ms(same, 0.99),
        "chat_sent": len(said),
        "chat_deliveries": delivered,
        "chat_missing": expected - delivered,
    }


def reaction_figures(parts: list[dict[str, Any]], feed: Feed, ids: list[str]) -> dict[str, Any]:
    """A click → the first total that includes it, matched in order per (node, lobby) at the
    feed (each node sends its own totals) and per lobby at its members (merged totals)."""
    clicks = [c for part in parts for c in part["clicks"]]
    to_feed: list[float] = []
    uncovered = 0
    for node, lobby in {(c["node"], c["lobby"]) for c in clicks}:
        at = [c["at"] for c in clicks if (c["node"], c["lobby"]) == (node, lobby)]
        seen = [
            (t, sum(lobbies[lobby].values()))
            for t, sender, lobbies in feed.reactions
            if sender == ids[node] and lobby in lobbies
        ]
        latencies, missed = reaction_latencies(at, seen)
        to_feed += latencies
        uncovered += missed
    to_members: list[float] = []
    for part in parts:
        for heard in part["heard"]:
            at = [c["at"] for c in clicks if c["lobby"] == heard["lobby"]]
            latencies, missed = reaction_latencies(at, [tuple(s) for s in heard["claps"]])
            to_members += latencies
            uncovered += missed
    return {
        "reaction_p99_ms": ms(to_feed, 0.99),
        "reaction_p50_ms": ms(to_feed, 0.5),
        "reaction_lobby_p99_ms": ms(to_members, 0.99),
        "reactions_sent": len(clicks),
        "reactions_uncovered": uncovered,
    }


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
                await child.stop(15, terminate=not child.name.startswith("viewers"))
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
    by_node: list[int] = args.by_node
    viewers = sum(by_node)
    ports = [free_port() for _ in by_node]
    fronts = [free_port() for _ in by_node]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    nodes: list[Child] = []
    for number, port in enumerate(ports):
        argv = [*server_argv(port, key, "direct"), f"--redis-url={redis.url}"]
        argv += [f"--cluster-secret={secret}", "--trusted-proxies=127.0.0.1"]
        node = await Child.start(f"node-{number}", argv, work)
        children.append(node)
        nodes.append(node)
    for url in urls:
        await wait_until_serving(url)
    config = work / "haproxy.cfg"
    config.write_text(haproxy_config(fronts, ports))
    proxy = await Child.start("haproxy", [str(HAPROXY), "-db", "-f", str(config)], work)
    children.append(proxy)
    await all_up(f"http://127.0.0.1:{fronts[0]}")
    ids = [await node_id(url, key) for url in urls]
    show = await create_show(urls[0], key)
    extra = args.interact_seconds + (0 if args.no_failover else args.failover_timeout)
    budget = helper_budget(viewers, args.seconds) + extra
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
    pids = {f"node-{n}": node.pid for n, node in enumerate(nodes)}
    pids |= {"publisher": publisher.pid, "haproxy": proxy.pid}
    await asyncio.sleep(1.0)
    before = sample_cpu(pids)
    await asyncio.sleep(BASE_SECONDS)
    base = cpu_between(before, sample_cpu(pids))

    order = placement(by_node)
    workers: list[tuple[Child, int]] = []
    workers_of: list[list[Child]] = [[] for _ in by_node]
    for number, front in enumerate(fronts):
        mine = [i for i, node in enumerate(order) if node == number]
        for part in range(0, len(mine), VIEWERS_PER_WORKER):
            indices = mine[part : part + VIEWERS_PER_WORKER]
            name = f"viewers-{number}-{part // VIEWERS_PER_WORKER}"
            worker = await Child.start(
                name,
                python_argv(
                    "_cluster_viewers.py",
                    f"--url=http://127.0.0.1:{front}",
                    f"--node={number}",
                    f"--code={show['code']}",
                    f"--indices={','.join(map(str, indices))}",
                    f"--max-seconds={budget}",
                ),
                work,
            )
            children.append(worker)
            workers.append((worker, len(indices)))
            workers_of[number].append(worker)
            pids[name] = worker.pid
    for worker, _ in workers:
        await worker.event("ready", timeout=60)
    go = time.monotonic() + 0.2
    for worker, _ in workers:
        worker.send(f"go {go} {args.join_spread / viewers}")
    log(f"{viewers} viewers on the nodes as {by_node}, joining over {args.join_spread:g} s")
    await wait_first_frames(workers, timeout=30 + 1.5 * viewers)
    await asyncio.sleep(SETTLE_SECONDS)
    start = sample_cpu(pids)
    await asyncio.sleep(args.seconds)
    end = sample_cpu(pids)
    use = cpu_between(start, end)
    for worker, _ in workers:
        worker.send("report")
    results = [await results_of(worker) for worker, _ in workers]
    feeds_out = await metric(urls[0], "lampio_feeds_out")
    viewers_by_node = [await metric(url, "lampio_viewers") for url in urls]

    figures: dict[str, Any] = {}
    if args.interact_seconds > 0:
        figures |= await interaction(args, workers, urls[0], show, ids)
    if not args.no_failover:
        figures |= await failover(args, nodes, workers_of, viewers_by_node)

    for worker, _ in workers:
        worker.send("stop")
    publisher.send("stop")
    sent = await results_of(publisher)

    phases: list[Phase] = []
    for number in range(len(by_node)):
        theirs = [r for (w, _), r in zip(workers, results, strict=True) if w in workers_of[number]]
        phase = Phase("node", by_node[number])
        count_frames(phase, start, end, theirs, sent)
        phases.append(phase)
    cpu_per_viewer = []
    for n, count in enumerate(by_node):
        name = f"node-{n}"
        cost = use.pct(name) - base.pct(name)
        cpu_per_viewer.append(round(cost / count, 3) if count else None)
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
        "nodes": len(by_node),
        "viewers": viewers,
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
        **figures,
        "seconds": round(use.seconds, 1),
        "clients_cpu_pct": round(use.pct("viewers"), 1),
        "other_load_pct": round(max(0.0, use.machine_busy_pct - ours), 1),
    }


async def interaction(
    args: argparse.Namespace,
    workers: list[tuple[Child, int]],
    origin_url: str,
    show: dict[str, Any],
    ids: list[str],
) -> dict[str, Any]:
    """Chat and claps from every viewer for ``--interact-seconds``, timed at every receiver."""
    session = await Session.connect(origin_url)
    feed = Feed(session)
    session.listen(feed.heard)
    try:
        await session.request("perform.host", show=show["id"], token=show["performer_token"])
        begin = time.monotonic() + 0.5
        log(
            f"chat every {args.chat_every:g} s and a clap every {args.clap_every:g} s per viewer "
            f"for {args.interact_seconds:g} s"
        )
        for n, (worker, _) in enumerate(workers):
            worker.send(
                f"interact {begin} {args.interact_seconds} {args.chat_every} {args.clap_every} {n}"
            )
        parts = []
        for worker, _ in workers:
            with contextlib.suppress(TimeoutError, RuntimeError):
                parts.append(await worker.event("interaction", timeout=args.interact_seconds + 30))
    finally:
        await session.close()
    refused: dict[str, int] = {}
    for part in parts:
        for kind, n in part["refused"].items():
            refused[kind] = refused.get(kind, 0) + n
    return {
        **chat_figures(parts, feed, 0),
        **reaction_figures(parts, feed, ids),
        "interaction_refused": refused,
        "interaction_workers_missing": len(workers) - len(parts),
    }


async def failover(
    args: argparse.Namespace,
    nodes: list[Child],
    workers_of: list[list[Child]],
    viewers_by_node: list[float],
) -> dict[str, Any]:
    """SIGKILL the edge with the most viewers; its viewers' time to a new video frame."""
    victim = max(range(1, len(nodes)), key=lambda n: (viewers_by_node[n], n))
    if not workers_of[victim]:
        return {}
    killed_at = time.monotonic()
    nodes[victim].kill()
    log(f"node {victim} killed (SIGKILL) with {viewers_by_node[victim]:g} viewers")
    for worker in workers_of[victim]:
        worker.send(f"failover {killed_at} {args.failover_timeout}")
    took: list[float] = []
    resumed: list[float] = []
    not_back = 0
    for worker in workers_of[victim]:
        try:
            report = await worker.event("failover", timeout=args.failover_timeout + 15)
        except (TimeoutError, RuntimeError):
            continue
        took += report["took"]
        resumed += report["resumed"]
        not_back += report["not_back"]
    return {
        "failover_p95_s": round(percentile(took, 0.95), 2) if took else None,
        "failover_p50_s": round(percentile(took, 0.5), 2) if took else None,
        "failover_max_s": round(max(took), 2) if took else None,
        "failover_resumed_p95_s": round(percentile(resumed, 0.95), 2) if resumed else None,
        "failover_viewers": len(took),
        "failover_not_back": not_back,
        "failover_node": victim,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=3, help="nodes on one Redis (3)")
    parser.add_argument("--viewers", type=int, default=24, help="viewers, split evenly (24)")
    parser.add_argument(
        "--viewers-by-node",
        default="",
        help="viewers on each node instead, origin first, e.g. 10,60 (sets --nodes, --viewers)",
    )
    parser.add_argument("--seconds", type=float, default=10, help="measured window (10 s)")
    parser.add_argument("--join-spread", type=float, default=2.0, help="joins over this (2 s)")
    parser.add_argument(
        "--interact-seconds", type=float, default=6, help="chat and claps after the window (6 s)"
    )
    parser.add_argument(
        "--chat-every", type=float, default=2.0, help="seconds between a viewer's messages (2)"
    )
    parser.add_argument(
        "--clap-every", type=float, default=1.0, help="seconds between a viewer's claps (1)"
    )
    parser.add_argument("--no-failover", action="store_true", help="kill no node at the end")
    parser.add_argument(
        "--failover-timeout", type=float, default=30, help="wait this for viewers to return (30 s)"
    )
    parser.add_argument("--keep", default="", help="keep logs in this directory")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this (600 s)")
    args = parser.parse_args(argv)
    if args.viewers_by_node:
        try:
            args.by_node = [int(n) for n in args.viewers_by_node.split(",")]
        except ValueError:
            parser.error("--viewers-by-node: whole numbers, comma-separated")
    else:
        args.by_node = [len(range(n, args.viewers, args.nodes)) for n in range(args.nodes)]
    if len(args.by_node) < 2 or min(args.by_node) < 1 or args.seconds <= 0:
        parser.error("at least 2 nodes, a viewer per node, a positive window")
    # the node's limits: one message a second (bursts of 5), two claps a second (bursts of 10)
    if args.chat_every < 1.0 or args.clap_every < 0.5:
        parser.error("--chat-every ≥ 1 s and --clap-every ≥ 0.5 s: the node allows no more")
    if not HAPROXY.exists():
        parser.error(f"{HAPROXY} is needed (Debian's haproxy package; `make test` installs it)")
    return args


def main() -> None:
    args = parse_args()

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(args.timeout):
            return await main_async(args)

    print(json.dumps(asyncio.run(bounded())), flush=True)


if __name__ == "__main__":
    main()
