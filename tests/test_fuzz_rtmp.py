"""Fuzzing the RTMP ingest: AMF0 round trips and garbage at the unit level, then hypothesis-made
bytes through the node's real RTMP server: handshakes of any shape, chunks with any header (every
basic-header form, chunk sizes, message lengths, types, stream ids, extended timestamps), AMF0
commands with values of the wrong type, deep, long or in arrays, publishes under right, wrong and
hostile keys, and FLV tags once publishing. Each bad connection ends by itself (the server hangs up
once the bytes are read), nothing is logged as an error or as a parse failure nobody foresaw, the
show pushed by a real encoder all along (tests/rtmp_push.py) keeps its publication and its viewer
its frames, and an honest encoder's publish is still accepted after every example."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from hypothesis import example, given
from hypothesis import strategies as st

from clients.client import Watcher
from media import amf0, rtmp
from media.stage import Publication
from tests.fuzzing import (
    ServerLog,
    any_value,
    fuzz_settings,
    hostile_text,
    near,
    server_log,
    weighted,
)
from tests.helpers import eventually
from tests.nodes import Node, serve, start_viewer
from tests.rtmp_push import push
from tests.rtmp_raw import RawRtmp, basic_header

pytestmark = pytest.mark.usefixtures("loopback_ice")

# -- AMF0 ------------------------------------------------------------------------------------------

# Text around the 65535-byte limit of a short string (the long-string marker beyond), in
# one-, two- and four-byte characters.
long_strings = st.builds(
    lambda unit, size: unit * (size // len(unit.encode())),
    st.sampled_from(["x", "\u00e4", "\U0001f600"]),
    st.sampled_from([65532, 65535, 65536, 65540, 70_000]),
)
amf_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.integers(-(2**53), 2**53),
    st.text(max_size=20),
    long_strings,
)
amf_values = st.recursive(
    amf_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def as_decoded(value: Any) -> Any:
    """What AMF0 gives back for ``value``: every number a float, arrays as lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {key: as_decoded(item) for key, item in value.items()}
    return [as_decoded(item) for item in value]


def nested(levels: int, container: str) -> Any:
    value: Any = None
    for _ in range(levels):
        value = [value] if container == "array" else {"a": value}
    return value


@fuzz_settings(300)
@given(values=st.lists(amf_values, max_size=4))
@example(values=[[1, "a", [None, True]]])  # arrays could not be encoded (echoed) at all
@example(values=["x" * 65536, {"k": "\u00e4" * 40_000}])  # nor text over 65535 bytes
@example(values=[nested(amf0.MAX_DEPTH, "array"), nested(amf0.MAX_DEPTH, "object")])
def test_amf0_values_round_trip(values: list[Any]) -> None:
    assert amf0.decode_all(amf0.encode(*values)) == [as_decoded(v) for v in values]


@fuzz_settings(200)
@given(value=st.one_of(any_value, st.floats(), st.integers(), st.tuples(any_value)))
@example(value=10**400)  # beyond a double
@example(value="\ud800")  # not Unicode
@example(value={"k" * 65536: 1})  # a property name over 65535 bytes
@example(value=nested(amf0.MAX_DEPTH + 1, "array"))
@example(value=b"bytes")
def test_amf0_encodes_anything_or_refuses_it_as_amf0(value: Any) -> None:
    try:
        encoded = amf0.encode(value)
    except amf0.AmfError:
        return
    (decoded,) = amf0.decode_all(encoded)
    assert amf0.encode(decoded) == encoded or _has_nan(value)


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_nan(v) for v in value)
    return False


def _mutate_bytes(data: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for how, at, byte in edits:
        i = at % (len(out) + 1)
        if how == "flip" and out:
            out[i % len(out)] ^= 1 << (byte % 8)
        elif how == "set" and out:
            out[i % len(out)] = byte
        elif how == "insert":
            out[i:i] = bytes([byte])
        elif how == "drop" and out:
            del out[i % len(out)]
        elif how == "cut":
            del out[i:]
    return bytes(out)


byte_edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "drop", "cut"]),
        st.integers(0, 10_000),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)
