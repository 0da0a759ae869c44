"""Fuzzing the HTTP side: every route of the app (but the WebSocket's, tests/test_fuzz_ws.py) gets
hypothesis-made requests written byte by byte: any method, path parameters right, nearly right or
anything (percent-encoded, or with their slashes and dots left raw), an ``Authorization`` header
with the right secret of each kind, a near miss or bytes that are not UTF-8, ``X-Forwarded-For``
through a trusted proxy, JSON bodies (declared fields, undeclared ones, any JSON, not JSON), SDP
bodies (real offers of every shape with lines changed, dropped or added) and trickled candidate
fragments, on both bus engines (pages and operations, which never reach the bus, on the in-process
one). Every error is a documented status and code (docs/api.md) in the JSON error shape, never a
500; the server logs no error; a refused publish leaves the show on air; every peer connection a
request opened is closed once its session is; an honest request is still served; and on Redis
every key left behind expires (or is a record that lives until an explicit action:
``tests/buskeys.py``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lampio_stream import app as app_module
from lampio_stream.app import create_app
from media.stage import Publication
from rooms.bus import Bus
from rooms.bus_memory import MemoryBus
from rooms.shows import ShowState
from signaling import guard
from tests import buskeys
from tests.fuzzing import (
    ODD_SDP_LINES,
    any_value,
    documented_http_errors,
    fuzz_settings,
    hostile_text,
    long_text,
    loopback_only,
    mutated_sdp,
    near,
    offers,
    server_log,
    value_for,
    weighted,
)
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY, Node, make_config, serve

pytestmark = pytest.mark.usefixtures("loopback_ice")

DOCUMENTED = documented_http_errors()
# The WebSocket has a fuzzer of its own (test_fuzz_ws.py); every other route is fuzzed here.
ROUTES: dict[str, frozenset[str]] = {}
for _route in create_app(make_config()).router.routes():
    _resource = _route.resource
    if _resource is not None and _resource.canonical != "/ws":
        _methods = ROUTES.get(_resource.canonical, frozenset())
        ROUTES[_resource.canonical] = _methods | {_route.method}
MEDIA_ROUTES = ["/whip", "/whip/session/{token}", "/whep/{show}", "/whep/session/{token}"]
API_ROUTES = [r for r in ROUTES if r.startswith("/api/")]
OTHER_ROUTES = [r for r in ROUTES if r not in MEDIA_ROUTES and r not in API_ROUTES]
FILE_ROUTES = frozenset(OTHER_ROUTES) - {"/healthz", "/readyz", "/metrics"}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"]
SHOW_FIELDS = [
    "title", "description", "starts_at", "performer", "category", "language", "listed", "access"
]  # fmt: skip
JSON_FIELDS = {
    "/api/shows": SHOW_FIELDS,
    "/api/shows/{show_id}": SHOW_FIELDS,
    "/api/staff-keys": ["label"],
    "/api/organisers": ["name", "city"],
    "/api/shows/{show_id}/tickets": ["count", "label", "head_count"],
    "/api/hooks/tickets": ["organiser", "id", "timestamp", "show", "count", "label"],
}
# What a stranger mostly sends to each route, and the secret that opens it.
MAIN_METHOD = {
    "/api/shows": "POST",
    "/api/shows/{show_id}/stream-key": "POST",
    "/api/shows/{show_id}/cancel": "POST",
    "/api/shows/{show_id}/tickets": "POST",
    "/api/shows/{show_id}/image": "PUT",
    "/api/hook-secret": "POST",
    "/api/hooks/tickets": "POST",
    "/api/organisers": "POST",
    "/api/organisers/{organiser_id}": "DELETE",
    "/api/staff-keys": "POST",
    "/api/staff-keys/{key_id}": "DELETE",
    "/whip": "POST",
    "/whip/session/{token}": "PATCH",
    "/whep/{show}": "POST",
    "/whep/session/{token}": "PATCH",
}
SECRETS = {
    "/api/shows": "organiser_key",
    "/api/staff-keys": "organiser_key",
    "/api/staff-keys/{key_id}": "organiser_key",
    "/api/nodes": "organiser_key",
    "/api/shows/{show_id}": "show_secret",
    "/api/shows/{show_id}/stream-key": "show_secret",
    "/api/shows/{show_id}/cancel": "organiser_key",
    "/api/shows/{show_id}/tickets": "organiser_key",
    "/api/shows/{show_id}/image": "organiser_key",
    "/api/shows/{show_id}/insight": "organiser_key",
    "/api/shows/{show_id}/insight.csv": "organiser_key",
    "/api/hook-secret": "organiser_key",
    "/api/organisers": "admin_key",
    "/api/organisers/{organiser_id}": "admin_key",
    "/whip": "stream_key",
}
SHUTDOWN_WITHIN = 15.0  # seconds
ADMIN_KEY = "fuzz-admin-key-0123456789"
MAX_PARAMETER = 2000  # bytes


@asynccontextmanager
async def fuzzed(bus: Bus, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    """The node behind a trusted proxy (loopback, so ``X-Forwarded-For`` is believed), with the
    limits on guessing out of the way: the examples send wrong codes and secrets by the hundred
    (the limits themselves: tests/test_ratelimit.py, tests/test_guard.py). Its shutdown must not
    hang (a peer left open would hold it)."""
    monkeypatch.setattr(app_module, "CODE_FAILURES_ALLOWED", 10**6)
    monkeypatch.setattr(guard, "FAILURES_ALLOWED", 10**6)
    serving = serve(bus, trusted_proxies=("127.0.0.0/8",), admin_key=ADMIN_KEY)
    running = await serving.__aenter__()
    try:
        yield running
    finally:
        async with asyncio.timeout(SHUTDOWN_WITHIN):
            await serving.__aexit__(None, None, None)


@pytest.fixture
async def node(
    bus: Bus, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[Node]:
    """The node on each engine; on Redis every key the test's examples left must expire (checked
    once, after them all: scanning after each would cost more than the examples)."""
    async with fuzzed(bus, monkeypatch) as running:
        yield running
    if bus.name == "redis":
        await buskeys.assert_every_key_expires(request.getfixturevalue("redis_server").url)


@pytest.fixture
async def memory_node(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Node]:
    """The node on the in-process bus, for what never reaches the bus (pages, operations)."""
    async with fuzzed(MemoryBus(), monkeypatch) as running:
        yield running


# -- requests written byte by byte -----------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the server answered: status, headers (names in lower case) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        """The JSON error of a refusal, checking its one shape."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        body = json.loads(self.body)
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
        error: dict[str, Any] = body["error"]
        return error


