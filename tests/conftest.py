"""Fixtures: a real redis-server, the bus on both engines, and the app on both engines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestClient

from lampio_stream.app import create_app
from media.ice import use_host_addresses
from rooms.bus import Bus
from rooms.bus_memory import MemoryBus
from rooms.bus_redis import RedisBus
from tests.helpers import check_needs
from tests.nodes import Node, make_config, serve
from tests.redis_sentinel import PASSWORD as SENTINEL_PASSWORD
from tests.redis_sentinel import Sentinels, check_sentinel
from tests.redis_server import RedisServer


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``needs`` or ``sentinel`` skips without what it needs, or fails in CI
    (tests/helpers.py, tests/redis_sentinel.py)."""
    check_needs(item)
    check_sentinel(item)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session, flushed by each test that uses it."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_sentinels() -> Iterator[Sentinels]:
    """A master, its replica and three sentinels for the session, flushed by each test that uses
    them (a test that kills the master has its own); Redis with a password."""
    deployment = Sentinels(password=SENTINEL_PASSWORD)
    deployment.start()
    yield deployment
    deployment.close()


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """The bus, once per engine; the Redis engine on a real redis-server."""
    engine: Bus
    if request.param == "memory":
        engine = MemoryBus()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        engine = await RedisBus.connect(server.url)
    yield engine
    await engine.close()


@pytest.fixture
async def client(bus: Bus, aiohttp_client: object) -> TestClient:  # type: ignore[type-arg]
    """A real HTTP client against the app on a loopback port, once per bus engine."""
    app = create_app(make_config(), bus=bus)
    return await aiohttp_client(app)  # type: ignore[operator,no-any-return]


@pytest.fixture
async def node(bus: Bus) -> AsyncIterator[Node]:
    """The app on a loopback port, once per bus engine (modules that need other settings, or one
    engine only, have a ``node`` fixture of their own)."""
    async with serve(bus) as running:
        yield running


@pytest.fixture
def loopback_ice() -> Iterator[None]:
    """Offer only 127.0.0.1 as host candidate, so no test traffic leaves the machine."""
    use_host_addresses(["127.0.0.1"])
    yield
    use_host_addresses(None)
