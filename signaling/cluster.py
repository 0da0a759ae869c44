"""Many nodes, one show: a show's media enters one node (its origin) and every other node with
viewers of it pulls it from there once, for all of them (docs/scaling.md).

The origin claims the show on the bus while its performer is connected (:mod:`rooms.origins`).
A node asked to show a show it does not host finds the claim and opens a **feed**: a peer
connection to the origin that receives the show's video and audio like a player (WHEP) would,
offered to ``POST /cluster/feeds/{show}`` with the deployment's cluster secret. The feed feeds the
node's own broadcast, so its viewers get the same encoded packets, forwarded once more: the origin
sends one copy per node, never one per remote viewer. Keyframe requests of the node's viewers are
coalesced by its broadcast into one PLI on the feed, which the origin's broadcast coalesces again
with its own viewers'. A feed with no viewer left stops after :data:`FEED_IDLE` s; when the
performer comes back on another node, the claim moves and feeds follow it within
:data:`SWEEP_EVERY` s, the viewers' tracks carrying on (a new performer session, to them).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from media.stage import MAX_SDP_BYTES, Feed, InvalidSdp, NotLive, Stage
from media.voice import SLOTS, VoiceFeed, Voices
from rooms.nodes import check_cluster_token, cluster_token
from rooms.origins import RENEW_EVERY, Origin, Origins
from rooms.supervise import every
from rooms.voice import VoiceSlots
from signaling.api import read_json_object
from signaling.errors import ApiError
from signaling.services import services

log = structlog.get_logger(__name__)

routes = web.RouteTableDef()

PLAYERS_EVERY = 2.0  # seconds between this node's counts of standard players, per show
PLAYERS_TTL = 10.0  # a node's count is forgotten this long after its last renewal
VOICE_EVERY = 1.0  # seconds between checks of the lobby voices heard from other nodes
VOICE_TTL = 10.0  # a node's word that it has voices of a lobby outlives its last renewal
FEED_IDLE = 30.0  # seconds a feed with no viewer on its node keeps pulling
SWEEP_EVERY = 2.0  # seconds between checks of the feeds (idle, failed, origin moved)
ASK_TIMEOUT = 10.0  # seconds the origin may take to answer a feed's offer
FIRST_FRAME_TIMEOUT = 10.0  # seconds a new feed may take to bring its first video frame
SCHEME = "Cluster"


class Cascade:
    """This node's part in the deployment's media: the shows it hosts, the feeds it pulls."""

    def __init__(
        self,
        origins: Origins,
        stage: Stage,
        secret: str | None,
        *,
        idle: float = FEED_IDLE,
        sweep_every: float = SWEEP_EVERY,
        voices: Voices | None = None,
    ) -> None:
        self.origins = origins
        self.stage = stage
        self.voices = voices
        self.voice_slots = VoiceSlots(origins.bus, voices.max_slots if voices else SLOTS)
        self._voice_feeds: dict[tuple[str, str, str], VoiceFeed] = {}
        self._spoken: set[tuple[str, str]] = set()  # lobbies this node last said it has voices of
        self._secret = secret
        self.token = cluster_token(secret) if secret else None
        self.idle = idle
        self.sweep_every = sweep_every
        self._locks: dict[str, asyncio.Lock] = {}
        self._idle_since: dict[str, float] = {}
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._counted: set[str] = set()  # shows whose players this node counted last time

    def admits(self, authorization: str | None) -> bool:
        """Whether a request's ``Authorization`` is another node's of this deployment."""
        return check_cluster_token(self._secret, authorization)

    @property
    def enabled(self) -> bool:
        """Whether this node takes part in a cascade (it has the cluster secret)."""
        return self.token is not None

    # -- the origin's side ----------------------------------------------------------------------

    async def hosting(self, show_id: str, codecs: dict[str, str]) -> None:
        """The show's performer connected here: this node is its origin now."""
        if self.enabled:
            await self.origins.claim(show_id, codecs)

    async def not_hosting(self, show_id: str) -> None:
        """The show's performer left this node."""
        if self.enabled:
            await self.origins.release(show_id)

    async def on_air_elsewhere(self, show_id: str) -> bool:
        """Whether another node hosts the show now (its performer went on there)."""
        if not self.enabled:
            return False
        origin = await self.origins.find(show_id)
        return origin is not None and origin.node != self.origins.node

    async def players(self, show_id: str) -> int:
        """Standard players (WHEP) of the show on every node (this node's counted now)."""
        here = self.stage.players(show_id)
        if not self.enabled:
            return here
        (members,) = await self.origins.bus.group_members([_players_group(show_id)])
        node = self.origins.node
        elsewhere = sum(
            int(value.get("count", 0)) for member, value in members.items() if member != node
        )
        return here + elsewhere

    async def count_players(self) -> None:
        """Tell the other nodes how many standard players each show has here."""
        bus, node = self.origins.bus, self.origins.node
        now = {show_id for show_id in self.stage.watched if self.stage.players(show_id)}
        for show_id in now:
            count = {"count": self.stage.players(show_id)}
            await bus.group_put(_players_group(show_id), node, count, ttl=PLAYERS_TTL)
        for show_id in self._counted - now:
            await bus.group_remove(_players_group(show_id), node)
        self._counted = now

    # -- the edge's side ------------------------------------------------------------------------

    async def codecs(self, show_id: str) -> dict[str, str] | None:
        """What viewers of the show get, if it is on air on this node or on another one."""
        local = self.stage.codecs(show_id)
        if local is not None or not self.enabled:
            return local
        origin = await self.origins.find(show_id)
        if origin is None or origin.node == self.origins.node:
            return None
        return dict(origin.codecs)

    async def ensure(self, show_id: str) -> None:
        """Make sure the show's media is on this node (pulling it from its origin if need be);
        :class:`NotLive` if it is on air nowhere, or its origin cannot be reached."""
        if self.stage.codecs(show_id) is not None:
            return
        if not self.enabled:
            raise NotLive("the show is not live right now")
        lock = self._locks.setdefault(show_id, asyncio.Lock())
        async with lock:
            if self.stage.codecs(show_id) is not None:
                return  # another viewer's request opened the feed meanwhile
            origin = await self.origins.find(show_id)
            if origin is None or origin.node == self.origins.node:
                raise NotLive("the show is not live right now")
            await self._pull(show_id, origin)

    async def _pull(self, show_id: str, origin: Origin) -> Feed:
        feed = await self.stage.pull(show_id, origin.codecs, origin.node)
        try:
            answer = await self._ask(origin, show_id, feed.offer_sdp)
        except BaseException:
            await feed.close()
            raise
        await self.stage.feed_from(feed, answer)
        if feed.publication is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    feed.publication.ingest.video_arrived.wait(), FIRST_FRAME_TIMEOUT
                )
        if feed.frames == 0:
            await self.stage.stop_feed(feed)
            log.warning("cluster.feed_silent", show=show_id, origin=origin.node)
            raise NotLive("the show's origin sends nothing yet")
        log.info("cluster.feed", show=show_id, origin=origin.node)
        return feed

    async def _ask(self, origin: Origin, show_id: str, offer_sdp: str) -> str:
        """The origin's answer to a feed's offer."""
        url = f"{origin.url.rstrip('/')}/cluster/feeds/{show_id}"
        return await self._ask_url(url, offer_sdp, show_id)

    async def _ask_url(self, url: str, offer_sdp: str, show_id: str) -> str:
        """Another node's answer to an offer of ours."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ASK_TIMEOUT))
        headers = {"Authorization": f"{SCHEME} {self.token}"}
        try:
            async with self._http.post(url, json={"sdp": offer_sdp}, headers=headers) as response:
                body = await response.json(content_type=None)
                if response.status != 200 or not isinstance(body, dict):
                    raise NotLive(f"the other node refused ({response.status})")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("cluster.node_unreachable", show=show_id, url=url, error=str(exc))
            raise NotLive("the other node cannot be reached") from None
        answer = body.get("sdp")
        if not isinstance(answer, str):
            raise NotLive("the other node gave no answer")
        return answer

    async def sweep(self) -> None:
        """Stop feeds nobody here watches any more, follow origins that moved, and pull again
        for viewers whose feed failed."""
        now = time.monotonic()
        for feed in self.stage.feeds:
            viewers = self.stage.watching(feed.show_id)
            if viewers == 0:
                since = self._idle_since.setdefault(feed.show_id, now)
                if now - since >= self.idle:
                    log.info("cluster.feed_idle", show=feed.show_id)
                    await self.stage.stop_feed(feed)
                    self._idle_since.pop(feed.show_id, None)
                continue
            self._idle_since.pop(feed.show_id, None)
            origin = await self.origins.find(feed.show_id)
            if feed.failed or (origin is not None and origin.node != feed.origin):
                await self.stage.stop_feed(feed)
        watched = self.stage.watched
        for show_id in watched:
            if self.stage.codecs(show_id) is None:
                with contextlib.suppress(NotLive):
                    await self.ensure(show_id)  # the viewers wait for the next sweep if not
        for show_id, lock in list(self._locks.items()):
            if show_id not in watched and not lock.locked():
                del self._locks[show_id]  # one lock per show being pulled, not per show ever

    # -- lobby voice across nodes ---------------------------------------------------------------

    async def voice_sweep(self) -> None:
        """Say which lobbies have voices on this node, keep this node's speakers' slots, and hear
        every lobby this node's members hear from each other node that has voices of it."""
        voices = self.voices
        if voices is None:
            return
        bus, node = self.origins.bus, self.origins.node
        spoken = voices.lobbies_spoken()
        for show_id, lobby_id in spoken:
            record = {"url": self.origins.url}
            await bus.group_put(_voice_group(show_id, lobby_id), node, record, ttl=VOICE_TTL)
        for show_id, lobby_id in self._spoken - spoken:
            await bus.group_remove(_voice_group(show_id, lobby_id), node)
        self._spoken = spoken
        for show_id, lobby_id in spoken:
            for seat in voices.seats(show_id, lobby_id):
                if seat.mic_on and seat.slot is not None and not seat.remote:
                    await self.voice_slots.renew(show_id, lobby_id, seat.slot, seat.key)
        wanted: dict[tuple[str, str, str], str] = {}
        for show_id in voices.shows:
            heard = sorted(voices.lobbies_heard(show_id))
            groups = await bus.group_members([_voice_group(show_id, lobby) for lobby in heard])
            for lobby_id, members in zip(heard, groups, strict=True):
                for other, record in members.items():
                    if other != node and isinstance(record.get("url"), str):
                        wanted[(show_id, lobby_id, other)] = record["url"]
        for key, feed in list(self._voice_feeds.items()):
            if key not in wanted or feed.failed:
                del self._voice_feeds[key]
                await feed.close()
        for key, url in wanted.items():
            if key not in self._voice_feeds:
                with contextlib.suppress(NotLive, InvalidSdp):
                    self._voice_feeds[key] = await self._hear(voices, *key, url)

    async def _hear(
        self, voices: Voices, show_id: str, lobby_id: str, other: str, url: str
    ) -> VoiceFeed:
        feed = await voices.pull(show_id, lobby_id, other)
        try:
            answer = await self._ask_url(
                f"{url.rstrip('/')}/cluster/voice/{show_id}/{lobby_id}", feed.offer_sdp, show_id
            )
        except BaseException:
            await feed.close()
            raise
        await voices.hear_from(feed, answer)
        log.info("cluster.voice_feed", show=show_id, lobby=lobby_id, node=other)
        return feed

    @property
    def voice_feeds(self) -> list[VoiceFeed]:
        """The lobby voices this node hears from other nodes."""
        return list(self._voice_feeds.values())

    async def start(self) -> None:
        """Renew this node's claims and sweep its feeds, for as long as the node runs."""
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(every(RENEW_EVERY, self.origins.renew, "origin_renew")),
            loop.create_task(every(self.sweep_every, self.sweep, "feed_sweep")),
            loop.create_task(every(PLAYERS_EVERY, self.count_players, "players_count")),
            loop.create_task(every(VOICE_EVERY, self.voice_sweep, "voice_sweep")),
        ]

    async def close(self) -> None:
        """Stop the tasks and let go of the claims (feeds close with the stage)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for show_id in self.origins.hosted:
            with contextlib.suppress(Exception):
                await self.origins.release(show_id)
        if self._http is not None:
            await self._http.close()
            self._http = None


def _voice_group(show_id: str, lobby_id: str) -> str:
    return f"voicenodes:{show_id}:{lobby_id}"


def _players_group(show_id: str) -> str:
    return f"players:{show_id}"


async def _node_offer(request: web.Request, refused: str) -> tuple[Cascade, str]:
    """This node's cascade and the SDP offer another node of the deployment sent: 404 outside a
    cluster, 403 (``refused``) without the cluster token, 400 for a body that is no offer."""
    cascade = services(request).cascade
    if cascade.token is None or cascade.voices is None:
        raise ApiError(404, "not_found", "this node is not part of a cluster")
    if not cascade.admits(request.headers.get("Authorization")):
        raise ApiError(403, "forbidden", refused)
    sdp = (await read_json_object(request)).get("sdp")
    if not isinstance(sdp, str) or len(sdp.encode()) > MAX_SDP_BYTES:
        raise ApiError(
            400, "invalid_input", f"sdp must be an offer of at most {MAX_SDP_BYTES} bytes"
        )
    return cascade, sdp


@routes.post("/cluster/feeds/{show_id}")
async def open_feed(request: web.Request) -> web.Response:
    """Another node of the deployment pulls the show from this one: its offer in, our answer out."""
    cascade, sdp = await _node_offer(request, "only nodes of this deployment may pull a show")
    session = await cascade.stage.watch(request.match_info["show_id"], sdp, edge=True)
    log.info("cluster.feed_opened", show=session.show_id)
    return web.json_response({"sdp": session.answer_sdp})


@routes.post("/cluster/voice/{show_id}/{lobby_id}")
async def open_voice_feed(request: web.Request) -> web.Response:
    """Another node hears this node's speakers of a lobby for its own members: its offer (slots
    only) in, our answer out."""
    cascade, sdp = await _node_offer(request, "only nodes of this deployment may hear a lobby")
    assert cascade.voices is not None  # _node_offer answers 404 otherwise
    show_id, lobby_id = request.match_info["show_id"], request.match_info["lobby_id"]
    key = f"node-{secrets.token_hex(6)}"
    seat = await cascade.voices.join(show_id, lobby_id, key, sdp, remote=True)
    if seat.has_mic:
        await cascade.voices.leave(seat)
        raise ApiError(400, "invalid_input", "another node only listens: offer slots only")
    log.info("cluster.voice_feed_opened", show=show_id, lobby=lobby_id)
    return web.json_response({"sdp": seat.answer_sdp})