@dataclass(frozen=True)
class Request:
    """One HTTP request as it goes on the wire."""

    method: str
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""

    def raw(self) -> bytes:
        lines = [f"{self.method} ".encode() + self.target + b" HTTP/1.1", b"Host: 127.0.0.1"]
        lines += [name + b": " + value for name, value in self.headers]
        lines += [b"Content-Length: " + str(len(self.body)).encode(), b"Connection: close"]
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    def __repr__(self) -> str:
        return f"Request({self.raw()[:600]!r})"


async def exchange(node: Node, request: Request, timeout: float = 15.0) -> Answer:
    """Send ``request`` on a connection of its own and read the whole answer."""
    assert node.server is not None and node.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", node.server.port)
    try:
        writer.write(request.raw())
        async with asyncio.timeout(timeout):
            raw = await reader.read(-1)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return Answer(int(status_line.split(" ")[1]), headers, body)


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def text_bytes(value: Any) -> bytes:
    """A value as the bytes of text: strings as UTF-8 (a lone surrogate too: invalid UTF-8),
    anything else as its JSON."""
    text = value if isinstance(value, str) else json.dumps(value, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


# Bytes a header value may hold (RFC 9110 field-value: visible ASCII, obs-text, space and tab).
HEADER_BYTES = [b for b in range(0x20, 0x100) if b != 0x7F] + [0x09]
raw_header = st.lists(st.sampled_from(HEADER_BYTES), max_size=40).map(bytes)


def header_value(value: Any) -> bytes:
    """A value fit for a header line: no line breaks or NULs (they would end it)."""
    raw = text_bytes(value)
    return bytes(b for b in raw if b in HEADER_BYTES).strip()


# -- the world an example runs in ------------------------------------------------------------------


@dataclass
class World:
    """Fresh shows (one live, one scheduled, one ended), a staff key and, for the session routes,
    a WHIP and a WHEP session: the right values of every parameter and secret, which an example
    may use as they are or a little wrong."""

    node: Node
    route: str
    live: dict[str, Any]
    publication: Publication
    right: dict[str, list[Any]] = field(default_factory=dict)
    sessions: list[str] = field(default_factory=list)  # Locations of sessions opened

    def know(self, name: str, *values: Any) -> None:
        self.right.setdefault(name, []).extend(v for v in values if v is not None)

    async def close(self) -> list[int]:
        """End every session the example opened, and the live show's publication; the statuses
        of the sessions' ends."""
        ended = [
            (await exchange(self.node, Request("DELETE", location.encode()))).status
            for location in self.sessions
        ]
        self.sessions.clear()
        await self.node.stage.unpublish(self.publication)
        return ended


async def api(node: Node, method: str, path: str, body: Any = None) -> Any:
    """An organiser's request that must succeed; its JSON answer."""
    headers = [(b"Authorization", f"Bearer {ORGANISER_KEY}".encode())]
    data = b""
    if body is not None:
        headers.append((b"Content-Type", b"application/json"))
        data = json.dumps(body).encode()
    answer = await exchange(node, Request(method, path.encode(), tuple(headers), data))
    assert answer.status in (200, 201), answer
    return json.loads(answer.body)


async def build(node: Node, route: str) -> World:
    """The world of one example on ``route``."""
    live = await api(node, "POST", "/api/shows", {"title": "Fuzz", "performer": "Esa"})
    scheduled = await api(node, "POST", "/api/shows", {"title": "Later"})
    ended = await api(node, "POST", "/api/shows", {"title": "Over"})
    await node.services.shows.set_state(ended["id"], ShowState.ENDED)
    codecs = {"video": "video/VP8", "audio": "audio/opus"}
    publication = await node.stage.publish_frames(live["id"], codecs)
    await node.services.shows.set_state(live["id"], ShowState.LIVE)  # on air, as media makes it
    organiser, _ = await node.services.organisers.create("Fuzz-kaupunki", "Fuzz")
    world = World(node, route, live, publication)
    staff = await api(node, "POST", "/api/staff-keys", {"label": "Koivukoti"})
    sdp = await offers()
    world.know("sdp", *sdp.values())
    world.know("show_id", live["id"], scheduled["id"], ended["id"])
    world.know("show", live["id"], live["code"], scheduled["id"], ended["id"])
    world.know("code", live["code"], live["code_display"], scheduled["code"], ended["code"])
    world.know("key_id", staff["id"])
    world.know("organiser_id", organiser.id, "default")
    world.know("name", "Oulun kaupunki")
    world.know("count", 1, 2, 0, 501, True)
    world.know("id", "tilaus-1", "")
    world.know("timestamp", 0, 1796000000)
    world.know("organiser", organiser.id, "default", "../x")
    world.know("head_count", 1, 12, 0)
    world.know("city", "Oulu", "")
    world.know("category", "concert", "wrestling")
    world.know("language", "fi", "suomi")
    world.know("listed", True, False, "no")
    world.know("access", "open", "ticket", "vip")
    world.know("filename", "protocol.js", "watch/", "../pyproject.toml")
    world.know("title", "Kevätkonsertti")
    world.know("label", "Koivukoti")
    world.know("starts_at", "2026-12-13T15:00:00+02:00", "2026-12-13T15:00:00")
    world.know("description", "")
    world.know("performer", "Esa")
    world.know("secret", ORGANISER_KEY, staff["key"], ADMIN_KEY)
    world.know("organiser_key", ORGANISER_KEY, ADMIN_KEY)
    world.know("admin_key", ADMIN_KEY)
    world.know("show_secret", ORGANISER_KEY)
    for show in (live, scheduled, ended):
        world.know("secret", show["performer_token"], show["stream_key"])
        world.know("show_secret", show["performer_token"])
        world.know("stream_key", show["stream_key"])
    if route.endswith("/session/{token}"):
        await open_sessions(world, sdp, scheduled["stream_key"])
    return world


async def open_sessions(world: World, sdp: dict[str, str], stream_key: str) -> None:
    """A WHIP session publishing the scheduled show and a WHEP session watching the live one,
    both as an encoder and a player open them."""
    publish = Request(
        "POST",
        b"/whip",
        (
            (b"Authorization", f"Bearer {stream_key}".encode()),
            (b"Content-Type", b"application/sdp"),
        ),
        sdp["publish"].encode(),
    )
    watch = Request(
        "POST",
        f"/whep/{world.live['id']}".encode(),
        ((b"Content-Type", b"application/sdp"),),
        sdp["player"].encode(),
    )
    for request in (publish, watch):
        answer = await exchange(world.node, request)
        assert answer.status == 201, answer
        location = answer.headers["location"]
        world.sessions.append(location)
        kind, token = location.split("/")[1], location.rsplit("/", 1)[1]
        world.know(f"{kind}_token", token)
        world.know("token", token)
        world.know("etag", answer.headers["etag"])
        ufrag = next(
            line.split(":", 1)[1]
            for line in answer.body.decode().splitlines()
            if line.startswith("a=ice-ufrag:")
        )
        world.know("ufrag", ufrag)


# -- what a stranger sends -------------------------------------------------------------------------


def path_part(value: Any, how: str) -> bytes:
    """A path parameter in the target: percent-encoded whole, or with what a path may hold left
    raw (slashes and dots: another route, or a climb out of /static)."""
    # at most 2 KB: aiohttp's parser answers a request line over 8 KiB itself, before the app
    raw = (value if isinstance(value, bytes) else text_bytes(value))[:MAX_PARAMETER]
    safe = b"" if how == "encoded" else b"/.%~!$&'()*+,;=:@"
    return quote_from_bytes(raw, safe=safe).encode()


def target_for(route: str, right: dict[str, list[Any]]) -> st.SearchStrategy[bytes]:
    """A request target for ``route``: each parameter right, nearly right, anything or bytes that
    are not UTF-8; sometimes with a query string."""
    how = st.sampled_from(["encoded", "encoded", "encoded", "raw"])
    pieces: list[st.SearchStrategy[bytes]] = []
    for part in route.strip("/").split("/"):
        if part.startswith("{") and part.endswith("}"):
            known = right.get(part[1:-1], [])
            if part == "{token}":  # mostly a session of the route's own kind
                known = right[f"{route.split('/')[1]}_token"] * 3 + known
            value = weighted(
                (3, st.sampled_from(known) if known else any_value),
                (3, value_for(known)),
                (1, st.binary(max_size=12)),
            )
            pieces.append(st.builds(path_part, value, how))
        else:
            pieces.append(st.just(part.encode()))
    if route == "/static":  # a prefix: the file's name is the parameter
        pieces.append(st.builds(path_part, value_for(right["filename"]), how))
    pair = st.builds(
        lambda k, v: b"?" + k + b"=" + v, *[st.builds(path_part, hostile_text, how)] * 2
    )
    query = weighted((4, st.just(b"")), (1, pair))
    return st.builds(lambda ps, q: b"/" + b"/".join(ps) + q, st.tuples(*pieces), query)


def authorization(route: str, right: dict[str, list[Any]]) -> st.SearchStrategy[bytes | None]:
    """An ``Authorization`` value: none, the route's right secret, any other, a near miss, another
    scheme, raw bytes."""
    secrets = right["secret"]
    fitting = right.get(SECRETS.get(route, "secret"), secrets)
    bearer = st.sampled_from(secrets).flatmap(near).map(lambda s: b"Bearer " + header_value(s))
    return weighted(
        (2, st.none()),
        (4, st.sampled_from(fitting).map(lambda s: f"Bearer {s}".encode())),
        (1, st.sampled_from(secrets).map(lambda s: f"Bearer {s}".encode())),
        (2, bearer),
        (
            1,
            st.sampled_from(
                [b"Bearer", b"Bearer ", b"bearer " + secrets[0].encode(), b"Basic eDp4", b"Token x"]
            ),
        ),
        (1, st.builds(lambda raw: b"Bearer " + raw, raw_header)),
        (1, raw_header),
    )


def json_body(route: str, right: dict[str, list[Any]]) -> st.SearchStrategy[bytes]:
    """A JSON body: the route's fields (each left out, right, near or anything) with or without
    undeclared ones, any JSON at all, or bytes that are not JSON."""
    fields = JSON_FIELDS.get(route, [])
    declared = {name: value_for(right.get(name, [])) for name in fields}
    extra = st.dictionaries(hostile_text, any_value, max_size=2)
    objects = st.builds(
        lambda d, e: {**e, **d}, st.fixed_dictionaries({}, optional=declared), extra
    )
    return weighted(
        (6, objects.map(text_bytes)),
        (1, any_value.map(text_bytes)),
        (1, st.binary(max_size=64)),
        (1, long_text.map(text_bytes)),
    )


def fragment(right: dict[str, list[Any]]) -> st.SearchStrategy[bytes]:
    """A trickle-ice-sdpfrag body: ufrag, mid and candidate lines (loopback only), right or odd."""
    ufrag = right.get("ufrag", ["abcd"])
    candidates = [line for line in ODD_SDP_LINES if "candidate" in line]
    port = st.integers(0, 70_000)
    host_candidate = st.builds(
        lambda p, proto: f"a=candidate:1 1 {proto} 2130706431 127.0.0.1 {p} typ host",
        port,
        st.sampled_from(["udp", "tcp", "UDP", "sctp", ""]),
    )
    line = st.one_of(
        st.sampled_from(ufrag).map(lambda u: f"a=ice-ufrag:{u}"),
        st.sampled_from(ufrag).flatmap(near).map(lambda u: f"a=ice-ufrag:{u}"),
        st.sampled_from(["a=ice-pwd:abcdefghijklmnopqrstuvwx", "a=mid:0", "a=mid:", "a=mid:7"]),
        st.sampled_from(candidates),
        host_candidate,
        st.just("a=end-of-candidates"),
        hostile_text,
    )
    separators = st.sampled_from(["\r\n", "\n", "\r"])
    return (
        st.builds(
            lambda lines, sep: sep.join(str(x) for x in lines) + sep,
            st.lists(line, max_size=6),
            separators,
        )
        .filter(loopback_only)
        .map(text_bytes)
    )


def sdp_body(right: dict[str, list[Any]]) -> st.SearchStrategy[bytes]:
    """An SDP body: a real offer of any shape (a receive-only one on WHIP, a publisher's on WHEP),
    one with lines changed, anything else."""
    real = st.sampled_from(right["sdp"])
    return weighted(
        (2, real.map(text_bytes)),
        (5, mutated_sdp(real).map(text_bytes)),
        (1, st.one_of(hostile_text, long_text).filter(loopback_only).map(text_bytes)),
        (1, st.binary(max_size=64).filter(lambda b: loopback_only(b.decode("latin-1")))),
    )


CONTENT_TYPES = [
    b"application/json",
    b"application/sdp",
    b"application/trickle-ice-sdpfrag",
    b"text/plain",
    b"application/json; charset=latin-1",
    b"Application/SDP",
    b"multipart/form-data; boundary=x",
    b"",
]


def content_type(natural: bytes | None) -> st.SearchStrategy[bytes | None]:
    """Mostly the route's own content type, else another one, none or raw bytes."""
    others = weighted((3, st.sampled_from(CONTENT_TYPES)), (1, st.none()), (1, raw_header))
    if natural is None:
        return others
    return weighted((5, st.just(natural)), (1, others))


def request_for(route: str, right: dict[str, list[Any]]) -> st.SearchStrategy[Request]:
    """A request on ``route``: mostly one of its own methods, with the body and headers it takes,
    near misses of them, or anything."""
    own = sorted(m for m in ROUTES[route] if m != "*") or ["GET"]
    main = st.just(MAIN_METHOD.get(route, "GET"))
    method = weighted((6, main), (2, st.sampled_from(own)), (1, st.sampled_from(METHODS)))
    if route.endswith("/session/{token}"):
        body, natural = fragment(right), b"application/trickle-ice-sdpfrag"
    elif route in ("/whip", "/whep/{show}"):
        body, natural = sdp_body(right), b"application/sdp"
    else:
        body, natural = json_body(route, right), b"application/json"
    if_match = weighted(
        (3, st.none()),
        (2, st.sampled_from(right.get("etag", ['"x"']))),
        (1, st.sampled_from([b"*", b'"x"', b'W/"x"'])),
        (1, raw_header),
    )
    forwarded = weighted(
        (10, st.none()),
        (1, st.sampled_from([b"203.0.113.7", b"127.0.0.2, 198.51.100.1", b"::1", b"fe80::1%eth0"])),
        (1, raw_header),
    )

    def assemble(
        method: str,
        target: bytes,
        auth: bytes | None,
        kind: bytes | None,
        match: Any,
        xff: bytes | None,
        body: bytes,
    ) -> Request:
        headers = []
        if auth is not None:
            headers.append((b"Authorization", auth))
        if kind is not None:
            headers.append((b"Content-Type", kind))
        if match is not None:
            headers.append((b"If-Match", match if isinstance(match, bytes) else match.encode()))
        if xff is not None:
            headers.append((b"X-Forwarded-For", xff))
        return Request(method, target, tuple(headers), body)

    return st.builds(
        assemble,
        method,
        target_for(route, right),
        authorization(route, right),
        content_type(natural),
        if_match,
        forwarded,
        body,
    )


# -- what every answer must be ---------------------------------------------------------------------


def check_answer(route: str, request: Request, answer: Answer) -> None:
    """A success, or a documented refusal in the JSON error shape; never a server error but a
    documented 503. Files (pages, /static) are served as HTTP serves files: a missing one, a
    folder or a failed ``If-Match`` may also be a bare 404, 403 or 412 (aiohttp's file answer)."""
    if answer.status < 400:
        return
    if route in FILE_ROUTES and answer.status in (403, 404, 412) and not answer.body:
        return
    if request.method == "HEAD":  # no body to read: the status must still be one we give
        assert answer.status in {status for status, _ in DOCUMENTED}, (request, answer)
        return
    error = answer.error()
    assert (answer.status, error["code"]) in DOCUMENTED, f"undocumented {answer} for {request}"


async def run_batch(node: Node, world: World, batch: list[Request]) -> None:
    """Send the batch and check every answer, the log, the show on air, the peers and an honest
    request."""
    stage = node.stage
    show_id = world.live["id"]
    replaced = False
    with server_log() as log:
        for request in batch:
            answer = await exchange(node, request)
            check_answer(world.route, request, answer)
            if answer.status == 201 and "location" in answer.headers:
                location = answer.headers["location"]
                if location.startswith(("/whip/", "/whep/")):
                    world.sessions.append(location)
                    replaced = replaced or location.startswith("/whip/")
            if not replaced:  # a refused or failed publish never takes the show off air
                assert stage.live(show_id), f"the live show went off air after {request}"
                assert node.publication(show_id) is world.publication, request
        honest = await exchange(
            node, Request("GET", f"/api/shows/by-code/{world.live['code']}".encode())
        )
        assert honest.status == 200, honest
        closed = await world.close()
        await eventually(
            lambda: stage.peer_count == 0,
            10,
            f"every peer of the example closed (its sessions' ends: {closed})",
        )
        assert not log.faults(), f"{log.faults()} after {batch}"


async def fuzz_route(node: Node, route: str, data: st.DataObject) -> None:
    world = await build(node, route)
    try:  # hypothesis may give up on an example while drawing it: its world still ends
        batch = data.draw(st.lists(request_for(route, world.right), min_size=1, max_size=4))
        await run_batch(node, world, batch)
    finally:
        await world.close()


@pytest.mark.parametrize("route", API_ROUTES)
@fuzz_settings(12)
@given(data=st.data())
async def test_api_routes_answer_hostile_requests_with_documented_errors(
    node: Node, route: str, data: st.DataObject
) -> None:
    await fuzz_route(node, route, data)


@pytest.mark.parametrize("route", MEDIA_ROUTES)
@fuzz_settings(24)
@given(data=st.data())
async def test_whip_and_whep_answer_hostile_requests_with_documented_errors(
    node: Node, route: str, data: st.DataObject
) -> None:
    await fuzz_route(node, route, data)


@pytest.mark.parametrize("route", OTHER_ROUTES)
@fuzz_settings(4)
@given(data=st.data())
async def test_pages_and_operations_answer_hostile_requests(
    memory_node: Node, route: str, data: st.DataObject
) -> None:
    await fuzz_route(memory_node, route, data)


# -- what the fuzzing found, kept as regression examples -------------------------------------------


@pytest.fixture
async def world(node: Node) -> AsyncIterator[World]:
    """A world for the regression examples, with its WHIP and WHEP sessions."""
    built = await build(node, "/whip/session/{token}")
    yield built
    await built.close()


def sdp_post(path: str, body: str, key: str | None = None) -> Request:
    headers = [(b"Content-Type", b"application/sdp")]
    if key is not None:
        headers.append((b"Authorization", f"Bearer {key}".encode()))
    return Request("POST", path.encode(), tuple(headers), body.encode())


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/shows"),
        ("POST", "/api/shows"),
        ("GET", "/api/shows/{show}"),
        ("POST", "/api/shows/{show}/stream-key"),
        ("GET", "/api/staff-keys"),
        ("POST", "/whip"),
    ],
)
@pytest.mark.parametrize("secret", [b"\xff\xfe", b"caf\xc3"], ids=["not-utf8", "cut-utf8"])
async def test_found_a_secret_that_is_not_utf8_is_forbidden(
    node: Node, world: World, method: str, path: str, secret: bytes
) -> None:
    """``Authorization: Bearer \\xff`` reached ``str.encode`` as lone surrogates: 500."""
    target = path.replace("{show}", world.live["id"]).encode()
    answer = await exchange(
        node, Request(method, target, ((b"Authorization", b"Bearer " + secret),))
    )
    assert (answer.status, answer.error()["code"]) == (403, "forbidden"), answer


