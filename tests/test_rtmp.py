"""RTMP ingest through the real server: FFmpeg (PyAV) pushes H.264 + AAC; viewers decode it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from lampio_stream.app import create_app
from rooms.bus_memory import MemoryBus
from signaling.rtmp import RTMP_PORT
from tests.conftest import make_config
from tests.helpers import eventually
from tests.test_live import Node, start_viewer

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    """One node with the RTMP ingest on a free port (in-process bus; engines: test_live.py)."""
    server = TestServer(create_app(make_config(rtmp_port=0), bus=MemoryBus()), host="127.0.0.1")
    await server.start_server()
    yield Node(server, str(server.make_url("")).rstrip("/"))
    await server.close()


def rtmp_base(node: Node) -> str:
    return f"rtmp://127.0.0.1:{node.server.app[RTMP_PORT]}/live"  # type: ignore[index]


async def push(url: str, seconds: float, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.rtmp_push",
        url,
        str(seconds),
        *extra,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_rtmp_push_reaches_viewers_and_disconnect_pauses(node: Node) -> None:
    show = await node.create_show()
    assert show["rtmp_url"] == rtmp_base(node)
    pusher = await push(f"{rtmp_base(node)}/{show['stream_key']}", 6)
    viewer = None
    try:
        await eventually(lambda: node.stage.live(show["id"]), 15)
        viewer = await start_viewer(node, show["code"])
        await eventually(lambda: viewer.video.frames >= 10 and viewer.audio.frames >= 10, 20)
        assert viewer.video.sizes == {(320, 240)}
        output, _ = await asyncio.wait_for(pusher.communicate(), 20)
        assert b"pushed" in output
        event = await viewer.session.next_event("show.state")
        while event["state"] != "paused":
            event = await viewer.session.next_event("show.state")
        assert not node.stage.live(show["id"])
    finally:
        if pusher.returncode is None:
            pusher.kill()
            await pusher.wait()
        if viewer is not None:
            await viewer.close()
            await viewer.session.close()


async def test_unknown_key_is_refused_and_disturbs_nothing(node: Node) -> None:
    show = await node.create_show()
    good = await push(f"{rtmp_base(node)}/{show['stream_key']}", 5)
    try:
        await eventually(lambda: node.stage.live(show["id"]), 15)
        bad = await push(f"{rtmp_base(node)}/not-a-key", 2)
        output, _ = await asyncio.wait_for(bad.communicate(), 20)
        assert bad.returncode != 0 and b"pushed" not in output
        assert node.stage.live(show["id"])  # the real performer carries on
        output, _ = await asyncio.wait_for(good.communicate(), 20)
        assert b"pushed" in output
    finally:
        if good.returncode is None:
            good.kill()
            await good.wait()


async def test_b_frames_are_held_back_and_the_performer_is_told(node: Node) -> None:
    from clients.client import Session

    show = await node.create_show()
    performer = await Session.connect(node.url)  # follows the show as its performer page does
    await performer.request("watch.join", code=show["code"])
    pusher = await push(f"{rtmp_base(node)}/{show['stream_key']}", 4, "--bframes")
    try:
        warning = await performer.next_event("show.warning", timeout=20)
        assert warning["code"] == "b_frames" and "B-frames" in warning["message"]
        broadcast = node.stage.broadcast(show["id"])
        assert broadcast.codec("video") is None  # not one broken video frame was forwarded
        await asyncio.wait_for(pusher.communicate(), 20)
    finally:
        if pusher.returncode is None:
            pusher.kill()
            await pusher.wait()
        await performer.close()
