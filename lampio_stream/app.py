"""The app factory: wires configuration, the bus, the domain and the endpoints together."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiortc import RTCIceServer

from clients import WEB_ROOT
from lampio_stream import __version__
from lampio_stream.config import Config
from lampio_stream.demo import run_demo
from media.rtmp import RtmpServer
from media.stage import Stage
from media.voice import Voices
from rooms.bus import Bus, open_bus
from rooms.chat import Chat
from rooms.lobbies import Lobbies
from rooms.ratelimit import FailureLimiter
from rooms.reactions import ReactionTally
from rooms.shows import Shows
from signaling import api, foyer, guard, ops, rtmp, whep, whip, ws
from signaling import captions as _caption_commands  # noqa: F401  (registers caption.send)
from signaling import live as _live_commands  # noqa: F401  (registers the show commands)
from signaling import screens as _screens  # registers the screen and remote commands
from signaling.errors import error_middleware
from signaling.followers import FOLLOWERS, ShowFollowers
from signaling.guard import secret_guesses
from signaling.iceservers import client_ice_servers
from signaling.metrics import Metrics
from signaling.proxies import forwarded_for, parse_networks
from signaling.state import (
    BUS,
    CODE_LIMITER,
    LIFECYCLE,
    METRICS,
    SHOWS,
    SITE,
    STAGE,
    Lifecycle,
    Site,
)
from signaling.voice import VOICE_STATES, VOICES, VoiceStates

log = structlog.get_logger(__name__)

CODE_FAILURES_ALLOWED = 5
CODE_FAILURE_WINDOW = 15 * 60.0
MAX_REQUEST_BYTES = 64 * 1024

# Pages are plain files; the policy keeps them to our own scripts and media.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Headers every answer carries: no sniffing, no referrer leaks, our own content only."""
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response


def _page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    path = WEB_ROOT / name

    async def handler(request: web.Request) -> web.FileResponse:
        return web.FileResponse(
            path,
            headers={
                "Cache-Control": "no-cache",
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            },
        )

    return handler


def server_ice_servers(config: Config) -> list[RTCIceServer]:
    """The STUN/TURN servers this node's own peers use: the configured ones, never a default."""
    return [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in client_ice_servers(config.ice_servers, config.turn_secret)
    ]


def local_url(config: Config) -> str:
    """How a client on this machine reaches this node (the demo performer uses it)."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
    host = wildcard.get(config.host, config.host)
    return f"http://[{host}]:{config.port}" if ":" in host else f"http://{host}:{config.port}"


def create_app(config: Config, *, bus: Bus | None = None) -> web.Application:
    """Build the application; ``bus`` overrides the one named by the configuration (tests)."""
    middlewares: list[Middleware] = [security_headers, error_middleware]
    if config.trusted_proxies:  # inside error_middleware: a bad header gets the JSON error
        middlewares.append(forwarded_for(parse_networks(config.trusted_proxies)))
    middlewares.append(secret_guesses)  # after forwarded_for: it counts per real client
    app = web.Application(middlewares=middlewares, client_max_size=MAX_REQUEST_BYTES)
    app[SITE] = Site(
        public_url=config.public_url,
        organiser_key=config.organiser_key,
        origins=config.origins,
        version=__version__,
        ice_servers=config.ice_servers,
        turn_secret=config.turn_secret,
    )
    app[METRICS] = Metrics(__version__)
    app[LIFECYCLE] = Lifecycle()
    app[ws.CONNECTIONS] = set()
    app[whip.SESSIONS] = {}
    app[whep.SESSIONS] = {}

    async def bus_context(app: web.Application) -> AsyncIterator[None]:
        the_bus = bus if bus is not None else await open_bus(config.redis_url)
        app[BUS] = the_bus
        app[SHOWS] = Shows(the_bus)
        app[foyer.LOBBIES] = Lobbies(the_bus, capacity=config.lobby_size)
        app[foyer.AUDIENCE] = foyer.AudienceCounter(app[foyer.LOBBIES])
        app[FOLLOWERS] = ShowFollowers(the_bus)
        app[foyer.CHAT] = Chat(the_bus, retention=config.chat_retention)
        app[foyer.TALLY] = ReactionTally()
        reactions = asyncio.get_running_loop().create_task(
            foyer.publish_reactions(app, secrets.token_hex(4)), name="reactions"
        )
        app[CODE_LIMITER] = FailureLimiter(
            the_bus, "code", limit=CODE_FAILURES_ALLOWED, window=CODE_FAILURE_WINDOW
        )
        app[guard.SECRET_LIMITER] = FailureLimiter(
            the_bus, "secret", limit=guard.FAILURES_ALLOWED, window=guard.WINDOW
        )
        log.info("bus.open", engine=the_bus.name)
        yield
        # State changes from closing peers (show paused) still go out before the bus closes.
        await app[FOLLOWERS].close()
        reactions.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reactions
        pending = set(app[LIFECYCLE].tasks)
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        await the_bus.close()
        log.info("bus.closed")

    async def begin_shutdown(app: web.Application) -> None:
        app[LIFECYCLE].draining = True
        await ws.close_all(app)

    async def stage_context(app: web.Application) -> AsyncIterator[None]:
        stage = app[STAGE] = Stage(
            server_ice_servers(config), direct=config.media_sender == "direct"
        )
        metrics = app[METRICS]
        metrics.peers.set_function(lambda: stage.peer_count)
        metrics.viewers.set_function(lambda: stage.viewer_total)
        metrics.live_shows.set_function(lambda: stage.live_count)
        voices = app[VOICES] = Voices(
            server_ice_servers(config), direct=config.media_sender == "direct"
        )
        app[VOICE_STATES] = VoiceStates(app[BUS], app[SHOWS], voices)
        yield
        await app[VOICE_STATES].close()
        await voices.close()
        await app[STAGE].close()

    async def demo_context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(
            run_demo(app[SHOWS], local_url(config), config.public_url), name="demo-performer"
        )
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def rtmp_context(app: web.Application) -> AsyncIterator[None]:
        server = RtmpServer(rtmp.authoriser(app))
        assert config.rtmp_port is not None
        app[rtmp.RTMP_PORT] = await server.start(config.host, config.rtmp_port)
        log.info("rtmp.listening", port=app[rtmp.RTMP_PORT])
        yield
        await server.close()

    # cleanup runs in reverse: peers close before the bus they report to
    app.cleanup_ctx.append(bus_context)
    app.cleanup_ctx.append(_screens.context)
    app.cleanup_ctx.append(stage_context)
    if config.rtmp_port is not None:
        app.cleanup_ctx.append(rtmp_context)
    if config.demo:
        app.cleanup_ctx.append(demo_context)
    app.on_shutdown.append(begin_shutdown)
    app.add_routes(ops.routes)
    app.add_routes(api.routes)
    app.add_routes(_screens.routes)
    app.add_routes(whip.routes)
    app.add_routes(whep.routes)
    app.router.add_get("/ws", ws.websocket)
    app.router.add_get("/", _page("index.html"))
    app.router.add_get("/watch", _page("index.html"))
    # the studio; /perform is its old address (performer links already handed out keep working,
    # and the #fragment they carry never reaches the server, so both serve the page itself)
    app.router.add_get("/studio", _page("studio.html"))
    app.router.add_get("/perform", _page("studio.html"))
    app.router.add_get("/screen", _page("screen.html"))
    app.router.add_get("/screen/pair", _page("pair.html"))
    app.router.add_get("/organise", _page("organise.html"))
    app.router.add_static("/static", Path(WEB_ROOT), append_version=False)
    return app
