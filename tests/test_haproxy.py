"""Three node processes behind a real HAProxy, on one real redis-server: every client uses the one
address of the load balancer and lands on whichever node it picks; a show whose performer is on
one node is watched on all three (each other node pulls it once from the origin, as its
``/metrics`` say). Only HTTP and WebSocket go through HAProxy; media goes straight to each node's
own ICE address (docs/operations.md)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from clients.client import Performer, Session, Watcher
from media.sources import TestPatternTrack, ToneTrack
from tests.helpers import eventually
from tests.redis_server import RedisServer, free_port

HAPROXY = Path("/usr/sbin/haproxy")
EXE = Path(sys.executable).parent / "lampio-stream"
KEY = secrets.token_urlsafe(24)
SECRET = secrets.token_urlsafe(32)

pytestmark = [
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.needs(HAPROXY, "HAProxy (Debian's haproxy package; `make test` installs it)"),
]


@dataclass
class NodeProcess:
    """One ``lampio-stream serve`` process; its output goes to a file (a pipe nobody reads would
    fill up and stall the node)."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_node(redis_url: str, public_url: str, log_dir: Path) -> NodeProcess:
    port = free_port()
    log = log_dir / f"node-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(EXE),
                "serve",
                "--host=127.0.0.1",
                f"--port={port}",
                "--rtmp-port=off",
                "--ice-host=127.0.0.1",
                f"--redis-url={redis_url}",
                f"--cluster-secret={SECRET}",
                f"--organiser-key={KEY}",
                f"--public-url={public_url}",
                "--log-level=warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LAMPIO_LOG_FORMAT": "json"},
        )
    return NodeProcess(port, proc, log)


def haproxy_config(port: int, nodes: list[NodeProcess]) -> str:
    """Round robin over the nodes, WebSocket upgrades passed through, health checks on /readyz."""
    servers = "\n".join(
        f"    server n{i} 127.0.0.1:{node.port} check inter 500 fall 2 rise 1"
        for i, node in enumerate(nodes)
    )
    return f"""
global
    maxconn 512

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    option http-server-close

frontend audience
    bind 127.0.0.1:{port}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}
"""


@dataclass
class Deployment:
    url: str  # HAProxy's: the one address clients know
    nodes: list[NodeProcess]


@pytest.fixture
def deployment(redis_server: RedisServer, tmp_path: Path) -> Iterator[Deployment]:
    redis_server.flush()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    nodes = [start_node(redis_server.url, url, tmp_path) for _ in range(3)]
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(port, nodes))
    with open(tmp_path / "haproxy.log", "wb") as out:
        proxy = subprocess.Popen(
            [str(HAPROXY), "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield Deployment(url, nodes)
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        for node in nodes:
            node.stop()


async def ready(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url + "/readyz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def metric(http: aiohttp.ClientSession, node: NodeProcess, name: str) -> float:
    async with http.get(node.url + "/metrics") as response:
        text = await response.text()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, flags=re.MULTILINE)
    assert found is not None, f"{name} not in {node.url}/metrics"
    return float(found.group(1))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_viewers_behind_haproxy_watch_on_every_node(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    for node in deployment.nodes:
        await eventually(lambda node=node: ready(http, node.url), 30, "node ready")  # type: ignore[misc]
    await eventually(lambda: ready(http, deployment.url), 30, "HAProxy passes requests on")
    headers = {"Authorization": f"Bearer {KEY}"}
    async with http.post(
        deployment.url + "/api/shows", json={"title": "Kuorokonsertti"}, headers=headers
    ) as response:
        assert response.status == 201
        show = await response.json()
    performer = Performer(await Session.connect(deployment.url))
    await performer.start(
        show["id"], show["performer_token"], [TestPatternTrack(), ToneTrack()], "video/VP8"
    )
    watchers: list[Watcher] = []
    try:
        started = time.monotonic()
        for _ in range(6):  # round robin: two on each node, the performer's included
            watcher = Watcher(await Session.connect(deployment.url), decode=False)
            joined = await watcher.join(show["code"])
            if not joined["live"]:
                await watcher.session.next_event("show.state")
            await watcher.start()
            watchers.append(watcher)
        await eventually(
            lambda: all(w.video is not None and w.video.frames >= 10 for w in watchers),
            45,
            "every viewer receives frames",
        )
        viewers = [await metric(http, node, "lampio_viewers") for node in deployment.nodes]
        assert sum(viewers) == 6 and sum(1 for v in viewers if v) >= 2, viewers
        live = [await metric(http, node, "lampio_live_shows") for node in deployment.nodes]
        assert sorted(live) == [0, 0, 1]
        origin = deployment.nodes[live.index(1)]
        # One stream from the origin to each other node with viewers, however many they have.
        edges_with_viewers = sum(
            1 for node, v in zip(deployment.nodes, viewers, strict=True) if v and node is not origin
        )
        assert await metric(http, origin, "lampio_feeds_out") == edges_with_viewers
        assert time.monotonic() - started < 45
    finally:
        for watcher in watchers:
            await watcher.close()
            await watcher.session.close()
        await performer.stop()
        await performer.session.close()
