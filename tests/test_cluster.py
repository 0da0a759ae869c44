"""Several real node processes on one real Redis: they find each other with nothing but the
Redis URL, the cluster secret and their own port, leave each other's lists when stopped or
killed, and seat a crowd joining on both at once into full lobbies, none over its size."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clients.client import Session
from rooms.bus_redis import RedisBus
from rooms.nodes import TTL
from tests.helpers import eventually
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis

EXE = Path(sys.executable).parent / "lampio-stream"
SECRET = "cluster-secret-for-the-tests-0123456789"


class NodeProcess:
    """``lampio-stream serve`` with the given flags on a free port of its own, its organiser
    key read from what it prints when none is given."""

    def __init__(self, redis_url: str, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = ""
        self.generates_key = "--organiser-key" not in flags
        # Nothing from this environment's LAMPIO_* settings: the flags are all the node gets.
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPIO_")}
        self.proc = subprocess.Popen(
            [
                str(EXE),
                "serve",
                "--redis-url",
                redis_url,
                "--cluster-secret",
                SECRET,
                "--port",
                str(self.port),
                *flags,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
        )

    async def started(self, http: aiohttp.ClientSession) -> None:
        """Wait for the printed organiser key (when generated) and the first answer."""
        out = self.proc.stdout
        assert out is not None
        if self.generates_key:

            async def key_line() -> bytes:
                line: bytes = await asyncio.to_thread(out.readline)
                assert line or self.proc.poll() is None, "the node exited"
                return line if b"organiser key" in line else b""

            line = await eventually(key_line, 30, "the organiser key on stdout")
            self.key = line.rsplit(b" ", 1)[-1].strip().decode()

        async def answers() -> bool:
            try:
                async with http.get(f"{self.url}/healthz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(answers, 30, f"{self.url}/healthz", interval=0.1)

    async def nodes(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        """What ``GET /api/nodes`` answers on this node."""
        headers = {"Authorization": f"Bearer {self.key}"}
        async with http.get(f"{self.url}/api/nodes", headers=headers) as response:
            assert response.status == 200, await response.text()
            listed: list[dict[str, Any]] = (await response.json())["nodes"]
            return listed

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@asynccontextmanager
async def nodes(redis_url: str, count: int, *flags: str) -> AsyncIterator[list[NodeProcess]]:
    """``count`` nodes on one Redis, all answering; every one ended afterwards."""
    started = [NodeProcess(redis_url, *flags) for _ in range(count)]
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(node.started(http) for node in started))
        yield started
    finally:
        for node in started:
            node.end()


async def test_nodes_find_each_other_and_leave_on_sigterm_and_sigkill(
    redis_server: RedisServer,
) -> None:
    """Only --redis-url, --cluster-secret and --port: each node lists both (itself marked), a
    node stopped with SIGTERM leaves the other's list within seconds, one killed within the
    registry's ttl."""
    redis_server.flush()
    async with nodes(redis_server.url, 2) as (a, b), aiohttp.ClientSession() as http:

        async def both_listed(node: NodeProcess) -> list[dict[str, Any]]:
            listed = await node.nodes(http)
            return listed if len(listed) == 2 else []

        by_a, by_b = await both_listed(a), await both_listed(b)
        assert by_a and by_b, (by_a, by_b)
        assert [n["id"] for n in by_a] == [n["id"] for n in by_b]
        assert {n["url"] for n in by_a} == {a.url, b.url}  # the real port, nothing configured
        a_id = next(n["id"] for n in by_a if n["self"])
        b_id = next(n["id"] for n in by_b if n["self"])
        assert a_id != b_id and {n["id"] for n in by_a} == {a_id, b_id}
        assert all(n["draining"] is False and n["viewers"] == 0 for n in by_a)

        b.proc.send_signal(signal.SIGTERM)
        stopped = time.monotonic()

        async def only(node_id: str) -> bool:
            return [n["id"] for n in await a.nodes(http)] == [node_id]

        await eventually(lambda: only(a_id), 5, "the stopped node out of the list")
        assert await asyncio.to_thread(b.proc.wait, 15) == 0
        assert time.monotonic() - stopped < 5

        async with nodes(redis_server.url, 1) as (c,):

            async def c_listed() -> bool:
                return len(await a.nodes(http)) == 2

            await eventually(c_listed, 10, "a new node in the list")
            c.proc.kill()  # SIGKILL: no goodbye, its record just stops being renewed
            killed = time.monotonic()
            await eventually(lambda: only(a_id), TTL + 2, "the killed node out of the list")
            assert time.monotonic() - killed <= TTL + 1


async def test_a_crowd_joining_on_two_nodes_at_once_fills_lobbies_one_by_one(
    redis_server: RedisServer,
) -> None:
    """40 viewers join one show at once, half on each of two nodes, lobbies of 5: while they
    join no lobby ever holds more than 5 (read from Redis throughout), and afterwards there are
    8 lobbies of 5, every viewer in exactly the lobby its node told it."""
    redis_server.flush()
    key = "organiser-key-for-the-cluster-test"
    flags = ("--organiser-key", key, "--lobby-size", "5", "--rtmp-port", "off")
    async with (
        nodes(redis_server.url, 2, *flags) as (a, b),
        aiohttp.ClientSession() as http,
    ):
        async with http.post(
            f"{a.url}/api/shows",
            json={"title": "Porrastettu konsertti"},
            headers={"Authorization": f"Bearer {key}"},
        ) as response:
            assert response.status == 201
            show = await response.json()
        sessions = await asyncio.gather(*(Session.connect((a, b)[n % 2].url) for n in range(40)))
        bus = await RedisBus.connect(redis_server.url)
        fullest = 0
        joining = True

        async def watch_lobbies() -> None:
            nonlocal fullest
            while joining:
                listed = (await bus.group_members([f"lobbies:{show['id']}"]))[0]
                sizes = await bus.group_sizes([f"members:{lobby}" for lobby in listed])
                fullest = max([fullest, *sizes])  # and again at once, as often as Redis answers

        watcher = asyncio.create_task(watch_lobbies())
        try:
            joined = await asyncio.gather(
                *(
                    s.request("watch.join", code=show["code"], name=f"Katsoja {n}")
                    for n, s in enumerate(sessions)
                )
            )
            joining = False
            await watcher
            told = {j["me"]["id"]: j["lobby"]["id"] for j in joined}
            assert len(told) == 40  # 40 members, each told one lobby
            listed = (await bus.group_members([f"lobbies:{show['id']}"]))[0]
            seated = await bus.group_members([f"members:{lobby}" for lobby in listed])
            assert len(listed) == 8 and [len(m) for m in seated] == [5] * 8
            assert fullest <= 5
            where = {member: lobby for lobby, m in zip(listed, seated, strict=True) for member in m}
            assert where == told  # each exactly once, where it was told
            assert all(j["lobby"]["capacity"] == 5 for j in joined)
        finally:
            joining = False
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await bus.close()
            await asyncio.gather(*(s.close() for s in sessions))
