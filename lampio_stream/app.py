"""The app factory: wires configuration, the bus, the domain and the endpoints together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiortc import RTCIceServer

from clients import WEB_ROOT
from lampio_stream import __version__
from lampio_stream.config import Config
from lampio_stream.demo import run_demo
from media.cameras import Cameras, PolicySeats
from media.rtmp import RtmpServer
from media.stage import Stage
from media.voice import Voices
from rooms.bus import Bus, open_bus
from rooms.bus_memory import MemoryBus
from rooms.chat import Chat
from rooms.foyer import AudienceCounter, Foyer
from rooms.insight import FLUSH_EVERY, Insight
from rooms.lobbies import Lobbies
from rooms.nodes import CpuMeter, NodeRegistry, new_node_id
from rooms.organisers import DEFAULT_ID, Organiser, Organisers
from rooms.origins import Origins
from rooms.ratelimit import FailureLimiter
from rooms.reactions import ReactionTally, publish_totals
from rooms.recordings import Recordings
from rooms.relay import EventRelay
from rooms.screens import Screens
from rooms.shows import CATEGORIES, Shows
from rooms.supervise import every
from rooms.tasks import cancel_and_wait
from rooms.tickets import Tickets
from rooms.voice import VoiceRules, VoiceStates
from signaling import (
    api,
    calendar,
    cameras,
    captions,
    cluster,
    foyer,
    guard,
    hooks,
    live,
    ops,
    recordings,
    rtmp,
    screens,
    voice,
    whep,
    whip,
    ws,
)
from signaling.cluster import Cascade
from signaling.commands import Commands
from signaling.errors import error_middleware
from signaling.guard import secret_guesses
from signaling.metrics import Metrics
from signaling.proxies import forwarded_for, parse_networks
from signaling.services import SERVICES, Limiters, Services
from signaling.state import Lifecycle, Site

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
    """Headers every answer carries: no sniffing, no referrer leaks, our own content only, never
    in a frame (a page reached as ``/static/….html`` too: the staff page keeps a key)."""
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


NAME_MAX, PATH_MAX = 255, 4096  # bytes: what Linux file systems take in a name and a path


@web.middleware
async def unservable_files(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A /static name no file system holds is simply not found: aiohttp's static handler would
    fail on it with ``OSError`` (file name too long), a 500."""
    if request.path.startswith("/static/"):
        raw = request.path.encode("utf-8", "surrogateescape")
        if len(raw) > PATH_MAX or any(len(part) > NAME_MAX for part in raw.split(b"/")):
            raise web.HTTPNotFound()
    return await handler(request)


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
    """The STUN servers this node's own peers use (the configured ones, never a default), and no
    TURN server: the node gathers no relayed candidates of its own.

    A viewer whose network blocks UDP relays through TURN to the node's host candidate
    (``--ice-host``), which the TURN server reaches over UDP. A relayed candidate on the node's
    side as well would cost the TURN server a second allocation per viewer, and put the node's
    packets through aioice's TURN client instead of straight onto its UDP socket (media.direct).
    """
    stun = [url for url in config.ice_servers if url.startswith(("stun:", "stuns:"))]
    return [RTCIceServer(urls=stun)] if stun else []


