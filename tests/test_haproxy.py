"""Three node processes behind a real HAProxy, on one real redis-server: every client uses the one
address of the load balancer and lands on whichever node it picks; a show whose performer is on
one node is watched on all three (each other node pulls it once from the origin, as its
``/metrics`` say). Only HTTP and WebSocket go through HAProxy; media goes straight to each node's
own ICE address (docs/operations.md)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from clients.client import Performer, Session, Watcher
from media.sources import TestPatternTrack, ToneTrack
from tests import cluster_procs
from tests.cluster_procs import HAPROXY, Deployment, all_ready, create_show, metric
from tests.helpers import eventually
from tests.redis_server import RedisServer

pytestmark = [
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.needs(HAPROXY, "HAProxy (Debian's haproxy package; `make test` installs it)"),
]


@pytest.fixture
def deployment(redis_server: RedisServer, tmp_path: Path) -> Iterator[Deployment]:
    with cluster_procs.deployment(redis_server, tmp_path) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_viewers_behind_haproxy_watch_on_every_node(
    deployment: Deployment, http: aiohttp.ClientSession
) -> None:
    await all_ready(http, deployment)
    show = await create_show(http, deployment.url, "Kuorokonsertti")
    performer = Performer(await Session.connect(deployment.url))
    await performer.start(
        show["id"], show["performer_token"], [TestPatternTrack(), ToneTrack()], "video/VP8"
    )
    watchers: list[Watcher] = []
    try:
        started = time.monotonic()
        for _ in range(6):  # round robin: two on each node, the performer's included
            watcher = Watcher(await Session.connect(deployment.url), decode=False)
            joined = await watcher.join(show["code"])
            if not joined["live"]:
                await watcher.session.next_event("show.state")
            await watcher.start()
            watchers.append(watcher)
        await eventually(
            lambda: all(w.video is not None and w.video.frames >= 10 for w in watchers),
            45,
            "every viewer receives frames",
        )
        viewers = [await metric(http, node, "lampio_viewers") for node in deployment.nodes]
        assert sum(viewers) == 6 and sum(1 for v in viewers if v) >= 2, viewers
        live = [await metric(http, node, "lampio_live_shows") for node in deployment.nodes]
        assert sorted(live) == [0, 0, 1]
        origin = deployment.nodes[live.index(1)]
        # One stream from the origin to each other node with viewers, however many they have.
        edges_with_viewers = sum(
            1 for node, v in zip(deployment.nodes, viewers, strict=True) if v and node is not origin
        )
        assert await metric(http, origin, "lampio_feeds_out") == edges_with_viewers
        assert time.monotonic() - started < 45
    finally:
        for watcher in watchers:
            await watcher.close()
            await watcher.session.close()
        await performer.stop()
        await performer.session.close()
