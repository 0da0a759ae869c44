"""Three ``lampio-stream serve`` processes behind a real HAProxy on one real redis-server, for the
tests that watch a show across nodes and lose nodes (tests/test_haproxy.py,
tests/test_failover.py): every client knows only HAProxy's address and lands on whichever node it
picks; media goes straight to each node's own ICE address (docs/operations.md)."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers import eventually
from tests.redis_server import RedisServer, free_port

HAPROXY = Path("/usr/sbin/haproxy")
EXE = Path(sys.executable).parent / "lampio-stream"
KEY = secrets.token_urlsafe(24)
SECRET = secrets.token_urlsafe(32)
SHUTDOWN_TIMEOUT = 5.0  # the nodes' --shutdown-timeout (the default)
ALL_UP = "/haproxy/all-up"  # answered by HAProxy itself (see haproxy_config)


@dataclass
class NodeProcess:
    """One ``lampio-stream serve`` process; its output goes to a file (a pipe nobody reads would
    fill up and stall the node)."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    rtmp_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the node vanishes at once, as a crashed machine does."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP: the node goes silent with every connection still open, as a host that lost
        its power or network does (nothing is closed; only the clients' heartbeats notice)."""
        self.proc.send_signal(signal.SIGSTOP)

    def terminate(self) -> None:
        """SIGTERM: the node drains (returns at once; see :attr:`running`)."""
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen node hears nothing else
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_node(redis_url: str, public_url: str, log_dir: Path) -> NodeProcess:
    port, rtmp_port = free_port(), free_port()
    log = log_dir / f"node-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(EXE),
                "serve",
                "--host=127.0.0.1",
                f"--port={port}",
                f"--rtmp-port={rtmp_port}",
                "--ice-host=127.0.0.1",
                f"--redis-url={redis_url}",
                f"--cluster-secret={SECRET}",
                f"--organiser-key={KEY}",
                f"--public-url={public_url}",
                f"--shutdown-timeout={SHUTDOWN_TIMEOUT}",
                "--log-level=warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LAMPIO_LOG_FORMAT": "json"},
        )
    return NodeProcess(port, proc, log, rtmp_port)


def haproxy_config(port: int, rtmp_port: int, nodes: list[NodeProcess]) -> str:
    """Round robin over the nodes, WebSocket upgrades passed through, health checks on /readyz;
    a connection a node refuses (killed, or draining: it no longer listens) is tried again on
    another node at once (``redispatch 1``) instead of failing until the checks notice. RTMP
    (an encoder such as OBS) on ``rtmp_port``, passed through as TCP."""
    servers = "\n".join(
        f"    server n{i} 127.0.0.1:{node.port} check inter 500 fall 2 rise 1"
        for i, node in enumerate(nodes)
    )
    rtmp_servers = "\n".join(
        f"    server n{i} 127.0.0.1:{node.rtmp_port} check inter 500 fall 2 rise 1"
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
    retries 3
    option redispatch 1

frontend audience
    bind 127.0.0.1:{port}
    # for the tests: 200 once HAProxy counts every node up (else the request goes to a node: 404)
    http-request return status 200 if {{ path {ALL_UP} }} {{ nbsrv(nodes) ge {len(nodes)} }}
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}

frontend encoders
    mode tcp
    bind 127.0.0.1:{rtmp_port}
    default_backend rtmp_nodes

backend rtmp_nodes
    mode tcp
    balance roundrobin
{rtmp_servers}
"""


@dataclass
class Deployment:
    url: str  # HAProxy's: the one address clients know
    nodes: list[NodeProcess]
    rtmp_url: str  # HAProxy's too: where an encoder sends RTMP (``/live/<stream key>`` after it)


@contextmanager
def deployment(redis_server: RedisServer, tmp_path: Path) -> Iterator[Deployment]:
    """Three nodes on a flushed Redis behind HAProxy, stopped afterwards."""
    redis_server.flush()
    port, rtmp_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    nodes = [start_node(redis_server.url, url, tmp_path) for _ in range(3)]
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(port, rtmp_port, nodes))
    with open(tmp_path / "haproxy.log", "wb") as out:
        proxy = subprocess.Popen(
            [str(HAPROXY), "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield Deployment(url, nodes, f"rtmp://127.0.0.1:{rtmp_port}/live")
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


async def all_ready(http: aiohttp.ClientSession, deployment: Deployment) -> None:
    """Every node answers ready, and HAProxy counts every one up (else its round robin would
    send every client to the first node it saw up)."""
    for node in deployment.nodes:
        await eventually(lambda node=node: ready(http, node.url), 30, "node ready")  # type: ignore[misc]
    await eventually(lambda: _all_up(http, deployment.url), 30, "HAProxy counts every node up")


async def _all_up(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url + ALL_UP) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def metric(http: aiohttp.ClientSession, node: NodeProcess, name: str) -> float:
    async with http.get(node.url + "/metrics") as response:
        text = await response.text()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, flags=re.MULTILINE)
    assert found is not None, f"{name} not in {node.url}/metrics"
    return float(found.group(1))


async def node_with(
    http: aiohttp.ClientSession, deployment: Deployment, name: str
) -> NodeProcess | None:
    """The running node whose metric ``name`` is not zero, if one is (``lampio_live_shows``:
    the show's origin)."""
    for node in deployment.nodes:
        if node.running and await metric(http, node, name):
            return node
    return None


async def create_show(http: aiohttp.ClientSession, url: str, title: str) -> dict[str, Any]:
    """A new show through the organiser API."""
    headers = {"Authorization": f"Bearer {KEY}"}
    async with http.post(url + "/api/shows", json={"title": title}, headers=headers) as response:
        assert response.status == 201
        show: dict[str, Any] = await response.json()
        return show


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
