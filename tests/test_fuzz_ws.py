"""Fuzzing the WebSocket: every registered command gets hypothesis-made messages (right values, near
misses, wrong types, huge numbers, deep nesting, control, format, bidirectional and surrogate
characters, very long text, mutated SDP) from a connection in each role (a stranger, a viewer, a
watcher, a member in the lobby voice, the performer, a care-home screen, a staff phone), on both
bus engines. Every answer is a success or an error code of the documented table (never
``internal_error``), the socket still answers ``ping``, another client's ping is unaffected, the
server logs no error, and on Redis every key left behind expires (or is a record that lives until
an explicit action: ``tests/buskeys.py``)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from hypothesis import assume, given
from hypothesis import strategies as st

from lampio_stream import app as app_module
from lampio_stream.app import commands
from media.ice import rtc_configuration
from rooms.bus import Bus
from rooms.reactions import KINDS
from signaling import screens as screen_commands
from signaling import ws as ws_module
from signaling.screens import SCREEN_STATES, SOUND_STATES
from tests import buskeys
from tests.fuzzing import (
    any_value,
    chars,
    documented_ws_codes,
    fuzz_settings,
    hostile_text,
    mutated_sdp,
    offers,
    server_log,
    value_for,
    weighted,
)
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY, Node, serve

pytestmark = pytest.mark.usefixtures("loopback_ice")

CODES = documented_ws_codes()
NAMES = commands().names()
EXAMPLES_PER_COMMAND = 16  # derandomized: the same 16 every run (30 cost ~50 s more)
AUTH = {"Authorization": f"Bearer {ORGANISER_KEY}"}

# The role whose commands these are: most examples come from it, the others from any role.
NATURAL = {
    "perform.start": "performer",
    "perform.stop": "performer",
    "perform.end": "performer",
    "hall.mute": "performer",
    "watch.start": "viewer",
    "watch.answer": "watcher",
    "watch.leave": "viewer",
    "member.rename": "viewer",
    "chat.send": "viewer",
    "chat.history": "viewer",
    "react": "viewer",
    "chat.delete": "performer",
    "chat.mute": "performer",
    "viewer.remove": "performer",
    "caption.send": "performer",
    "voice.join": "viewer",
    "voice.mic": "talker",
    "voice.leave": "talker",
    "voice.intermission": "performer",
    "voice.stage": "performer",
    "lobby.list": "performer",
    "screen.status": "screen",
    "screen.pair": "phone",
    "remote.control": "phone",
    "remote.react": "phone",
    "remote.forget": "phone",
}
ROLES = ["stranger", "viewer", "watcher", "talker", "performer", "screen", "phone"]


@pytest.fixture
async def node(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    """The node, on each engine, with the limits on guessing out of the way: every example makes
    a new connection and may send wrong codes and keys, and the next example still needs to join
    (the limits themselves: tests/test_ratelimit.py, tests/test_guard.py)."""
    monkeypatch.setattr(app_module, "CODE_FAILURES_ALLOWED", 10**6)
    for name in ("PAIR_FAILURES_ALLOWED", "STAFF_KEY_FAILURES_ALLOWED", "NEW_PAIRINGS_ALLOWED"):
        monkeypatch.setattr(screen_commands, name, 10**6)
    monkeypatch.setattr(ws_module, "MESSAGE_RATE", 10_000.0)
    monkeypatch.setattr(ws_module, "MESSAGE_BURST", 10_000)
    async with serve(bus) as running:
        yield running


class Closed(AssertionError):
    """The server closed the socket."""


class Socket:
    """A raw WebSocket to the node: frames out as they are, results matched by id."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1_000_000)
        self._results: dict[Any, dict[str, Any]] = {}

    async def result(self, msg_id: Any, timeout: float = 15.0) -> dict[str, Any]:
        """The result with ``msg_id`` (events and other results are kept aside)."""
        async with asyncio.timeout(timeout):
            while msg_id not in self._results:
                raw = await self.ws.receive()
                if raw.type is not aiohttp.WSMsgType.TEXT:
                    raise Closed(f"the socket closed: {raw.type.name} {self.ws.close_code}")
                message = json.loads(raw.data)
                if message.get("type") == "result":
                    self._results[_key(message.get("id"))] = message
        return self._results.pop(msg_id)

    def pending(self) -> list[dict[str, Any]]:
        """Results nobody asked for yet."""
        return list(self._results.values())

    async def request(self, type_: str, **fields: Any) -> dict[str, Any]:
        """A command that must succeed; its result."""
        msg_id = next(self._ids)
        await self.ws.send_json({"id": msg_id, "type": type_, **fields})
        reply = await self.result(msg_id)
        assert reply["success"], (type_, reply)
        result: dict[str, Any] = reply["result"]
        return result

    async def pings(self) -> bool:
        """Whether the socket still answers ping."""
        try:
            return (await self.request("ping")) == {"pong": True}
        except (Closed, TimeoutError, ConnectionError):
            return False


