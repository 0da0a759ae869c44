"""The node registry on both bus engines: nodes register, beat, report load, drain and go; and
the cluster token."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from rooms.bus import Bus, BusUnavailable
from rooms.bus_redis import RedisBus
from rooms.nodes import (
    NODES,
    CpuMeter,
    NodeInfo,
    NodeRegistry,
    check_cluster_token,
    cluster_token,
    new_node_id,
)
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY, Node, error_of, serve
from tests.redis_server import RedisServer, free_port

AUTH = {"Authorization": f"Bearer {ORGANISER_KEY}"}
SECRET = "a-cluster-secret-of-32-characters-or-more"


async def test_nodes_register_list_each_other_report_load_drain_and_stop(bus: Bus) -> None:
    before = time.time()
    a = NodeRegistry(bus, "b-node", "http://127.0.0.1:8001/", heartbeat=0.1, ttl=1.0)
    b = NodeRegistry(
        bus, "a-node", "http://127.0.0.1:8002", heartbeat=0.1, ttl=1.0, load=lambda: (7, 12.5)
    )
    await a.start()
    await b.start()
    listed = await a.all()
    assert [n.id for n in listed] == ["a-node", "b-node"]  # by id, live ones only
    assert listed == await b.all()
    mine = await a.get("b-node")
    assert mine is not None and mine.url == "http://127.0.0.1:8001" and not mine.draining
    assert before <= mine.started <= mine.seen <= time.time()
    assert (mine.viewers, mine.cpu_pct) == (0, 0.0)
    assert await a.get("a-node") == NodeInfo(
        "a-node", "http://127.0.0.1:8002", 7, 12.5, listed[0].started, listed[0].seen
    )
    assert await a.get("nobody") is None

    # the heartbeat carries the load set since, and keeps the record alive past its ttl
    a.set_load(3, 41.0)

    async def loaded() -> bool:
        node = await b.get("b-node")
        return node is not None and (node.viewers, node.cpu_pct) == (3, 41.0)

    await eventually(loaded, timeout=2)
    first_seen = (await b.get("b-node")).seen  # type: ignore[union-attr]
    await eventually(lambda: _seen_after(b, "b-node", first_seen + 1.2), timeout=4)

    await a.drain()  # said at once, not at the next heartbeat
    drained = await b.get("b-node")
    assert drained is not None and drained.draining
    await a.stop()
    assert [n.id for n in await b.all()] == ["a-node"]  # gone at once
    await a.stop()  # twice is fine
    await a.start()  # and a stopped registry does not come back
    assert [n.id for n in await b.all()] == ["a-node"]
    await b.stop()
    assert await bus.group_members([NODES]) == [{}]


async def _seen_after(registry: NodeRegistry, node_id: str, moment: float) -> bool:
    node = await registry.get(node_id)
    return node is not None and node.seen > moment


async def test_a_node_that_stops_beating_is_gone_within_its_ttl(bus: Bus) -> None:
    """A node that died wrote its record once more and nothing since: it leaves every list when
    the record expires, and unreadable records (another version's) are passed over."""
    reader = NodeRegistry(bus, "reader", "http://127.0.0.1:8003")
    record = {"url": "http://10.0.0.9:8080", "viewers": 1, "cpu_pct": 2.0, "started": 1.0}
    await bus.group_put(NODES, "dead", {**record, "seen": 2.0}, ttl=0.4)
    await bus.group_put(NODES, "odd", {"url": "http://x"}, ttl=30)
    assert [n.id for n in await reader.all()] == ["dead"]
    assert await reader.get("odd") is None

    async def gone() -> bool:
        return await reader.all() == []

    await eventually(gone, timeout=3)


async def test_a_node_starts_and_stops_while_the_bus_is_away() -> None:
    bus = await RedisBus.connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        registry = NodeRegistry(bus, new_node_id(), "http://127.0.0.1:8004", heartbeat=0.2)
        await registry.start()  # no error: the heartbeat registers it once Redis answers
        with pytest.raises(BusUnavailable):
            await registry.all()
        await registry.drain()
        await registry.stop()
    finally:
        await bus.close()


def test_registry_refuses_what_cannot_work() -> None:
    from rooms.bus_memory import MemoryBus

    bus = MemoryBus()
    for url in ("", "127.0.0.1:8080", "ftp://host", "http://"):
        with pytest.raises(ValueError, match="URL"):
            NodeRegistry(bus, "n", url)
    with pytest.raises(ValueError, match="heartbeat"):
        NodeRegistry(bus, "n", "http://h:1", heartbeat=15, ttl=15)
    with pytest.raises(ValueError, match="id"):
        NodeRegistry(bus, "", "http://h:1")
    ids = {new_node_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 12 for i in ids)


def test_cluster_token_is_checked_in_constant_time_and_never_without_a_secret() -> None:
    token = cluster_token(SECRET)
    assert token == cluster_token(SECRET) and SECRET not in token and len(token) == 64
    assert token != cluster_token(SECRET + "x")
    assert check_cluster_token(SECRET, token)
    assert check_cluster_token(SECRET, f"Bearer {token}")
    assert check_cluster_token(SECRET, f"bearer  {token} ")
    assert check_cluster_token(SECRET, f"Cluster {token}")  # as the feed endpoint gets it
    assert not check_cluster_token(SECRET, f"Cluster {token[:-1]}\udcff")  # not UTF-8 on the wire
    assert not check_cluster_token(SECRET, cluster_token("another-secret-of-32-characters-long"))
    assert not check_cluster_token(SECRET, SECRET)
    assert not check_cluster_token(SECRET, "Bearer ")
    assert not check_cluster_token(SECRET, "")
    assert not check_cluster_token(SECRET, None)
    assert not check_cluster_token(SECRET, "Bearer ääkköset")
    assert not check_cluster_token(None, token)
    assert not check_cluster_token("", cluster_token(""))


def test_cpu_meter_measures_this_process() -> None:
    meter = CpuMeter()
    spent = time.process_time() + 0.2
    while time.process_time() < spent:  # work, not a wait: what the meter must see
        pass
    assert meter.percent() > 10
    assert meter.percent() >= 0


async def test_api_nodes_lists_this_node_for_organisers_only(bus: Bus) -> None:
    async with (
        serve(bus, advertise_url="http://127.0.0.1:9101") as node,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{node.url}/api/nodes", headers=AUTH) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            listed = (await response.json())["nodes"]
        assert listed == [
            {
                "id": node.services.node_id,
                "url": "http://127.0.0.1:9101",
                "viewers": 0,
                "cpu_pct": listed[0]["cpu_pct"],
                "started": listed[0]["started"],
                "seen": listed[0]["seen"],
                "draining": False,
                "self": True,
            }
        ]
        async with http.get(f"{node.url}/api/nodes") as response:
            assert await error_of(response) == (401, "unauthorized")
        async with http.get(
            f"{node.url}/api/nodes", headers={"Authorization": "Bearer not-the-key"}
        ) as response:
            assert await error_of(response) == (403, "forbidden")


async def test_api_nodes_lists_every_node_on_one_redis(redis_server: RedisServer) -> None:
    """Two nodes (each with its own connection) on one Redis list each other, each marking
    itself; one that stops is out of the other's list at once."""
    redis_server.flush()
    bus_a, bus_b = [await RedisBus.connect(redis_server.url) for _ in range(2)]
    async with (
        serve(bus_a, advertise_url="http://127.0.0.1:9101") as a,
        aiohttp.ClientSession() as http,
    ):

        async def listed_by(node: Node) -> list[dict[str, Any]]:
            async with http.get(f"{node.url}/api/nodes", headers=AUTH) as response:
                assert response.status == 200
                nodes: list[dict[str, Any]] = (await response.json())["nodes"]
                return nodes

        async with serve(bus_b, advertise_url="http://127.0.0.1:9102") as b:
            by_a, by_b = await listed_by(a), await listed_by(b)
            ids = sorted([a.services.node_id, b.services.node_id])
            assert [n["id"] for n in by_a] == [n["id"] for n in by_b] == ids
            assert {n["url"] for n in by_a} == {"http://127.0.0.1:9101", "http://127.0.0.1:9102"}
            assert [n["id"] for n in by_a if n["self"]] == [a.services.node_id]
            assert [n["id"] for n in by_b if n["self"]] == [b.services.node_id]
        assert [n["id"] for n in await listed_by(a)] == [a.services.node_id]