def local_url(config: Config) -> str:
    """How a client on this machine reaches this node (the demo performer uses it)."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
    host = wildcard.get(config.host, config.host)
    return f"http://[{host}]:{config.port}" if ":" in host else f"http://{host}:{config.port}"


def commands() -> Commands:
    """Every WebSocket command, each module registering its own."""
    registry = Commands()
    for module in (ws, live, foyer, voice, cameras, captions, screens):
        module.register(registry)
    return registry


def limiters(bus: Bus) -> Limiters:
    """The limits on guessing, each per kind of secret."""
    return Limiters(
        code=FailureLimiter(bus, "code", limit=CODE_FAILURES_ALLOWED, window=CODE_FAILURE_WINDOW),
        lobby_code=FailureLimiter(
            bus, "lobby-code", limit=CODE_FAILURES_ALLOWED, window=CODE_FAILURE_WINDOW
        ),
        organiser_key=FailureLimiter(
            bus, "organiser-key", limit=guard.FAILURES_ALLOWED, window=guard.WINDOW
        ),
        show_token=FailureLimiter(
            bus, "show-token", limit=guard.FAILURES_ALLOWED, window=guard.WINDOW
        ),
        stream_key=FailureLimiter(
            bus, "stream-key", limit=guard.FAILURES_ALLOWED, window=guard.WINDOW
        ),
        pairing=FailureLimiter(
            bus,
            "pairing",
            limit=screens.PAIR_FAILURES_ALLOWED,
            window=screens.PAIR_FAILURE_WINDOW,
        ),
        staff_key=FailureLimiter(
            bus,
            "staff-key",
            limit=screens.STAFF_KEY_FAILURES_ALLOWED,
            window=screens.STAFF_KEY_FAILURE_WINDOW,
        ),
        new_pairing=FailureLimiter(
            bus,
            "new-pairing",
            limit=screens.NEW_PAIRINGS_ALLOWED,
            window=screens.NEW_PAIRING_WINDOW,
        ),
    )


def create_app(config: Config, *, bus: Bus | None = None) -> web.Application:
    """Build the application; ``bus`` overrides the one named by the configuration (tests)."""
    middlewares: list[Middleware] = [security_headers, error_middleware, unservable_files]
    if config.trusted_proxies:  # inside error_middleware: a bad header gets the JSON error
        middlewares.append(forwarded_for(parse_networks(config.trusted_proxies)))
    middlewares.append(secret_guesses)  # after forwarded_for: it counts per real client
    app = web.Application(middlewares=middlewares, client_max_size=MAX_REQUEST_BYTES)
    site = Site(
        public_url=config.public_url,
        organiser_key=config.organiser_key,
        origins=config.origins,
        version=__version__,
        ice_servers=config.ice_servers,
        turn_secret=config.turn_secret,
        cluster_secret=config.cluster_secret,
        admin_key=config.admin_key,
    )
    registry = commands()
    direct = config.media_sender == "direct"

    async def services_context(app: web.Application) -> AsyncIterator[None]:
        """The node's services, opened in order and closed in reverse: peers close before the
        bus they report to."""
        the_bus = (
            bus
            if bus is not None
            else await open_bus(
                config.redis_url, sentinels=config.redis_sentinel, master=config.redis_master
            )
        )
        log.info("bus.open", engine=the_bus.name)
        if config.uses_redis and not config.cluster_secret:
            log.warning(
                "cluster.no_secret",
                hint="set --cluster-secret (the same on every node): without it this node "
                "neither pulls a show from other nodes nor lets them pull one from it",
            )
        relay = EventRelay(the_bus)
        shows = Shows(the_bus, (*CATEGORIES, *config.categories))
        default_organiser = Organiser(DEFAULT_ID, config.default_city, config.default_city, "")
        lobbies = Lobbies(the_bus, capacity=config.lobby_size)
        chat = Chat(the_bus, retention=config.chat_retention)
        stage = Stage(server_ice_servers(config), direct=direct, relay=relay)
        voices = Voices(server_ice_servers(config), direct=direct)
        lobby_cameras = Cameras(server_ice_servers(config), direct=direct)
        voice_rules = VoiceRules(the_bus, shows, lobbies)
        metrics = Metrics(__version__)
        metrics.peers.set_function(lambda: stage.peer_count)
        metrics.viewers.set_function(lambda: stage.viewer_total)
        metrics.live_shows.set_function(lambda: stage.live_count)
        metrics.feeds_out.set_function(lambda: stage.edge_stream_total)
        metrics.feeds_in.set_function(lambda: len(stage.feeds))
        if isinstance(the_bus, MemoryBus):
            metrics.count_bus_keys(the_bus.families)
        cpu = CpuMeter()
        nodes = NodeRegistry(
            the_bus,
            new_node_id(),
            config.advertise_url or local_url(config),
            load=lambda: (stage.viewer_total, cpu.percent()),
        )
        partial = Services(
            site=site,
            metrics=metrics,
            lifecycle=Lifecycle(),
            bus=the_bus,
            relay=relay,
            shows=shows,
            organisers=Organisers(the_bus, default_organiser),
            tickets=Tickets(the_bus),
            recordings=Recordings(
                the_bus,
                None if config.data_dir is None else Path(config.data_dir),
                config.recording_retention_days,
            ),
            insight=Insight(the_bus, kept=config.insight_retention * 24 * 3600),
            lobbies=lobbies,
            chat=chat,
            foyer=Foyer(the_bus, lobbies, chat),
            audience=AudienceCounter(lobbies),
            tally=ReactionTally(),
            voice_rules=voice_rules,
            voice_states=VoiceStates(
                the_bus, voice_rules, relay, PolicySeats(voices, lobby_cameras)
            ),
            screens=Screens(the_bus),
            stage=stage,
            voices=voices,
            cameras=lobby_cameras,
            nodes=nodes,
            limiters=limiters(the_bus),
            cascade=Cascade(
                Origins(the_bus, nodes.node_id, nodes.url),  # one id and address per node
                stage,
                config.cluster_secret,
                voices=voices,
            ),
            commands=registry,
            connections=set(),
            whip_sessions={},
            whep_sessions={},
        )
        rtmp_server: RtmpServer | None = None
        if config.rtmp_port is not None:
            rtmp_server = RtmpServer(rtmp.authoriser(partial))
            try:
                port = await rtmp_server.start(config.host, config.rtmp_port)
            except OSError as exc:
                if not config.rtmp_port_default:
                    raise
                # Not asked for: a second node on this machine takes any free port instead.
                log.warning(
                    "rtmp.default_port_taken",
                    port=config.rtmp_port,
                    error=str(exc),
                    hint="RTMP listens on a free port instead; choose one with --rtmp-port",
                )
                port = await rtmp_server.start(config.host, 0)
            log.info("rtmp.listening", port=port)
            partial = replace(partial, rtmp_port=port)
        the_services = app[SERVICES] = partial
        reactions = asyncio.get_running_loop().create_task(
            publish_totals(
                the_services.tally, the_bus, nodes.node_id, the_services.insight.reactions
            ),
            name="reactions",
        )
        insight = asyncio.get_running_loop().create_task(
            every(FLUSH_EVERY, the_services.insight.flush, "insight.flush"), name="insight"
        )
        await nodes.start()
        await the_services.cascade.start()
        yield
        await nodes.stop()  # out of every node's list before anything else closes
        # Connections closed by the shutdown release their seats while the bus is still there.
        finishing = set(the_services.lifecycle.tasks)
        if finishing:
            await asyncio.wait(finishing, timeout=2.0)
        if rtmp_server is not None:
            await rtmp_server.close()
        await the_services.voice_states.close()
        await voices.close()
        await lobby_cameras.close()
        await the_services.cascade.close()
        await stage.close()
        # State changes from closing peers (show paused) still go out before the bus closes.
        await relay.close()
        await cancel_and_wait(reactions)
        await cancel_and_wait(insight)
        with contextlib.suppress(Exception):  # the last seconds' counts, if the bus is there
            await the_services.insight.flush()
        pending = set(the_services.lifecycle.tasks)
        if pending:
            _, late = await asyncio.wait(pending, timeout=2.0)
            # e.g. a show's state still retried while the bus is away
            await cancel_and_wait(*late)
        await the_bus.close()
        log.info("bus.closed")

    async def begin_shutdown(app: web.Application) -> None:
        app[SERVICES].lifecycle.draining = True
        await app[SERVICES].nodes.drain()  # other nodes see it going before its clients do
        await ws.close_all(app[SERVICES])

    async def demo_context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(
            run_demo(app[SERVICES].shows, local_url(config), config.public_url),
            name="demo-performer",
        )
        yield
        await cancel_and_wait(task)

    app.cleanup_ctx.append(services_context)
    app.cleanup_ctx.append(recordings.sweeping)
    if config.demo:
        app.cleanup_ctx.append(demo_context)
    app.on_shutdown.append(begin_shutdown)
    app.add_routes(ops.routes)
    app.add_routes(calendar.routes)
    app.add_routes(api.routes)
    app.add_routes(hooks.routes)
    app.add_routes(screens.routes)
    app.add_routes(whip.routes)
    app.add_routes(cluster.routes)
    app.add_routes(whep.routes)
    app.add_routes(recordings.routes)
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