def _key(msg_id: Any) -> Any:
    return msg_id if isinstance(msg_id, int | str | None) else repr(msg_id)


@dataclass
class World:
    """A fresh show and connections in the roles an example needs, with the right values of each
    field (ids, codes, tokens, keys) that the example may use as they are or a little wrong."""

    node: Node
    http: aiohttp.ClientSession
    sockets: list[Socket] = field(default_factory=list)
    right: dict[str, list[Any]] = field(default_factory=dict)
    peers: list[RTCPeerConnection] = field(default_factory=list)
    publication: Any = None

    def know(self, name: str, *values: Any) -> None:
        self.right.setdefault(name, []).extend(v for v in values if v is not None)

    async def socket(self) -> Socket:
        ws = await self.http.ws_connect(self.node.url + "/ws")
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello"
        socket = Socket(ws)
        self.sockets.append(socket)
        return socket

    async def close(self) -> None:
        for socket in self.sockets:
            await socket.ws.close()
        for pc in self.peers:
            await pc.close()
        if self.publication is not None:
            await self.node.stage.unpublish(self.publication)


async def create_show(http: aiohttp.ClientSession, node: Node) -> dict[str, Any]:
    async with http.post(
        f"{node.url}/api/shows", json={"title": "Fuzz", "performer": "Esa"}, headers=AUTH
    ) as response:
        assert response.status == 201
        show: dict[str, Any] = await response.json()
        return show


async def seated(world: World, code: str) -> Socket:
    """A viewer seated in the show, who said something in the chat."""
    viewer = await world.socket()
    joined = await viewer.request("watch.join", code=code, name="Aili")
    posted = await viewer.request("chat.send", text="hei", client_id="c-1")
    lobby = joined["lobby"]
    world.know("lobby", lobby["id"], lobby["code"])
    world.know("member", joined["me"]["id"])
    world.know("session", joined["session"])
    world.know("message", posted["id"])
    world.know("after", posted["id"])
    return viewer