# AMF0 bytes a peer may send: real encodings a little broken, markers and lengths of any value.
amf_bytes = weighted(
    (
        3,
        st.builds(
            lambda vs, e: _mutate_bytes(amf0.encode(*vs), e),
            st.lists(amf_values, max_size=3),
            byte_edits,
        ),
    ),
    (1, st.binary(max_size=64)),
    (
        1,
        st.builds(
            lambda marker, size, tail: bytes([marker]) + size.to_bytes(4, "big") + tail,
            st.sampled_from([0x02, 0x03, 0x08, 0x0A, 0x0B, 0x0C, 0x09, 0x0D, 0x10, 0x11]),
            st.sampled_from([0, 1, 0xFFFF, 0x10000, 0xFFFFFFFF]),
            st.binary(max_size=16),
        ),
    ),
)


@fuzz_settings(500)
@given(data=amf_bytes)
@example(data=b"\x0a\xff\xff\xff\xff" + b"\x05" * 10)  # an array counting more than it holds
@example(data=b"\x0c\xff\xff\xff\xff")  # a long string longer than the bytes
@example(data=b"\x08\x00\x00\x00\x01\x00\x01k")  # an ECMA array cut inside
def test_amf0_decodes_any_bytes_or_refuses_them_as_amf0(data: bytes) -> None:
    try:
        values = amf0.decode_all(data)
    except amf0.AmfError:
        return
    assert isinstance(values, list)


# -- the RTMP server -------------------------------------------------------------------------------

HANDSHAKE = b"\x03" + bytes(rtmp.HANDSHAKE_SIZE) + bytes(rtmp.HANDSHAKE_SIZE)  # C0 C1 C2


@dataclass
class Ingest:
    """The node with its RTMP server; a show a real encoder pushes all along and its viewer; a
    show the examples may publish to; a show an honest encoder publishes to after each one."""

    node: Node
    on_air: dict[str, Any]
    publication: Publication
    viewer: Watcher
    target: dict[str, Any]
    honest: dict[str, Any]


@pytest.fixture
async def ingest() -> AsyncIterator[Ingest]:
    """The ingest of one test; after its examples the pushed show's viewer still gets frames."""
    async with serve(rtmp_port=0) as node:
        on_air, target, honest = [await node.create_show(t) for t in ("Ilma", "Kohde", "Rehti")]
        url = f"rtmp://127.0.0.1:{node.rtmp_port}/live/{on_air['stream_key']}"
        pusher = await push(url, 300)
        viewer = None
        try:
            await eventually(lambda: node.stage.live(on_air["id"]), 20, "the pushed show is live")
            publication = node.publication(on_air["id"])
            assert publication is not None
            viewer = await start_viewer(node, on_air["code"], decode=False)
            await eventually(lambda: viewer.video.frames >= 5, 20, "the viewer gets frames")
            yield Ingest(node, on_air, publication, viewer, target, honest)
            frames = viewer.video.frames
            await eventually(
                lambda: viewer.video.frames >= frames + 10, 10, "the viewer still gets frames"
            )
            assert node.publication(on_air["id"]) is publication
            assert pusher.returncode is None, "the encoder's push was cut"
        finally:
            if pusher.returncode is None:
                pusher.kill()
            await pusher.wait()
            if viewer is not None:
                await viewer.close()
                await viewer.session.close()


@contextlib.contextmanager
def rtmp_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerLog]:
    """The server's log, media.rtmp's own logger made anew inside the capture (structlog may
    have cached the module's)."""
    with server_log() as log:
        monkeypatch.setattr(rtmp, "log", structlog.get_logger("media.rtmp"))
        yield log


def unforeseen(log: ServerLog) -> list[str]:
    """Errors, and input the server failed to parse in a way nobody foresaw (``malformed``)."""
    found = log.faults()
    found += [
        str(entry)
        for entry in log.entries
        if entry.get("event") == "rtmp.protocol_error" and entry.get("code") == "malformed"
    ]
    return found


