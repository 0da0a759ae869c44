"""RTMP ingest through the real server: FFmpeg (PyAV) pushes H.264 + AAC; viewers decode it."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from media import amf0, rtmp
from media.frame import EncodedFrame
from tests.helpers import eventually
from tests.nodes import Node, serve, start_viewer
from tests.rtmp_push import push
from tests.rtmp_raw import RawRtmp, first_chunk, nested_arrays

pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    """One node with the RTMP ingest on a free port (in-process bus; engines: test_live.py)."""
    async with serve(rtmp_port=0) as running:
        yield running


def rtmp_base(node: Node) -> str:
    return f"rtmp://127.0.0.1:{node.rtmp_port}/live"


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


# -- crafted bytes through the real RTMP server ----------------------------------------------------


@dataclass
class StubSink:
    """A show's broadcast, as far as the RTMP server can tell."""

    frames: list[EncodedFrame] = field(default_factory=list)
    closed: int = 0

    def push(self, frame: EncodedFrame) -> None:
        """Keep the frame."""
        self.frames.append(frame)

    def warn(self, code: str, message: str) -> None:
        """Ignore warnings."""

    async def close(self) -> None:
        """Count the close."""
        self.closed += 1


@dataclass
class Ingest:
    """The RTMP server on a loopback port; the key ``good`` is accepted."""

    port: int = 0
    keys: list[str] = field(default_factory=list)
    sinks: list[StubSink] = field(default_factory=list)