async def build(node: Node, http: aiohttp.ClientSession, role: str, live: bool) -> World:
    """The world an example of ``role`` runs in; its last socket is the one fuzzed."""
    world = World(node, http)
    sdp = await offers()
    world.know("sdp", *sdp.values())
    world.know("kind", *KINDS)
    world.know("state", *sorted(SCREEN_STATES))
    world.know("sound", *sorted(SOUND_STATES))
    world.know("name", "Aili", "TV 2")
    world.know("text", "hei", "")
    world.know("client_id", "c-1", "c-2")
    world.know("after", "0-0")
    world.know("head_count", 1, 2, 200)
    world.know("volume", 0, 80, 100)
    for flag in ("muted", "on", "open", "hall", "screen"):
        world.know(flag, True, False)
    show = await create_show(http, node)
    world.know("show", show["id"])
    world.know("token", show["performer_token"])
    world.know("code", show["code"], show["code_display"])
    if live or role == "watcher":
        codecs = {"video": "video/VP8", "audio": "audio/opus"}
        world.publication = await node.stage.publish_frames(show["id"], codecs)
    if role in ("viewer", "watcher", "talker"):
        viewer = await seated(world, show["code"])
        if role == "watcher":
            offer = await viewer.request("watch.start")
            pc = RTCPeerConnection(rtc_configuration())
            world.peers.append(pc)
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            world.know("sdp", pc.localDescription.sdp)
        if role == "talker":
            await viewer.request("voice.join", sdp=sdp["voice"])
    elif role == "performer":
        await seated(world, show["code"])
        performer = await world.socket()
        await performer.request("perform.host", show=show["id"], token=show["performer_token"])
    elif role in ("screen", "phone"):
        async with http.post(
            f"{node.url}/api/staff-keys", json={"label": "Koivukoti"}, headers=AUTH
        ) as response:
            assert response.status == 201
            staff_key = (await response.json())["key"]
        screen = await world.socket()
        pairing = await screen.request("screen.hello")
        phone = await world.socket()
        await phone.request("remote.open", key=staff_key)
        paired = await phone.request("screen.pair", code=pairing["code"])
        world.know("key", staff_key)
        world.know("token", pairing["token"])
        world.know("code", pairing["code"])
        world.know("screen", paired["screen"]["id"])
        if role == "screen":  # the screen's socket last: it is the one fuzzed
            world.sockets.reverse()
    else:
        await world.socket()
    return world