async def attack(ingest: Ingest, data: bytes) -> None:
    """Send ``data`` on a connection of its own, then end our side: the server must hang up by
    itself, whatever it sends meanwhile."""
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest.node.rtmp_port)

    async def drain() -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass

    reading = asyncio.get_running_loop().create_task(drain())
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(data)
            await writer.drain()
            writer.write_eof()
        await asyncio.wait_for(reading, 10)
    finally:
        reading.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def check_untouched(ingest: Ingest) -> None:
    """The pushed show keeps its publication and its viewer's connection; an honest encoder's
    publish is accepted (and its show goes live)."""
    node = ingest.node
    assert node.publication(ingest.on_air["id"]) is ingest.publication
    assert ingest.viewer.pc is not None and ingest.viewer.pc.connectionState == "connected"
    encoder = await RawRtmp.open(node.rtmp_port)
    try:
        await encoder.connect()
        status = await encoder.publish(ingest.honest["stream_key"])
        assert status["code"] == "NetStream.Publish.Start", status
        await eventually(lambda: node.stage.live(ingest.honest["id"]), 5, "the honest show live")
    finally:
        await encoder.close()
    await eventually(lambda: not node.stage.live(ingest.honest["id"]), 5, "the honest one ended")


async def run_attack(ingest: Ingest, monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    with rtmp_log(monkeypatch) as log:
        await attack(ingest, data)
        await check_untouched(ingest)
        assert not unforeseen(log), f"{unforeseen(log)} after {data[:3000]!r}"
        print(
            "EV",
            [
                (e.get("event"), e.get("code"))
                for e in log.entries
                if str(e.get("event", "")).startswith("rtmp")
            ],
            flush=True,
        )


# Handshakes: the version byte, C1 and C2 of any length, bytes after them.
handshakes = weighted(
    (2, st.binary(max_size=4000)),
    (
        3,
        st.builds(
            lambda version, c1, c2, tail: bytes([version]) + c1 + c2 + tail,
            st.sampled_from([3, 3, 0, 6, 31, 0xFF]),
            st.one_of(
                st.just(bytes(rtmp.HANDSHAKE_SIZE)), st.binary(max_size=rtmp.HANDSHAKE_SIZE + 8)
            ),
            st.one_of(
                st.just(bytes(rtmp.HANDSHAKE_SIZE)), st.binary(max_size=rtmp.HANDSHAKE_SIZE + 8)
            ),
            st.binary(max_size=64),
        ),
    ),
)


@fuzz_settings(25)
@given(data=handshakes)
async def test_handshakes_of_any_shape_end_only_their_connection(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    await run_attack(ingest, monkeypatch, data)


def chunk_bytes(
    fmt: int,
    csid: int,
    timestamp: int,
    extended: int,
    length: int,
    type_id: int,
    stream_id: int,
    body: bytes,
) -> bytes:
    """One chunk as its header fields say, whatever its body really holds."""
    header = basic_header(fmt, csid)
    stamp = timestamp.to_bytes(3, "big")
    if fmt == 0:
        header += (
            stamp + length.to_bytes(3, "big") + bytes([type_id]) + stream_id.to_bytes(4, "little")
        )
    elif fmt == 1:
        header += stamp + length.to_bytes(3, "big") + bytes([type_id])
    elif fmt == 2:
        header += stamp
    if timestamp == 0xFFFFFF:
        header += extended.to_bytes(4, "big")
    return header + body


MESSAGE_TYPES = [1, 2, 3, 4, 5, 6, 8, 9, 15, 16, 17, 18, 19, 20, 22]
control_body = st.one_of(
    st.sampled_from(
        [
            0,
            1,
            127,
            128,
            4096,
            65536,
            rtmp.MAX_MESSAGE,
            rtmp.MAX_MESSAGE + 1,
            0x7FFFFFFF,
            0xFFFFFFFF,
        ]
    ).map(lambda n: n.to_bytes(4, "big")),
    st.binary(max_size=8),
)
chunks = st.builds(
    chunk_bytes,
    st.integers(0, 3),
    st.one_of(st.sampled_from([2, 3, 4, 5, 63, 64, 319, 320, 65599]), st.integers(2, 65599)),
    st.one_of(st.sampled_from([0, 1, 0xFFFFFE, 0xFFFFFF]), st.integers(0, 0xFFFFFF)),
    st.one_of(st.sampled_from([0, 0xFFFFFFFF, 0x80000000]), st.integers(0, 0xFFFFFFFF)),
    st.one_of(
        st.sampled_from(
            [0, 1, 4, 127, 128, 129, 65536, 65537, rtmp.MAX_MESSAGE, rtmp.MAX_MESSAGE + 1, 0xFFFFFF]
        ),
        st.integers(0, 0xFFFFFF),
    ),
    st.one_of(st.sampled_from(MESSAGE_TYPES), st.integers(0, 255)),
    st.one_of(st.sampled_from([0, 1, 0xFFFFFFFF]), st.integers(0, 0xFFFFFFFF)),
    st.one_of(control_body, amf_bytes, st.binary(max_size=300)),
)


@fuzz_settings(60)
@given(data=st.data())
async def test_chunks_of_any_shape_end_only_their_connection(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    # half of them after a publish: media types are allowed then, with larger limits
    start = data.draw(st.sampled_from([b"", publishing(ingest.target["stream_key"])]))
    sent = data.draw(st.lists(chunks, min_size=1, max_size=8))
    await run_attack(ingest, monkeypatch, HANDSHAKE + start + b"".join(sent))


def message(csid: int, type_id: int, payload: bytes, stream_id: int = 0, size: int = 128) -> bytes:
    """One whole message in chunks of ``size`` (the peer's chunk size as the server knows it)."""
    out = chunk_bytes(0, csid, 0, 0, len(payload), type_id, stream_id, payload[:size])
    for start in range(size, len(payload), size):
        out += basic_header(3, csid) + payload[start : start + size]
    return out


def command(*values: Any, stream_id: int = 0) -> bytes:
    return message(3, rtmp.COMMAND_AMF0, amf0.encode(*values), stream_id)


def publishing(key: str) -> bytes:
    """connect, createStream and publish under ``key``, as an encoder begins."""
    return (
        command("connect", 1, {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"})
        + command("createStream", 2, None)
        + command("publish", 3, None, key, "live", stream_id=1)
    )


COMMAND_NAMES = [
    "connect",
    "createStream",
    "publish",
    "releaseStream",
    "FCPublish",
    "FCUnpublish",
    "deleteStream",
    "play",
    "_checkbw",
    "@setDataFrame",
    "onMetaData",
]


def keys(ingest_keys: list[str]) -> st.SearchStrategy[Any]:
    """A publish name: the target show's key (with a query, or nearly), or anything at all."""
    right = st.sampled_from(ingest_keys)
    return weighted(
        (3, right),
        (1, right.map(lambda k: f"{k}?token=1&x=\u00e4")),
        (2, right.flatmap(near)),
        (1, st.one_of(hostile_text, amf_values)),
    )


def flv_video(frame_type: int, codec: int, packet: int, cts: int, body: bytes) -> bytes:
    return bytes([frame_type << 4 | codec, packet]) + (cts & 0xFFFFFF).to_bytes(3, "big") + body


def avc_record(length_size: int, sets: list[bytes], declared: int) -> bytes:
    """An AVCDecoderConfigurationRecord whose counts and sizes may lie."""
    out = bytes([1, 0x64, 0, 0x1F, 0xFC | (length_size - 1) & 3, 0xE0 | declared & 0x1F])
    for parameter_set in sets:
        out += len(parameter_set).to_bytes(2, "big") + parameter_set
    return out + bytes([declared]) + b"".join(len(s).to_bytes(2, "big") + s for s in sets)


def avcc(units: list[bytes], lie: int) -> bytes:
    return b"".join(max(0, len(u) + lie).to_bytes(4, "big") + u for u in units)


video_tags = st.builds(
    flv_video,
    st.sampled_from([1, 2, 5, 0, 15]),
    st.sampled_from([7, 7, 7, 12, 2, 0]),
    st.sampled_from([0, 1, 1, 2, 3]),
    st.sampled_from([0, 0, 0, 1, -1, 0x7FFFFF]),
    st.one_of(
        st.builds(
            avc_record,
            st.integers(1, 4),
            st.lists(st.binary(max_size=24), max_size=3),
            st.integers(0, 255),
        ),
        st.builds(
            avcc, st.lists(st.binary(max_size=40), max_size=4), st.sampled_from([0, 0, 1, -1, 1000])
        ),
        st.binary(max_size=64),
    ),
)
# AAC: an AudioSpecificConfig (real ones and garbage), then raw frames; other codecs too.
audio_tags = st.one_of(
    st.builds(
        lambda config: b"\xaf\x00" + config,
        st.one_of(
            st.sampled_from([b"\x11\x90", b"\x12\x10", b"\x13\x88", b"\x10\x08", b"\xf8\x00"]),
            st.binary(max_size=8),
        ),
    ),
    st.builds(lambda frame: b"\xaf\x01" + frame, st.binary(max_size=200)),
    st.builds(lambda head, rest: bytes([head]) + rest, st.integers(0, 255), st.binary(max_size=32)),
)
media_messages = st.one_of(
    st.builds(lambda tag: message(6, rtmp.VIDEO, tag, stream_id=1), video_tags),
    st.builds(lambda tag: message(4, rtmp.AUDIO, tag, stream_id=1), audio_tags),
    st.builds(
        lambda values: message(
            4, rtmp.DATA_AMF0, amf0.encode("@setDataFrame", "onMetaData", *values), 1
        ),
        st.lists(amf_values, max_size=2),
    ),
)


def commands_for(ingest: Ingest) -> st.SearchStrategy[bytes]:
    """A session: commands whose values are right, of any type or broken bytes; after a
    publish, FLV tags and metadata."""
    name = weighted((4, st.sampled_from(COMMAND_NAMES)), (1, hostile_text), (1, amf_values))
    txid = weighted((3, st.integers(0, 10)), (1, amf_values))
    any_command = st.builds(
        lambda n, t, rest, sid: command(n, t, *rest, stream_id=sid),
        name,
        txid,
        st.lists(amf_values, max_size=4),
        st.sampled_from([0, 1, 7]),
    )
    publish = st.builds(
        lambda t, key, kind: command("publish", t, None, key, kind, stream_id=1),
        txid,
        keys([ingest.target["stream_key"]]),
        st.one_of(st.just("live"), amf_values),
    )
    broken = st.builds(lambda body: message(3, rtmp.COMMAND_AMF0, body), amf_bytes)
    step = weighted((3, any_command), (2, publish), (1, broken), (3, media_messages))
    start = weighted((2, st.just(publishing(ingest.target["stream_key"]))), (1, st.just(b"")))
    return st.builds(lambda s, steps: s + b"".join(steps), start, st.lists(step, max_size=8))


@fuzz_settings(80)
@given(data=st.data())
async def test_commands_and_tags_of_any_shape_end_only_their_connection(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch, data: st.DataObject
) -> None:
    session = data.draw(commands_for(ingest))
    await run_attack(ingest, monkeypatch, HANDSHAKE + session)


# -- what the fuzzing found, kept as regression examples -------------------------------------------


@pytest.mark.parametrize(
    ("txid", "body"),
    [
        ([1.0, "a"], b"\x0a\x00\x00\x00\x02\x00\x3f\xf0" + bytes(6) + b"\x02\x00\x01a"),
        ("x" * 70_000, b"\x0c" + (70_000).to_bytes(4, "big") + b"x" * 70_000),
    ],
    ids=["array", "long-string"],
)
async def test_found_a_transaction_id_of_any_amf0_type_is_echoed(
    ingest: Ingest, monkeypatch: pytest.MonkeyPatch, txid: Any, body: bytes
) -> None:
    """The server answers with the peer's transaction id, which AMF0 could not encode when it
    was an array (the connection closed as bad_amf0) or text over 65535 bytes (struct.error:
    closed as malformed)."""
    with rtmp_log(monkeypatch) as log:
        encoder = await RawRtmp.open(ingest.node.rtmp_port)
        try:
            await encoder.connect()
            assert (await encoder.publish(ingest.target["stream_key"]))["code"].endswith("Start")
            await encoder.message(3, rtmp.COMMAND_AMF0, amf0.encode("FCUnpublish") + body)
            assert (await encoder.expect("_result"))[1] == txid
        finally:
            await encoder.close()
        assert not unforeseen(log) and not [e for e in log.entries if e.get("code") == "bad_amf0"]
