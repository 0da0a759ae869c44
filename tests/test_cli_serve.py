"""The real command: `lampio-stream serve` as a process, as an operator runs it."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from lampio_stream.cli import trim_memory, tune_allocator
from tests.helpers import eventually
from tests.redis_sentinel import MASTER, PASSWORD, Sentinels
from tests.redis_server import RedisServer, free_port

EXE = Path(sys.executable).parent / "lampio-stream"


class Served:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                str(EXE),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--rtmp-port",
                "0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "LAMPIO_LOG_FORMAT": "json", **(env or {})},
        )

    def stop(self) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        return code, time.monotonic() - started


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    extra: list[str] = list(getattr(request, "param", []))
    if extra == ["redis"]:
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        extra = ["--redis-url", server.url]
    elif extra == ["sentinel"]:
        sentinels: Sentinels = request.getfixturevalue("redis_sentinels")
        sentinels.flush()
        addresses = ",".join(f"{host}:{port}" for host, port in sentinels.addresses)
        assert sentinels.url is not None  # the password, and database 1
        extra = [
            "--redis-sentinel",
            addresses,
            "--redis-master",
            MASTER,
            "--redis-url",
            sentinels.url,
        ]
    s = Served("--organiser-key", "K3y-for-the-cli-test", *extra)
    yield s
    if s.proc.poll() is None:
        s.proc.kill()
        s.proc.wait()


async def printed(served: Served, text: bytes, timeout: float = 20) -> bytes:
    """The first line the process prints (on stdout) that contains ``text``."""

    async def line_with_text() -> bytes:
        line: bytes = await asyncio.to_thread(served.proc.stdout.readline)  # type: ignore[union-attr]
        return line if text in line else b""

    return await eventually(line_with_text, timeout, f"a line with {text!r} on stdout")


async def up(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url + "/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


@pytest.mark.parametrize(
    "served",
    [[], ["redis"], pytest.param(["sentinel"], marks=pytest.mark.sentinel)],
    indirect=True,
    ids=["memory", "redis", "sentinel"],
)
async def test_serve_answers_creates_finds_limits_and_stops_on_sigterm(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        await eventually(lambda: up(session, served.url), timeout=20, interval=0.1)
        async with session.get(served.url + "/readyz") as r:
            assert r.status == 200
        async with session.get(served.url + "/metrics") as r:
            assert r.status == 200 and "lampio_build_info" in await r.text()
        async with session.post(
            served.url + "/api/shows",
            json={"title": "Tanssiaiset"},
            headers={"Authorization": "Bearer K3y-for-the-cli-test"},
        ) as r:
            assert r.status == 201
            show = await r.json()
        async with session.get(f"{served.url}/api/shows/by-code/{show['code']}") as r:
            assert r.status == 200 and (await r.json())["title"] == "Tanssiaiset"
        wrong = "000000" if show["code"] != "000000" else "000001"
        statuses = []
        for _ in range(6):
            async with session.get(f"{served.url}/api/shows/by-code/{wrong}") as r:
                statuses.append(r.status)
        assert statuses == [404] * 5 + [429]

        ws = await session.ws_connect(served.url + "/ws")
        assert (await ws.receive_json(timeout=2))["type"] == "hello"
        receiving = asyncio.create_task(ws.receive(timeout=12))
        code, seconds = await asyncio.to_thread(served.stop)
        assert code == 0 and seconds < 10
        told = await receiving  # first told to move, then closed
        assert told.type is aiohttp.WSMsgType.TEXT and told.json()["type"] == "node.draining"
        msg = await ws.receive(timeout=12)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001
    out, err = served.proc.communicate()
    assert b"is running at" in out
    assert b"K3y-for-the-cli-test" not in out + err  # a given key is never printed or logged
    assert PASSWORD.encode() not in out + err  # nor Redis's password
    assert b'"event": "serve.start"' in err


async def test_generated_organiser_key_is_printed_once() -> None:
    served = Served()
    try:
        line = await printed(served, b"organiser key")
        key = line.rsplit(b" ", 1)[-1].strip()
        assert len(key) >= 40
    finally:
        code, _ = await asyncio.to_thread(served.stop)
    out, err = served.proc.communicate()
    assert code == 0
    assert key not in out + err  # not repeated, not logged


def test_busy_port_fails_fast_with_a_clear_message() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(EXE), "serve", "--port", str(port)], capture_output=True, timeout=20
        )
    assert result.returncode == 2
    assert b"cannot listen" in result.stderr


def test_busy_rtmp_port_fails_fast_with_a_clear_message() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(EXE), "serve", "--port", "0", "--rtmp-port", str(port)],
            capture_output=True,
            timeout=20,
        )
    assert result.returncode == 2
    assert b"cannot listen for RTMP" in result.stderr and b"--rtmp-port off" in result.stderr


def _serve_without_rtmp_port(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(EXE), "serve", "--port", str(port), "--organiser-key", "K3y-for-the-cli-test"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "LAMPIO_LOG_FORMAT": "json"},
    )


async def test_a_taken_default_rtmp_port_gives_way_to_a_free_one() -> None:
    """The RTMP port not asked for (a second node on one machine): a free one, said in the log;
    the node serves as usual."""
    import contextlib
    import socket

    with socket.socket() as holder:
        with contextlib.suppress(OSError):  # held by someone else already: taken just the same
            holder.bind(("127.0.0.1", 1935))
            holder.listen()
        port = free_port()
        proc = _serve_without_rtmp_port(port)
        try:
            async with aiohttp.ClientSession() as session:
                await eventually(
                    lambda: up(session, f"http://127.0.0.1:{port}"), timeout=20, interval=0.1
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.to_thread(proc.communicate, None, 15)
    assert proc.returncode == 0
    assert b'"event": "rtmp.default_port_taken"' in err and b'"port": 1935' in err


def test_bad_setting_is_refused_naming_the_variable() -> None:
    result = subprocess.run(
        [str(EXE), "serve"],
        capture_output=True,
        timeout=20,
        env={**os.environ, "LAMPIO_PORT": "eighty"},
    )
    assert result.returncode == 2
    assert b"LAMPIO_PORT" in result.stderr


def test_untested_aiortc_is_refused_before_anything_starts() -> None:
    # The installed aiortc passes the gate, so the process pretends to have another release.
    pretend = (
        "import aiortc; aiortc.__version__ = '1.17.0'; from lampio_stream.cli import main; "
        "raise SystemExit(main(['serve', '--port', '0']))"
    )
    result = subprocess.run([sys.executable, "-c", pretend], capture_output=True, timeout=20)
    assert result.returncode == 2
    assert b"aiortc 1.17.0" in result.stderr and b"aiortc 1.16.x" in result.stderr
    assert b"is running" not in result.stdout


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
async def test_demo_show_is_live_and_watchable(event_loop: str) -> None:
    from clients.client import Session, Watcher
    from media.ice import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    served = Served("--demo", "--ice-host", "127.0.0.1", "--event-loop", event_loop)
    watcher: Watcher | None = None
    try:
        line = await printed(served, b"Demo show is on: code ")
        code = line.split(b"code ")[1][:7].decode().replace(" ", "")
        watcher = Watcher(await Session.connect(served.url))
        joined = await watcher.join(code)
        if not joined["live"]:
            await watcher.session.next_event("show.state")
        await watcher.start()
        await eventually(lambda: watcher.video.frames >= 10 and watcher.audio.frames >= 10, 20)  # type: ignore[union-attr]
        assert watcher.video.sizes == {(640, 360)}
    finally:
        if watcher is not None:
            await watcher.close()
            await watcher.session.close()
        use_host_addresses(None)
        code_, seconds = await asyncio.to_thread(served.stop)
    assert code_ == 0 and seconds < 10


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_trim"), reason="glibc's allocator only")
async def test_the_allocator_is_tuned_and_trimmed() -> None:
    # glibc raised its threshold for mapping large blocks whenever one was freed, and the heap
    # then filled with holes it did not give back (bench/soak.py): serve fixes the threshold and
    # trims the heap once a minute.
    assert tune_allocator()
    app = web.Application()
    trimming = trim_memory(app)
    await anext(trimming)
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "memory-trim"]
    with pytest.raises(StopAsyncIteration):
        await anext(trimming)
    assert task.cancelled()