def message_for(name: str, right: dict[str, list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A message of type ``name``: its declared fields each left out, right, nearly right or
    anything at all (an SDP field also a real offer with lines changed), sometimes with fields it
    does not declare."""
    command = commands().get(name)
    assert command is not None
    declared = {}
    for field_name in command.fields:
        value = value_for(right.get(field_name, []))
        if field_name == "sdp":
            value = st.one_of(value, mutated_sdp(st.sampled_from(right["sdp"])))
        declared[field_name] = value
    extra = st.dictionaries(
        hostile_text.filter(lambda k: k not in ("id", "type", *command.fields)),
        any_value,
        min_size=1,
        max_size=2,
    )
    undeclared = weighted((3, st.just({})), (1, extra))
    return st.builds(
        lambda fields, extra: {**extra, **fields},
        st.fixed_dictionaries({}, optional=declared),
        undeclared,
    )


@dataclass
class Outcome:
    """What the examples of one test got, to see that they reached past the first checks."""

    codes: dict[str, int] = field(default_factory=dict)

    def count(self, reply: dict[str, Any]) -> None:
        code = "ok" if reply["success"] else reply["error"]["code"]
        self.codes[code] = self.codes.get(code, 0) + 1


async def check_reply(socket: Socket, raw: str, expected_id: Any) -> dict[str, Any]:
    """Send ``raw``; its reply is a success or a documented error, to the right id."""
    await socket.ws.send_str(raw)
    try:
        reply = await socket.result(_key(expected_id), timeout=5.0)
    except TimeoutError:
        raise AssertionError(
            f"no reply to {raw[:500]!r} (id {expected_id!r}); others: {socket.pending()}"
        ) from None
    assert reply["type"] == "result" and reply["id"] == expected_id, reply
    if reply["success"]:
        assert isinstance(reply["result"], dict), reply
    else:
        error = reply["error"]
        assert error["code"] in CODES, f"undocumented or internal error {error} for {raw[:500]!r}"
        assert isinstance(error["message"], str) and error["message"], reply
    return reply


@pytest.fixture
async def observer(node: Node) -> AsyncIterator[Socket]:
    """Another client, connected all along: its pings must be answered after every example."""
    async with aiohttp.ClientSession() as http, http.ws_connect(node.url + "/ws") as ws:
        await ws.receive_json(timeout=5)
        yield Socket(ws)


def frame(fields: dict[str, Any], msg_id: Any, name: str) -> tuple[str, Any]:
    """The frame of a message, and the id its reply must carry (null for one not readable)."""
    raw = json.dumps({**fields, "id": msg_id, "type": name}, allow_nan=True)
    expected = msg_id if isinstance(msg_id, int) and not isinstance(msg_id, bool) else None
    return raw, expected


# Mostly readable ids: the envelope's own fuzzing is test_envelopes_of_any_shape_get_an_error_….
ids = weighted((8, st.integers(0, 2**53)), (1, st.integers()), (1, any_value))


@pytest.mark.parametrize("name", NAMES)
@fuzz_settings(EXAMPLES_PER_COMMAND)
@given(data=st.data())
async def test_every_command_answers_hostile_messages_with_documented_errors(
    node: Node,
    bus: Bus,
    observer: Socket,
    request: pytest.FixtureRequest,
    name: str,
    data: st.DataObject,
) -> None:
    role = data.draw(st.one_of(st.just(NATURAL.get(name, "stranger")), st.sampled_from(ROLES)))
    live = data.draw(st.booleans())
    async with aiohttp.ClientSession() as http:
        world = await build(node, http, role, live)
        try:
            # a few messages in a row on the same socket: each may have changed what the next
            # one meets (left the lobby, ended the show, renamed, muted)
            batch = data.draw(
                st.lists(st.tuples(message_for(name, world.right), ids), min_size=1, max_size=5)
            )
            frames = [frame(fields, msg_id, name) for fields, msg_id in batch]
            frames = [f for f in frames if len(f[0].encode()) <= ws_module.MAX_MESSAGE_BYTES]
            fuzzed = world.sockets[-1]
            with server_log() as log:
                for raw, expected in frames:
                    await check_reply(fuzzed, raw, expected)
                    assert await fuzzed.pings(), f"the socket went quiet after {raw[:300]!r}"
                assert await observer.pings(), "another client's ping went unanswered"
                await world.close()
                await node_settles(node)
                assert not log.faults(), f"{log.faults()} after {[r for r, _ in frames]!r:.2000}"
        finally:
            await world.close()
    if bus.name == "redis":
        await buskeys.assert_every_key_expires(request.getfixturevalue("redis_server").url)


async def node_settles(node: Node, still_open: int = 1) -> None:
    """Wait until the node has released what the closed connections held (a release that fails
    logs it, which the example must see); ``still_open`` sockets stay (the observer)."""
    await eventually(
        lambda: node.open_sockets <= still_open and not node.releasing,
        10,
        "the node released every closed connection",
        interval=0.002,
    )


@fuzz_settings(60)
@given(
    type_=st.one_of(
        hostile_text, st.sampled_from(NAMES).flatmap(lambda n: st.builds(lambda c: n + c, chars))
    ),
    msg_id=st.integers(0, 2**53),
)
async def test_unknown_types_answer_unknown_command(node: Node, type_: str, msg_id: int) -> None:
    assume(type_ not in NAMES)
    async with aiohttp.ClientSession() as http, http.ws_connect(node.url + "/ws") as ws:
        await ws.receive_json(timeout=5)
        socket = Socket(ws)
        raw = json.dumps({"id": msg_id, "type": type_})
        reply = await check_reply(socket, raw, msg_id)
        assert reply["error"]["code"] == "unknown_command"
        assert await socket.pings()


@fuzz_settings(120)
@given(envelope=any_value, text=st.one_of(hostile_text, st.text(max_size=20)))
async def test_envelopes_of_any_shape_get_an_error_and_the_socket_stays(
    node: Node, envelope: Any, text: str
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(node.url + "/ws") as ws:
        await ws.receive_json(timeout=5)
        socket = Socket(ws)
        for raw in (json.dumps(envelope, allow_nan=True), text):
            if not _utf8(raw) or len(raw.encode()) > ws_module.MAX_MESSAGE_BYTES:
                continue  # not text a frame carries (UTF-8), or a frame over the limit (1009)
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            readable = isinstance(parsed, dict) and parsed.get("type") in NAMES
            assume(not readable)  # real commands are the other tests' part
            msg_id = parsed.get("id") if isinstance(parsed, dict) else None
            expected = msg_id if isinstance(msg_id, int) and not isinstance(msg_id, bool) else None
            await check_reply(socket, raw, expected)
        assert await socket.pings()


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- what the fuzzing found, kept as regression examples -------------------------------------------


async def ask_once(node: Node, *messages: dict[str, Any]) -> list[dict[str, Any]]:
    """The replies to ``messages`` sent in turn on one socket (the first may join a show)."""
    async with aiohttp.ClientSession() as http, http.ws_connect(node.url + "/ws") as ws:
        await ws.receive_json(timeout=5)
        socket = Socket(ws)
        replies = []
        for n, message in enumerate(messages):
            raw, _ = frame(message, 100 + n, message.pop("type"))
            await ws.send_str(raw)
            replies.append(await socket.result(100 + n, timeout=5))
        return replies


@pytest.mark.parametrize(
    "after",
    [
        "1796310482359-0\n",  # $ matched before the line break; Redis refused it: internal_error
        "\uff11\uff17-\uff10",  # \d matched fullwidth digits
        "\u0661-\u0661",  # and Arabic-Indic ones
        "99999999999999999999-0",  # 20 digits, beyond 64 bits
        "0-18446744073709551616",
    ],
)
async def test_found_a_history_after_no_stream_id_is_invalid_input(node: Node, after: str) -> None:
    show = await create_show_simply(node)
    joined, history = await ask_once(
        node,
        {"type": "watch.join", "code": show["code"]},
        {"type": "chat.history", "after": after},
    )
    assert joined["success"], joined
    assert history["error"]["code"] == "invalid_input", history


async def test_found_a_history_after_the_last_possible_id_is_empty(node: Node) -> None:
    show = await create_show_simply(node)
    last = f"{2**64 - 1}-{2**64 - 1}"  # Redis refuses "(last" as the start of an interval
    _, history = await ask_once(
        node,
        {"type": "watch.join", "code": show["code"]},
        {"type": "chat.history", "after": last},
    )
    assert history["result"] == {"messages": [], "more": False}, history


async def test_found_a_deletion_of_no_message_id_is_invalid_input(node: Node) -> None:
    show = await create_show_simply(node)
    async with aiohttp.ClientSession() as http:
        world = World(node, http)
        viewer = await seated(world, show["code"])
        lobby = world.right["lobby"][0]
        _, deleted = await ask_once(
            node,
            {"type": "perform.host", "show": show["id"], "token": show["performer_token"]},
            {"type": "chat.delete", "lobby": lobby, "message": "1-1\n<b>"},
        )
        assert deleted["error"]["code"] == "invalid_input", deleted
        await viewer.ws.close()


@pytest.mark.parametrize("msg_id", [False, True])
async def test_found_a_boolean_id_is_no_id(node: Node, msg_id: bool) -> None:
    """``{"id": false}`` was answered with ``"id": false``: an id that is not an integer is read
    as none (null), as for any other unreadable id."""
    async with aiohttp.ClientSession() as http, http.ws_connect(node.url + "/ws") as ws:
        await ws.receive_json(timeout=5)
        await ws.send_str(json.dumps({"id": msg_id, "type": "chat.delete"}))
        reply = await Socket(ws).result(None, timeout=5)
        assert reply["id"] is None and reply["error"]["code"] == "invalid_message", reply


async def create_show_simply(node: Node) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        return await create_show(http, node)


@pytest.mark.parametrize("shape", ["player", "voice"])
async def test_found_a_performer_offer_that_sends_nothing_leaves_the_show_on_air(
    node: Node, shape: str
) -> None:
    """A receive-only offer in ``perform.start`` replaced the performer on air before failing
    (internal_error); the voice's shape made a second audience-sound listener never closed."""
    show = await create_show_simply(node)
    on_air = await node.stage.publish_frames(
        show["id"], {"video": "video/VP8", "audio": "audio/opus"}
    )
    try:
        sdp = (await offers())[shape]
        (started,) = await ask_once(
            node,
            {
                "type": "perform.start",
                "show": show["id"],
                "token": show["performer_token"],
                "sdp": sdp,
            },
        )
        assert started["error"]["code"] == "unsupported_codec", started
        assert node.publication(show["id"]) is on_air
        assert node.stage.hall_sound(show["id"]) is None
    finally:
        await node.stage.unpublish(on_air)