@pytest.mark.parametrize("if_match", ["\u00e9".encode(), b"\xff", '"\u00e9"'.encode()])
async def test_found_an_if_match_that_is_not_ascii_is_stale(
    node: Node, world: World, if_match: bytes
) -> None:
    """``hmac.compare_digest`` refuses text that is not ASCII (TypeError): a 500."""
    for location in world.sessions:
        headers = ((b"Content-Type", b"application/trickle-ice-sdpfrag"), (b"If-Match", if_match))
        request = Request("PATCH", location.encode(), headers, b"a=end-of-candidates\r\n")
        answer = await exchange(node, request)
        assert (answer.status, answer.error()["code"]) == (412, "precondition_failed"), answer


async def test_found_an_ended_show_gets_no_new_stream_key(node: Node, world: World) -> None:
    """Renewing an ended show's stream key stored its record again without its expiry and
    indexed a key that published to it (on Redis the node fixture checks the keys)."""
    ended_id = world.right["show_id"][2]
    answer = await exchange(
        node,
        Request(
            "POST",
            f"/api/shows/{ended_id}/stream-key".encode(),
            ((b"Authorization", f"Bearer {ORGANISER_KEY}".encode()),),
        ),
    )
    assert (answer.status, answer.error()["code"]) == (404, "show_not_found"), answer
    assert (await node.services.shows.get(ended_id)).state is ShowState.ENDED