@dataclass
class Logged:
    """What media.rtmp logged, in order."""

    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def info(self, event: str, **fields: Any) -> None:
        """Record an info line."""
        self.events.append(("info", event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        """Record a warning line."""
        self.events.append(("warning", event, fields))

    def errors(self) -> list[tuple[str, str]]:
        """(level, code) of every protocol error so far."""
        return [(lv, f["code"]) for lv, e, f in self.events if e == "rtmp.protocol_error"]


@pytest.fixture
async def ingest() -> AsyncIterator[Ingest]:
    """The RTMP server alone, with a stub show behind the key ``good``."""
    ingest = Ingest()

    async def authorise(key: str) -> rtmp.FrameSink | None:
        ingest.keys.append(key)
        if key != "good":
            return None
        sink = StubSink()
        ingest.sinks.append(sink)
        return sink

    server = rtmp.RtmpServer(authorise)
    ingest.port = await server.start("127.0.0.1", 0)
    yield ingest
    await server.close()


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Logged:
    """Capture media.rtmp's log lines (structlog may cache its loggers, so swap the module's)."""
    logged = Logged()
    monkeypatch.setattr(rtmp, "log", logged)
    return logged


@pytest.fixture
async def clients(ingest: Ingest) -> AsyncIterator[list[RawRtmp]]:
    """Raw clients opened by a test, closed after it."""
    opened: list[RawRtmp] = []
    yield opened
    for client in opened:
        await client.close()


async def open_client(ingest: Ingest, clients: list[RawRtmp]) -> RawRtmp:
    client = await RawRtmp.open(ingest.port)
    clients.append(client)
    return client


async def test_media_before_publish_ends_the_connection(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged
) -> None:
    client = await open_client(ingest, clients)
    await client.connect()
    await client.send(first_chunk(6, rtmp.VIDEO, 1000, bytes(128), stream_id=1))
    assert await client.closed()
    assert logged.errors() == [("info", "not_publishing")]


async def test_large_command_before_publish_ends_the_connection(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged
) -> None:
    client = await open_client(ingest, clients)
    await client.send(first_chunk(3, rtmp.COMMAND_AMF0, 64 * 1024 + 1, bytes(128)))
    assert await client.closed()
    assert logged.errors() == [("info", "too_large")]


async def test_messages_under_way_before_publish_are_limited(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged
) -> None:
    client = await open_client(ingest, clients)
    for csid in range(4, 4 + rtmp.MAX_PARTIAL):
        await client.send(first_chunk(csid, rtmp.COMMAND_AMF0, 1000, bytes(128)))
    await client.connect()  # sixteen half-sent messages are still within bounds
    await client.send(first_chunk(40, rtmp.COMMAND_AMF0, 1000, bytes(128)))
    assert await client.closed()
    assert logged.errors() == [("info", "too_many_partial")]


async def test_bytes_under_way_before_publish_are_limited(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged
) -> None:
    client = await open_client(ingest, clients)
    await client.set_chunk_size(60_000)
    for csid in range(4, 8):  # 240,000 bytes held: within the 256 KiB
        await client.send(first_chunk(csid, rtmp.COMMAND_AMF0, 64 * 1024, bytes(60_000)))
    await client.connect()
    await client.send(first_chunk(8, rtmp.COMMAND_AMF0, 64 * 1024, bytes(60_000)))
    assert await client.closed()
    assert logged.errors() == [("info", "buffer_full")]


async def test_bytes_under_way_after_publish_are_limited(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged
) -> None:
    client = await open_client(ingest, clients)
    await client.connect()
    assert (await client.publish("good"))["code"] == "NetStream.Publish.Start"
    await client.set_chunk_size(3_000_000)
    for csid in (4, 5, 6):  # 9,000,000 bytes of three unfinished 4 MiB video frames
        await client.send(first_chunk(csid, rtmp.VIDEO, 4 * 1024 * 1024, bytes(3_000_000), 1))
    assert await client.closed()
    assert logged.errors() == [("info", "buffer_full")]
    assert ingest.sinks[0].closed == 1  # the show's publication ends with its connection


async def test_chunk_stream_ids_are_limited(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged
) -> None:
    client = await open_client(ingest, clients)
    for csid in range(2, 2 + rtmp.MAX_CHUNK_STREAMS):  # empty messages: nothing buffered at all
        await client.send(first_chunk(csid, rtmp.USER_CONTROL, 0, b""))
    await client.connect()
    await client.send(first_chunk(1000, rtmp.USER_CONTROL, 0, b""))
    assert await client.closed()
    assert logged.errors() == [("info", "too_many_streams")]


async def test_a_header_shortening_a_message_under_way_is_refused(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged
) -> None:
    client = await open_client(ingest, clients)
    await client.send(first_chunk(3, rtmp.COMMAND_AMF0, 300, bytes(128)))
    await client.send(first_chunk(3, rtmp.COMMAND_AMF0, 50, bytes(50)))
    assert await client.closed()
    assert logged.errors() == [("info", "bad_chunk")]


async def test_deeply_nested_amf0_ends_only_that_connection(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged
) -> None:
    performer = await open_client(ingest, clients)
    await performer.connect()
    assert (await performer.publish("good"))["code"] == "NetStream.Publish.Start"
    attacker = await open_client(ingest, clients)
    await attacker.message(3, rtmp.COMMAND_AMF0, amf0.encode("connect", 1) + nested_arrays(5000))
    assert await attacker.closed()
    assert logged.errors() == [("info", "bad_amf0")]
    await performer.command("FCUnpublish", 4, None, "good")  # the performer is still served
    assert (await performer.expect("_result"))[1] == 4
    assert ingest.sinks[0].closed == 0


@pytest.mark.parametrize(
    "error",
    [ValueError, RecursionError, IndexError, struct.error],
    ids=["ValueError", "RecursionError", "IndexError", "struct.error"],
)
async def test_unforeseen_parse_errors_end_only_that_connection(
    ingest: Ingest,
    clients: list[RawRtmp],
    logged: Logged,
    monkeypatch: pytest.MonkeyPatch,
    error: type[Exception],
) -> None:
    decode_all = amf0.decode_all

    def fragile(data: bytes) -> list[Any]:
        if b"boom" in data:
            raise error("a parser fault nobody foresaw")
        return decode_all(data)

    monkeypatch.setattr(amf0, "decode_all", fragile)
    performer = await open_client(ingest, clients)
    await performer.connect()
    attacker = await open_client(ingest, clients)
    await attacker.command("boom", 1)
    assert await attacker.closed()
    assert logged.errors() == [("warning", "malformed")]
    assert all("exc_info" not in fields for _, _, fields in logged.events)  # no traceback
    await performer.command("createStream", 5, None)
    assert (await performer.expect("_result"))[1] == 5


async def test_a_second_publish_is_refused_and_the_first_pipeline_closed(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[rtmp.FlvToFrames] = []
    close = rtmp.FlvToFrames.close

    def spy(self: rtmp.FlvToFrames) -> None:
        closed.append(self)
        close(self)

    monkeypatch.setattr(rtmp.FlvToFrames, "close", spy)
    client = await open_client(ingest, clients)
    await client.connect()
    assert (await client.publish("good"))["code"] == "NetStream.Publish.Start"
    status = await client.publish("good")
    assert status["level"] == "error" and status["code"] == "NetStream.Publish.BadName"
    assert await client.closed()
    assert ingest.keys == ["good"]  # the second key was never even looked up
    assert [sink.closed for sink in ingest.sinks] == [1]
    assert len(closed) == 1
    assert ("info", "rtmp.refused", {"code": "already_publishing"}) in logged.events


async def test_nothing_logged_names_the_encoders_address(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong key, a broken protocol, input we fail on and a second publish are logged with their
    code, never with the address of the encoder (personal data, in logs kept for weeks)."""

    async def encoder() -> RawRtmp:
        client = await RawRtmp.open(ingest.port, local_address="127.0.0.7")
        clients.append(client)
        await client.connect()
        return client

    assert (await (await encoder()).publish("wrong"))["code"] == "NetStream.Publish.BadName"
    broken = await encoder()
    await broken.message(3, rtmp.VIDEO, b"\x17")  # media before publishing
    assert await broken.closed()
    decode_all = amf0.decode_all

    def failing(data: bytes) -> list[Any]:
        if b"boom" in data:
            raise RuntimeError("a fault of ours")
        return decode_all(data)

    monkeypatch.setattr(amf0, "decode_all", failing)
    await (await encoder()).command("boom", 1)
    twice = await encoder()
    await twice.publish("good")
    await twice.publish("good")
    assert await twice.closed()

    def codes() -> set[str]:
        return {fields.get("code", "") for _, _, fields in logged.events}

    await eventually(lambda: {"bad_key", "internal", "already_publishing"} <= codes())
    assert len(logged.events) >= 4
    for level, event, fields in logged.events:
        assert "127.0.0.7" not in repr(fields), (level, event, fields)


async def test_a_connection_that_never_publishes_is_closed(
    ingest: Ingest, clients: list[RawRtmp], logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rtmp, "PUBLISH_TIMEOUT", 1.0)
    # The encoder that publishes connects first, so its time to publish runs out first.
    publishing = await open_client(ingest, clients)
    await publishing.connect()
    assert (await publishing.publish("good"))["code"] == "NetStream.Publish.Start"
    idle = await open_client(ingest, clients)
    await idle.connect()
    for _ in range(3):  # busy, but never publishing
        await idle.command("createStream", 9, None)
        await idle.expect("_result")
    assert await idle.closed(timeout=3)
    assert logged.errors() == [("info", "publish_timeout")]
    # A publishing encoder is not hurried: past its own time to publish, it is still served.
    await publishing.command("createStream", 5, None)
    assert (await publishing.expect("_result"))[1] == 5
