"""Many nodes, one show: a show whose performer is on one node (its origin) is watched on the
others, each pulling it once from the origin for all its viewers (signaling/cluster.py).

Real parts: three nodes in this process on one real redis-server, real aiortc peers on loopback
(performer, viewers, and the feeds between nodes)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiortc import RTCSessionDescription

from clients.client import Performer, Session, Voice, Watcher
from media.sources import TestPatternTrack, ToneTrack
from rooms.bus_redis import RedisBus
from tests.helpers import eventually, post
from tests.nodes import Node, serve, start_performer, start_viewer
from tests.redis_server import RedisServer
from tests.test_voice import close_all, hears, member, slots_heard
from tests.test_whep import Player

pytestmark = pytest.mark.usefixtures("loopback_ice")

SECRET = secrets.token_urlsafe(32)


@pytest.fixture
async def nodes(redis_server: RedisServer) -> AsyncIterator[list[Node]]:
    """Three nodes of one deployment (one Redis, one cluster secret); feeds idle out fast."""
    redis_server.flush()
    buses = [await RedisBus.connect(redis_server.url) for _ in range(3)]
    try:
        async with (
            serve(buses[0], cluster_secret=SECRET) as a,
            serve(buses[1], cluster_secret=SECRET) as b,
            serve(buses[2], cluster_secret=SECRET) as c,
        ):
            for node in (a, b, c):
                node.services.cascade.idle = 2.0
                node.services.cascade.sweep_every = 0.5
            yield [a, b, c]
    finally:
        for bus in buses:
            await bus.close()


async def stop(performer: Performer) -> None:
    await performer.stop()
    await performer.session.close()


async def close(*watchers: Watcher) -> None:
    for watcher in watchers:
        await watcher.close()
        await watcher.session.close()


def video(watcher: Watcher) -> int:
    return 0 if watcher.video is None else watcher.video.frames


async def test_viewers_on_every_node_watch_a_show_pulled_once_per_node(nodes: list[Node]) -> None:
    a, b, c = nodes
    show = await a.create_show()
    performer = await start_performer(a, show, "video/VP8")
    watchers: list[Watcher] = []
    try:
        for node in (a, b, b, c, c, c):
            watchers.append(await start_viewer(node, show["code"], decode=False))
        await eventually(lambda: all(video(w) >= 10 for w in watchers), 30, "frames everywhere")
        # The origin sends one stream per node that pulls, not one per remote viewer.
        assert a.stage.edge_streams(show["id"]) == 2
        assert (a.stage.viewer_total, b.stage.viewer_total, c.stage.viewer_total) == (1, 2, 3)
        assert b.stage.feed(show["id"]) is not None and a.stage.feed(show["id"]) is None
        # Keyframe requests of an edge's viewers are coalesced there into one PLI on the feed,
        # which reaches the performer through the origin's broadcast.
        ingest = a.stage.broadcast(show["id"]).ingest
        feed = b.stage.feed(show["id"])
        assert ingest is not None and feed is not None and feed.publication is not None
        (performer_video,) = [r for r in ingest.receivers if r.kind == "video"]
        (feed_video,) = [r for r in feed.publication.ingest.receivers if r.kind == "video"]
        asked, fed = performer_video.keyframe_requests, feed_video.keyframe_requests
        for _ in range(5):
            b.stage.broadcast(show["id"]).request_keyframe()
        await eventually(lambda: performer_video.keyframe_requests > asked, 10, "PLI upstream")
        assert 1 <= feed_video.keyframe_requests - fed <= 2
    finally:
        await close(*watchers)
        await stop(performer)


async def test_an_edge_with_no_viewer_left_stops_pulling(nodes: list[Node]) -> None:
    a, b, _ = nodes
    show = await a.create_show()
    performer = await start_performer(a, show, "video/VP8")
    try:
        watcher = await start_viewer(b, show["code"], decode=False)
        await eventually(lambda: video(watcher) >= 5, 30, "frames on the edge")
        assert a.stage.edge_streams(show["id"]) == 1
        await close(watcher)
        # idle 2 s here (30 s by default), swept every 0.5 s
        await eventually(lambda: b.stage.feed(show["id"]) is None, 10, "the edge stops pulling")
        await eventually(lambda: a.stage.edge_streams(show["id"]) == 0, 10, "the origin lets go")
        # A new viewer pulls the show again.
        again = await start_viewer(b, show["code"], decode=False)
        await eventually(lambda: video(again) >= 5, 30, "frames again")
        await close(again)
    finally:
        await stop(performer)


async def test_the_performer_moves_to_another_node_and_viewers_follow(nodes: list[Node]) -> None:
    a, b, c = nodes
    show = await a.create_show()
    performer = await start_performer(a, show, "video/VP8")
    watcher = await start_viewer(b, show["code"], decode=False)
    try:
        await eventually(lambda: video(watcher) >= 5, 30, "frames from the first origin")
        await stop(performer)
        # The performer comes back on C: C becomes the origin, B follows without the viewer acting.
        performer = await start_performer(c, show, "video/VP8")
        cascade = c.services.cascade

        async def claimed_by_c() -> bool:
            found = await cascade.origins.find(show["id"])
            return found is not None and found.node == cascade.origins.node

        await eventually(claimed_by_c, 10, "C claims the show once its performer connects")
        origin = await cascade.origins.find(show["id"])
        assert origin is not None
        before = video(watcher)
        await eventually(lambda: video(watcher) >= before + 20, 30, "frames from the new origin")
        feed = b.stage.feed(show["id"])
        assert feed is not None and feed.origin == origin.node
        await eventually(lambda: c.stage.edge_streams(show["id"]) == 1, 10, "one stream from C")
        await eventually(lambda: a.stage.edge_streams(show["id"]) == 0, 10, "the old origin")
        assert a.stage.feed(show["id"]) is None, "a node without viewers pulls nothing"
    finally:
        await close(watcher)
        await stop(performer)


async def test_only_nodes_with_the_secret_may_pull(nodes: list[Node]) -> None:
    a, _, _ = nodes
    show = await a.create_show()
    performer = await start_performer(a, show, "video/VP8")
    try:
        async with aiohttp.ClientSession() as http:
            url = f"{a.url}/cluster/feeds/{show['id']}"
            wrong = ({}, {"Authorization": "Cluster wrong"}, {"Authorization": f"Bearer {SECRET}"})
            for header in wrong:
                async with http.post(url, json={"sdp": "v=0"}, headers=header) as response:
                    assert response.status == 403
                    assert (await response.json())["error"]["code"] == "forbidden"
        assert a.stage.edge_streams(show["id"]) == 0
    finally:
        await stop(performer)


async def test_a_node_without_the_secret_pulls_nothing(redis_server: RedisServer) -> None:
    """Without --cluster-secret a node keeps to itself: a show live elsewhere is not live here."""
    redis_server.flush()
    buses = [await RedisBus.connect(redis_server.url) for _ in range(2)]
    try:
        async with serve(buses[0]) as a, serve(buses[1]) as b:
            show = await a.create_show()
            performer = await start_performer(a, show, "video/VP8")
            try:
                async with aiohttp.ClientSession() as http:
                    url = f"{a.url}/cluster/feeds/{show['id']}"
                    async with http.post(url, json={"sdp": "v=0"}) as response:
                        assert response.status == 404
                assert await b.services.cascade.codecs(show["id"]) is None
            finally:
                await stop(performer)
    finally:
        for bus in buses:
            await bus.close()


async def test_a_player_on_another_node_watches_and_counts_for_the_performer(
    nodes: list[Node],
) -> None:
    """A standard player (WHEP) on B watches a show performed on A, and the performer's audience
    figure counts it (each node tells the others how many players it has)."""
    a, b, _ = nodes
    show = await a.create_show()
    performer = await start_performer(a, show, "video/VP8")
    player = Player()
    try:
        # A player asked too early gets 503 with Retry-After, as for a show not yet on air.
        async def on_air_for_b() -> bool:
            return await b.services.cascade.codecs(show["id"]) is not None

        await eventually(on_air_for_b, 10, "B knows the show is on air on A")
        status, _, answer = await post(
            f"{b.url}/whep/{show['code']}",
            await player.offer(),
            **{"Content-Type": "application/sdp"},
        )
        assert status == 201, answer
        await player.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await eventually(lambda: player.frames["video"] >= 10, 30, "the player's frames")
        event = await performer.session.next_event("audience")
        while event["viewers"] != 1:
            event = await performer.session.next_event("audience")
    finally:
        await player.close()
        await stop(performer)


async def test_members_of_one_lobby_on_two_nodes_hear_each_other(nodes: list[Node]) -> None:
    """Lobby voice across nodes: each speaker's slot is claimed for the lobby on the bus, and
    each node hears the other's speakers of the lobby through one voice feed (never mixed)."""
    a, b, _ = nodes
    show = await a.create_show()
    ann = await member(a, show["code"], "Ann", 440)
    bo = await member(b, show["code"], "Bo", 660)
    try:
        assert ann.joined["lobby"]["id"] == bo.joined["lobby"]["id"]  # seated across nodes
        assert (await ann.mic(True))["slot"] == 0
        assert (await bo.mic(True))["slot"] == 1  # not 0: Ann's node holds it
        await hears(bo, 0)  # Ann, from A
        await hears(ann, 1)  # Bo, from B
        assert slots_heard(ann) == {1} and slots_heard(bo) == {0}, "nobody hears themselves"
        assert len(a.services.cascade.voice_feeds) == len(b.services.cascade.voice_feeds) == 1
        # Bo goes quiet and gives the slot back: a newcomer's microphone takes it.
        assert (await bo.mic(False))["slot"] is None
        cai = await member(b, show["code"], "Cai", 550)
        try:
            assert (await cai.mic(True))["slot"] == 1
        finally:
            await close_all(cai)
    finally:
        await close_all(ann, bo)


async def test_a_lobby_on_stage_is_heard_by_the_performer_on_another_node(
    nodes: list[Node],
) -> None:
    """The performer on C invites a lobby whose speaker is on A: the invitation reaches A (the
    policy is on the bus) and C hears the lobby through a voice feed from A."""
    a, _, c = nodes
    show = await a.create_show()
    performer = Performer(await Session.connect(c.url))
    listener = Voice(performer.session)
    cai = await member(a, show["code"], "Cai", 550)
    try:
        await performer.start(
            show["id"], show["performer_token"], [TestPatternTrack(160, 120), ToneTrack()]
        )
        await listener.join(None, slots=4)
        state = await performer.session.request("voice.stage", lobby=cai.joined["lobby"]["id"])
        assert state["stage"] == cai.joined["lobby"]["id"]

        async def heard_on_a() -> bool:
            return (await cai.mic(True))["heard"] is True  # A follows the policy on the bus

        await eventually(heard_on_a, 10, "the stage invitation reaches A")
        await hears(listener, 0)
    finally:
        await close_all(cai)
        await listener.close()
        await stop(performer)