@pytest.mark.parametrize("shape", ["player", "voice"])
async def test_found_an_offer_that_sends_nothing_leaves_the_show_on_air(
    node: Node, world: World, shape: str
) -> None:
    """A player's receive-only offer on WHIP replaced the performer before its receivers could
    be tapped: the show went off air and the answer was a 500. A second receive-only audio
    section (the voice's shape) made a second audience-sound listener, never closed."""
    sdp = await offers()
    show_id, key = world.live["id"], world.live["stream_key"]
    answer = await exchange(node, sdp_post("/whip", sdp[shape], key))
    assert (answer.status, answer.error()["code"]) == (406, "unsupported_codec"), answer
    assert node.publication(show_id) is world.publication
    assert node.stage.hall_sound(show_id) is None
    await eventually(lambda: node.stage.peer_count == 2, 5, "only the world's two sessions")


@pytest.mark.parametrize("bundle", ["a=group:BUNDLE 0 1 7", "a=group:BUNDLE 7", "a=group:BUNDLE"])
async def test_an_offer_bundling_a_missing_mid_is_answered_and_closed(
    node: Node, world: World, bundle: str
) -> None:
    """A BUNDLE group naming a section the offer lacks once answered 500 and left its peer
    open, which then held the node's shutdown (the node fixture bounds it)."""
    sdp = await offers()
    for path, shape, key in [
        ("/whip", "publish", world.live["stream_key"]),
        (f"/whep/{world.live['id']}", "player", None),
    ]:
        offer = "\r\n".join(
            bundle if line.startswith("a=group:BUNDLE") else line
            for line in sdp[shape].split("\r\n")
        )
        answer = await exchange(node, sdp_post(path, offer, key))
        assert answer.status in (201, 400, 406), answer
        if answer.status == 201:
            world.sessions.append(answer.headers["location"])
        else:
            answer.error()
    await world.close()
    await eventually(lambda: node.stage.peer_count == 0, 10, "every peer closed")


async def test_found_a_static_name_too_long_for_a_file_is_not_found(node: Node) -> None:
    """aiohttp's static handler raised OSError (file name too long) on a name over 255 bytes."""
    for name in ("a" * 256, "ä" * 128, "/".join(["a" * 200] * 25)):
        target = b"/static/" + quote_from_bytes(name.encode(), safe="/").encode()
        answer = await exchange(node, Request("GET", target))
        assert (answer.status, answer.error()["code"]) == (404, "not_found"), answer
