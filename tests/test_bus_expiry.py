"""No key on the Redis bus lives for good unless it must (tests/buskeys.py, docs/architecture.md):
through a whole journey (a show, viewers and a friend in a lobby, chat, reactions, moderation,
captions, the voice policy, a care-home screen, leaving, ending), after a join refused for a full
lobby, and after a join that fails half-way because the bus failed at any of its steps."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis

from clients.client import ProtocolError, Session
from rooms import foyer as foyer_module
from rooms import lobbies as lobbies_module
from rooms.bus import Bus, BusUnavailable
from rooms.bus_memory import MemoryBus
from rooms.bus_redis import RedisBus
from rooms.chat import Chat
from rooms.foyer import Foyer
from rooms.lobbies import Lobbies, LobbyNotFound, Member
from tests import buskeys
from tests.helpers import eventually
from tests.nodes import Node, serve
from tests.pairing import staff_key
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


class FlakyBus:
    """The Redis bus, failing with BusUnavailable from its ``fail_at``-th call (counting from 0
    once ``arm`` is called), for one call or for every call until ``heal``."""

    def __init__(self, bus: RedisBus) -> None:
        self._bus = bus
        self.name = bus.name
        self.calls: list[str] = []
        self.fail_at: int | None = None
        self.stay_down = False
        self._armed = False

    def arm(self, fail_at: int | None, *, stay_down: bool = False) -> None:
        self.calls, self.fail_at, self.stay_down, self._armed = [], fail_at, stay_down, True

    def heal(self) -> None:
        self._armed = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._bus, name)
        if name.startswith("_") or not callable(method) or name in ("close",):
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._armed:
                n = len(self.calls)
                self.calls.append(name)
                if self.fail_at is not None and (
                    n == self.fail_at or (self.stay_down and n > self.fail_at)
                ):
                    raise BusUnavailable(f"failing {name} (call {n}) on purpose")
            return await method(*args, **kwargs)

        return call


@pytest.fixture
async def flaky(redis_server: RedisServer) -> AsyncIterator[FlakyBus]:
    redis_server.flush()
    bus = FlakyBus(await RedisBus.connect(redis_server.url))
    yield bus
    await bus._bus.close()


@pytest.fixture
async def node(flaky: FlakyBus) -> AsyncIterator[Node]:
    async with serve(flaky, lobby_size=2) as running:  # type: ignore[arg-type]
        yield running


async def idle(node: Node) -> None:
    await eventually(lambda: node.idle, 10, "every connection released")


async def test_a_whole_journey_leaves_only_keys_that_expire(
    node: Node, redis_server: RedisServer
) -> None:
    show = await node.create_show()
    ann, bo, cee, host = [await Session.connect(node.url) for _ in range(4)]
    tv, phone = await Session.connect(node.url), await Session.connect(node.url)
    try:
        joined = await ann.request("watch.join", code=show["code"], name="Ann")
        lobby = joined["lobby"]
        await bo.request("watch.join", code=show["code"], name="Bo", lobby=lobby["code"])
        with pytest.raises(ProtocolError) as full:  # two seats: the friend's lobby is full
            await cee.request("watch.join", code=show["code"], name="Cee", lobby=lobby["code"])
        assert full.value.code == "lobby_full"
        with pytest.raises(ProtocolError):
            await cee.request("show.lookup", code="000 000")  # a wrong code is counted
        posted = await ann.request("chat.send", text="Hei kaikki", client_id="a-1")
        await ann.request("chat.send", text="Hei kaikki", client_id="a-1")  # a repeat
        await bo.request("react", kind="applause")
        await bo.request("chat.history", after="0-0")
        await ann.request("member.rename", name="Ann K")
        await host.request("perform.host", show=show["id"], token=show["performer_token"])
        await host.request("chat.delete", lobby=lobby["id"], message=posted["id"])
        await host.request("chat.mute", member=joined["me"]["id"])
        await host.request("caption.send", text="Tervetuloa")
        await host.request("voice.intermission", open=True)
        await host.request("lobby.list")
        pairing = await tv.request("screen.hello")
        await phone.request("remote.open", key=await staff_key(node.url, "Koivukoti"))
        screen = (await phone.request("screen.pair", code=pairing["code"]))["screen"]
        await tv.request("screen.status", state="waiting", sound="on")
        await phone.request("remote.control", screen=screen["id"], volume=50, show=show["id"])
        await tv.request("watch.join", code=show["code"], screen=True)
        # everyone in: a node dying now must leave nothing for good
        await buskeys.assert_every_key_expires(redis_server.url)
        await ann.request("watch.leave")
        await phone.request("remote.forget", screen=screen["id"])
    finally:
        for session in (ann, bo, cee, host, tv, phone):
            await session.close()
    await idle(node)
    await buskeys.assert_every_key_expires(redis_server.url)
    ender = await Session.connect(node.url)
    try:
        await ender.request("perform.end", show=show["id"], token=show["performer_token"])
    finally:
        await ender.close()
    await idle(node)
    await buskeys.assert_every_key_expires(redis_server.url)
    assert not await _keys(redis_server, f"code:{show['code']}")  # ending freed the code


async def _keys(server: RedisServer, pattern: str) -> list[str]:
    client: Any = redis.Redis.from_url(server.url)
    try:
        found = [k.decode().removeprefix(buskeys.NAMESPACE) async for k in client.scan_iter()]
    finally:
        await client.aclose()
    return sorted(k for k in found if k.startswith(pattern) or pattern == "*")


async def test_a_join_refused_for_a_full_lobby_leaves_nothing(
    node: Node, redis_server: RedisServer
) -> None:
    show = await node.create_show()
    ann, bo, cee = [await Session.connect(node.url) for _ in range(3)]
    try:
        lobby = (await ann.request("watch.join", code=show["code"]))["lobby"]
        await bo.request("watch.join", code=show["code"], lobby=lobby["code"])
        before = await _keys(redis_server, "*")
        with pytest.raises(ProtocolError) as full:
            await cee.request("watch.join", code=show["code"], lobby=lobby["code"])
        assert full.value.code == "lobby_full"
        after = await _keys(redis_server, "*")
        assert after == before
    finally:
        for session in (ann, bo, cee):
            await session.close()


async def test_a_join_failing_at_any_step_leaves_nothing(
    node: Node, flaky: FlakyBus, redis_server: RedisServer
) -> None:
    """The bus fails once at each bus call a join makes in turn (a new lobby: its code reserved,
    its founder seated, it listed, the session stored, the lobby's channels followed, the members
    announced, the history read): the viewer gets ``bus_unavailable`` and nothing of the join
    stays, neither seat, lobby, code nor session."""
    show = await node.create_show()
    flaky.arm(None)
    probe = await Session.connect(node.url)
    try:
        await probe.request("watch.join", code=show["code"])
    finally:
        await probe.close()
        flaky.heal()
    await idle(node)
    steps = len(flaky.calls)
    assert steps >= 8, flaky.calls
    for step in range(steps):
        show = await node.create_show()
        before = await _keys(redis_server, "*")
        viewer = await Session.connect(node.url)
        flaky.arm(step)
        joined = False
        try:
            # a few calls may fail without failing the join (a count of attempts under way
            # given back): then it is seated, and leaving leaves only its session (for coming back)
            # and the show's counts
            await viewer.request("watch.join", code=show["code"], name="Ann")
            joined = True
        except ProtocolError as exc:
            assert exc.code == "bus_unavailable", (step, flaky.calls)
        finally:
            flaky.heal()
            await viewer.close()
        await idle(node)
        left = sorted(set(await _keys(redis_server, "*")) - set(before))
        # a seat taken is counted for the show's insight (raw counts: a day)
        kept = ("ratelimit:", "session:", "ins:") if joined else ("ratelimit:",)
        left = [k for k in left if not k.startswith(kept)]
        assert not left, f"failing {flaky.calls[step]} (call {step}) left {left}"


async def test_a_join_whose_bus_goes_away_half_way_leaves_only_keys_that_expire(
    node: Node, flaky: FlakyBus, redis_server: RedisServer
) -> None:
    """The bus goes away at each step of a join and stays away until the join has answered (its
    cleanup fails too): what it left behind expires."""
    show = await node.create_show()
    for step in range(12):
        viewer = await Session.connect(node.url)
        flaky.arm(step, stay_down=True)
        try:
            await viewer.request("watch.join", code=show["code"], name="Ann")
        except ProtocolError as exc:
            assert exc.code == "bus_unavailable", (step, flaky.calls)
        else:
            await viewer.request("watch.leave")  # it got through: it leaves as the bus is away
        try:
            await viewer.close()
            await idle(node)
        finally:
            flaky.heal()
            await viewer.close()
        await buskeys.assert_every_key_expires(redis_server.url)


@pytest.mark.parametrize("engine", ["memory", "redis"])
async def test_a_lobby_with_members_stays_listed_past_its_listing_expiry(
    engine: str, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Members' connections renew their lobby's listing and code (which expire without it): a
    lobby that outlives many listing expiries stays findable by its friends' code."""
    # a listing lives 1 s, renewed every 0.1 s: room for a stall of the loop on a busy machine
    monkeypatch.setattr(lobbies_module, "LISTING_TTL", 1.0)
    monkeypatch.setattr(foyer_module, "RELIST_INTERVAL", 0.1)
    monkeypatch.setattr(foyer_module, "REFRESH_INTERVAL", 0.05)
    redis_server.flush()
    bus: Bus = MemoryBus() if engine == "memory" else await RedisBus.connect(redis_server.url)
    lobbies = Lobbies(bus)
    foyer = Foyer(bus, lobbies, Chat(bus))
    loop = asyncio.get_running_loop()
    try:
        ann, bo = Member("ann", "Ann"), Member("bo", "Bo")
        lobby = await lobbies.join("show", ann)
        await lobbies.join("show", bo, lobby.code)
        started = loop.time()
        # Bo's connection keeps him present (and the lobby listed); Ann's presence lasts anyway.
        presence = loop.create_task(foyer.keep_present(lobby, lambda: bo))
        try:

            async def listed_long_after() -> bool:
                assert await lobbies.by_code("show", lobby.code) == lobby
                assert [found.id for found in await lobbies.lobbies("show")] == [lobby.id]
                return loop.time() - started > 3 * lobbies_module.LISTING_TTL

            await eventually(listed_long_after, 10)
        finally:
            presence.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await presence

        async def unlisted() -> bool:  # nobody renews it now: it expires
            try:
                await lobbies.by_code("show", lobby.code)
            except LobbyNotFound:
                return True
            return False

        await eventually(unlisted, 10)
    finally:
        await bus.close()
