"""Liveness, readiness and metrics, including a Redis outage."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from lampio_stream.app import create_app
from rooms.bus import Bus
from rooms.bus_redis import RedisBus
from tests.nodes import make_config
from tests.redis_server import RedisServer


async def test_health_ready_and_metrics(client: TestClient, bus: Bus) -> None:  # type: ignore[type-arg]
    health = await client.get("/healthz")
    assert health.status == 200 and (await health.json())["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"
    await client.get("/api/shows/by-code/000000")
    metrics = await client.get("/metrics")
    assert metrics.status == 200 and metrics.content_type == "text/plain"
    text = await metrics.text()
    assert "lampio_bus_up 1.0" in text
    assert 'lampio_code_lookups_total{result="not_found"} 1.0' in text
    assert 'lampio_http_requests_total{route="/healthz",status="200"} 1.0' in text
    names = [line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"]
    assert names and all(name.startswith("lampio_") for name in names)
    # leak checks (bench/soak.py): the event loop's tasks, and what the in-process bus holds
    tasks = next(line for line in text.splitlines() if line.startswith("lampio_asyncio_tasks "))
    assert float(tasks.split()[1]) >= 1
    # the wrong code: its address's count of failures and of attempts under way
    wrong_code = 'lampio_bus_keys{family="ratelimit"} 2.0'
    assert (wrong_code in text) == (bus.name == "memory")


async def test_redis_outage_fails_readiness_not_health(aiohttp_client: object) -> None:
    server = RedisServer()
    server.start()
    bus = await RedisBus.connect(server.url)
    try:
        client: TestClient = await aiohttp_client(create_app(make_config(), bus=bus))  # type: ignore[operator,type-arg]
        assert (await client.get("/readyz")).status == 200
        server.stop()
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["error"]["code"] == "bus_unavailable"
        programme = await client.get("/api/shows")
        assert programme.status == 503
        assert (await programme.json())["error"]["code"] == "bus_unavailable"
        assert programme.headers["Retry-After"]
        assert "lampio_bus_up 0.0" in await (await client.get("/metrics")).text()
        server.start()
        assert (await client.get("/readyz")).status == 200
    finally:
        server.close()
