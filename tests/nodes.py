"""The node under test: its configuration, the app on a loopback port, and Python performers and
viewers for it.

``Node`` is the one place where tests reach into the app's services (the stage, the voices, the
screens, ...): when the app changes how it keeps them, only this file changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection

from clients.client import Performer, Session, Watcher
from lampio_stream.app import create_app
from lampio_stream.config import Config
from media.cameras import Cameras
from media.recorder import Recorder
from media.stage import Publication, Stage
from media.voice import Voices
from rooms.bus import Bus
from rooms.bus_memory import MemoryBus
from rooms.lobbies import Lobbies
from rooms.ratelimit import FailureLimiter
from rooms.screens import Screens
from signaling.services import SERVICES, Services
from signaling.whip import HttpSession
from tests.media.helpers import MovingPatternTrack, ToneTrack
from tests.redis_server import free_port

ORGANISER_KEY = "test-organiser-key"


def make_config(**overrides: object) -> Config:
    """The node's settings for tests: loopback, a known organiser key, no RTMP unless asked."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "public_url": "http://127.0.0.1:8080",
        "organiser_key": ORGANISER_KEY,
        "log_format": "console",
        "rtmp_port": None,  # tests that need the RTMP ingest ask for a free port
    }
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


class Node:
    """The app on a loopback port: its address, the organiser's API, and its services."""

    def __init__(self, server: TestServer | None, url: str) -> None:
        self.server = server
        self.url = url

    @property
    def services(self) -> Services:
        """Everything the app uses (the stage, the voices, the screens, ...)."""
        assert self.server is not None, "the node is not running"
        return self.server.app[SERVICES]

    # -- the app's services, one property each ---------------------------------------------------

    @property
    def bus(self) -> Bus:
        return self.services.bus

    @property
    def stage(self) -> Stage:
        return self.services.stage

    @property
    def voices(self) -> Voices:
        return self.services.voices

    @property
    def cameras(self) -> Cameras:
        return self.services.cameras

    @property
    def screens(self) -> Screens:
        return self.services.screens

    @property
    def lobbies(self) -> Lobbies:
        return self.services.lobbies

    @property
    def whep_sessions(self) -> dict[str, HttpSession]:
        return self.services.whep_sessions

    def viewer_peers(self, show_id: str) -> list[RTCPeerConnection]:
        """The node's peer connections to the show's viewers."""
        return [session.pc for session in self.stage._viewers if session.show_id == show_id]

    def publication(self, show_id: str) -> Publication | None:
        """The show's publication on air on this node (its performer's session), if any."""
        return self.stage._publications.get(show_id)

    def recorder(self, show_id: str) -> Recorder | None:
        """The show's recording on this node, while it is being recorded."""
        entry = self.stage._recorders.get(show_id)
        return None if entry is None else entry[0]

    def ingested(self, show_id: str, kind: str = "video") -> int:
        """Frames of ``kind`` the node has received from the show's current performer session."""
        ingest = self.stage.broadcast(show_id).ingest
        return 0 if ingest is None else sum(r.frames for r in ingest.receivers if r.kind == kind)

    @property
    def rtmp_port(self) -> int:
        port = self.services.rtmp_port
        assert port is not None, "the node runs no RTMP ingest"
        return port

    @property
    def new_pairing_limiter(self) -> FailureLimiter:
        return self.services.limiters.new_pairing

    @property
    def staff_key_limiter(self) -> FailureLimiter:
        return self.services.limiters.staff_key

    @property
    def open_sockets(self) -> int:
        """WebSockets open on the node now."""
        return len(self.services.connections)

    @property
    def releasing(self) -> bool:
        """Whether a closed WebSocket is still releasing what it held (its seat, its peers)."""
        return any(task.get_name() == "ws-finish" for task in self.services.lifecycle.tasks)

    @property
    def idle(self) -> bool:
        """No WebSocket open, and none still releasing what it held."""
        return not self.open_sockets and not self.releasing

    # -- the organiser's API ---------------------------------------------------------------------

    async def create_show(self, title: str = "Kevätkonsertti") -> dict[str, Any]:
        """A new show, with its secrets and links (as the organiser's API answers)."""
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.url}/api/shows",
                json={"title": title},
                headers={"Authorization": f"Bearer {ORGANISER_KEY}"},
            ) as response,
        ):
            assert response.status == 201
            show: dict[str, Any] = await response.json()
            return show


async def create(client: TestClient, **body: Any) -> dict[str, Any]:  # type: ignore[type-arg]
    """A show created through the organiser's API by ``client`` ("Joulukonsertti" unless given)."""
    response = await client.post(
        "/api/shows",
        json={"title": "Joulukonsertti", **body},
        headers={"Authorization": f"Bearer {ORGANISER_KEY}"},
    )
    assert response.status == 201, await response.text()
    return await response.json()  # type: ignore[no-any-return]


async def error_of(response: Any) -> tuple[int, str]:
    """The status and error code of an API error answer, checking the error's shape."""
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return response.status, body["error"]["code"]


@asynccontextmanager
async def serve(
    bus: Bus | None = None, *, public: bool = False, host: str = "127.0.0.1", **settings: object
) -> AsyncIterator[Node]:
    """The node on a loopback port, on ``bus`` (the in-process bus if none), with ``settings``
    over ``make_config``'s. With ``public`` the port is chosen up front and the node's public URL
    is its real address (the links it hands out, the WebSocket Origin check: what pages need);
    otherwise the public URL stays http://127.0.0.1:8080. ``host``: another local address to
    listen on instead of loopback (a test namespace's link, tests/netns.py)."""
    port = free_port() if public else 0
    if public:
        settings = {"public_url": f"http://127.0.0.1:{port}", **settings}
    app = create_app(make_config(**settings), bus=bus if bus is not None else MemoryBus())
    server = TestServer(app, host=host, port=port)
    await server.start_server()
    node = Node(server, str(server.make_url("")).rstrip("/"))
    node.services.cascade.origins.url = node.url  # the port is known only now
    try:
        yield node
    finally:
        await server.close()


# -- Python performers and viewers ----------------------------------------------------------------


async def start_performer(node: Node, show: dict[str, Any], codec: str) -> Performer:
    """The show live from the Python client: a moving pattern in ``codec`` and a tone."""
    session = await Session.connect(node.url)
    performer = Performer(session)
    codecs = await performer.start(
        show["id"], show["performer_token"], [MovingPatternTrack(), ToneTrack()], codec
    )
    assert codecs == {"video": codec, "audio": "audio/opus"}
    return performer


async def start_viewer(
    node: Node, code: str, *, decode: bool = True, relay_only: bool = False
) -> Watcher:
    """A Python viewer watching the show of ``code`` (once it is live); with ``decode=False`` it
    counts encoded frames and decodes none (many viewers in one test); with ``relay_only`` it
    offers relayed candidates alone (through the node's first TURN server)."""
    watcher = Watcher(await Session.connect(node.url), decode=decode, relay_only=relay_only)
    joined = await watcher.join(code)
    if not joined["live"]:
        await watcher.session.next_event("show.state")
    await watcher.start()
    return watcher


# An offer the node must refuse: AV1 video only (viewers' browsers are sent VP8 or H.264).
AV1_OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "m=video 9 UDP/TLS/RTP/SAVPF 45",
        "c=IN IP4 127.0.0.1",
        "a=mid:0",
        "a=sendonly",
        "a=rtcp-mux",
        "a=rtpmap:45 AV1/90000",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        "a=fingerprint:sha-256 " + ":".join(["00"] * 32),
        "a=setup:actpass",
        "",
    ]
)
