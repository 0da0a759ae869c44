"""The bus contract: every test runs on the in-process engine, on a real redis-server and on the
master of a real Redis Sentinel deployment (a master, its replica, three sentinels)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from rooms.bus import STREAM_START, Bus, BusError, BusUnavailable, Opening, stream_id_key
from rooms.bus_memory import MemoryBus
from rooms.bus_redis import RedisBus
from tests.helpers import eventually
from tests.redis_sentinel import MASTER, Sentinels
from tests.redis_server import RedisServer


@pytest.fixture(params=["memory", "redis", pytest.param("sentinel", marks=pytest.mark.sentinel)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """The bus, once per engine (conftest's two, and the Redis engine through Sentinel, with
    the password and database its URL gives)."""
    engine: Bus
    if request.param == "memory":
        engine = MemoryBus()
    elif request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()
        engine = await RedisBus.connect(server.url)
    else:
        sentinels: Sentinels = request.getfixturevalue("redis_sentinels")
        sentinels.flush()
        await sentinels.ready()
        engine = await RedisBus.connect_sentinel(sentinels.addresses, MASTER, url=sentinels.url)
    yield engine
    await engine.close()


# -- publish / subscribe ----------------------------------------------------------------------


async def test_subscriber_receives_published_messages_in_order(bus: Bus) -> None:
    sub = await bus.subscribe("show:1:events")
    for n in range(20):
        await bus.publish("show:1:events", {"n": n, "text": "ääkköset", "raw": b"\x00\x01"})
    got = [await sub.get(timeout=2) for _ in range(20)]
    assert [m["n"] for m in got] == list(range(20))
    assert got[0]["text"] == "ääkköset" and got[0]["raw"] == b"\x00\x01"
    await sub.close()


async def test_every_subscriber_gets_a_copy_and_channels_are_separate(bus: Bus) -> None:
    a = await bus.subscribe("a")
    a2 = await bus.subscribe("a")
    b = await bus.subscribe("b")
    await bus.publish("a", {"to": "a"})
    await bus.publish("b", {"to": "b"})
    assert (await a.get(timeout=2))["to"] == "a"
    assert (await a2.get(timeout=2))["to"] == "a"
    assert (await b.get(timeout=2))["to"] == "b"
    # Nothing for "b" reached "a": the next message "a" gets is one published on "a" after it
    # (each subscriber gets messages in the order they were published).
    await bus.publish("a", {"to": "a", "n": "after"})
    assert await a.get(timeout=2) == {"to": "a", "n": "after"}
    for s in (a, a2, b):
        await s.close()


async def test_closed_subscription_stops_receiving_and_iteration_ends(bus: Bus) -> None:
    keep = await bus.subscribe("c")
    gone = await bus.subscribe("c")
    await gone.close()
    await gone.close()  # twice is fine
    await bus.publish("c", {"n": 1})
    assert (await keep.get(timeout=2))["n"] == 1
    received = [m async for m in gone]
    assert received == []
    await keep.close()


async def test_messages_published_before_subscribing_are_not_delivered(bus: Bus) -> None:
    await bus.publish("late", {"n": 0})
    sub = await bus.subscribe("late")
    await bus.publish("late", {"n": 1})
    assert (await sub.get(timeout=2))["n"] == 1
    await sub.close()


async def test_async_iteration_yields_messages(bus: Bus) -> None:
    sub = await bus.subscribe("it")

    async def collect() -> list[int]:
        out = []
        async for m in sub:
            out.append(m["n"])
            if len(out) == 3:
                break
        return out

    task = asyncio.create_task(collect())
    for n in range(3):
        await bus.publish("it", {"n": n})
    assert await asyncio.wait_for(task, 2) == [0, 1, 2]
    await sub.close()


# -- streams ----------------------------------------------------------------------------------


async def test_stream_append_returns_increasing_ids_and_reads_after_an_id(bus: Bus) -> None:
    ids = [await bus.append("chat:l1", {"n": n}, maxlen=100) for n in range(10)]
    assert ids == sorted(ids, key=stream_id_key) and len(set(ids)) == 10
    everything = await bus.read("chat:l1")
    assert [e.message["n"] for e in everything] == list(range(10))
    assert [e.id for e in everything] == ids
    after = await bus.read("chat:l1", after=ids[6])
    assert [e.message["n"] for e in after] == [7, 8, 9]
    assert await bus.read("chat:l1", after=ids[-1]) == []
    limited = await bus.read("chat:l1", after=STREAM_START, count=3)
    assert [e.message["n"] for e in limited] == [0, 1, 2]
    newest = await bus.read("chat:l1", count=3, newest=True)
    assert [e.message["n"] for e in newest] == [7, 8, 9]
    assert [e.message["n"] for e in await bus.read("chat:l1", ids[7], 5, newest=True)] == [8, 9]
    assert await bus.read("chat:l1", after=ids[-1], newest=True) == []


async def test_stream_is_bounded_to_maxlen(bus: Bus) -> None:
    for n in range(25):
        await bus.append("chat:small", {"n": n}, maxlen=10)
    entries = await bus.read("chat:small", count=1000)
    assert [e.message["n"] for e in entries] == list(range(15, 25))


async def test_stream_expires(bus: Bus) -> None:
    await bus.append("chat:brief", {"n": 1}, maxlen=10, ttl=0.3)
    assert len(await bus.read("chat:brief")) == 1
    await eventually(lambda: _empty(bus.read("chat:brief")), timeout=3)


async def _empty(coro: object) -> bool:
    return not await coro  # type: ignore[misc]


async def test_unknown_stream_reads_empty_and_bad_ids_are_refused(bus: Bus) -> None:
    assert await bus.read("chat:none") == []
    with pytest.raises(BusError):
        await bus.read("chat:none", after="yesterday")
    with pytest.raises(BusError):
        await bus.append("chat:none", {"n": 1}, maxlen=0)


async def test_append_once_stores_a_repeat_only_once(bus: Bus) -> None:
    first = await bus.append_once(
        "chat:l2", {"n": 1}, once="chatid:l2:c1", remember=60, maxlen=10, ttl=60
    )
    again = await bus.append_once(
        "chat:l2", {"n": 2}, once="chatid:l2:c1", remember=60, maxlen=10, ttl=60
    )
    other = await bus.append_once(
        "chat:l2", {"n": 3}, once="chatid:l2:c2", remember=60, maxlen=10, ttl=60
    )
    assert first[1] is False and again == (first[0], True) and other[1] is False
    assert [e.message["n"] for e in await bus.read("chat:l2")] == [1, 3]
    assert [e.id for e in await bus.read("chat:l2")] == [first[0], other[0]]


async def test_append_once_forgets_after_remember(bus: Bus) -> None:
    first, _ = await bus.append_once("chat:l3", {"n": 1}, once="o:1", remember=0.2, maxlen=10)

    async def forgotten() -> bool:
        entry_id, repeat = await bus.append_once(
            "chat:l3", {"n": 2}, once="o:1", remember=0.2, maxlen=10
        )
        return not repeat and entry_id != first

    await eventually(forgotten, timeout=3)
    with pytest.raises(BusError):
        await bus.append_once("chat:l3", {"n": 3}, once="o:2", remember=0, maxlen=10)


# -- groups -----------------------------------------------------------------------------------


async def test_group_put_counts_lists_refreshes_and_removes(bus: Bus) -> None:
    assert await bus.group_put("members:l", "a", {"name": "Aino"}, ttl=30) == 1
    assert await bus.group_put("members:l", "b", {"name": "Eino"}, ttl=30) == 2
    assert await bus.group_put("members:l", "a", {"name": "Aino V."}, ttl=30) == 2  # a refresh
    assert await bus.group_put("members:other", "c", {"name": "Into"}) == 1  # for good
    assert await bus.group_members(["members:l", "members:other", "members:none"]) == [
        {"a": {"name": "Aino V."}, "b": {"name": "Eino"}},
        {"c": {"name": "Into"}},
        {},
    ]
    assert await bus.group_sizes(["members:l", "members:none", "members:other"]) == [2, 0, 1]
    assert await bus.group_members([]) == [] and await bus.group_sizes([]) == []
    assert await bus.group_remove("members:l", "a") == 1
    assert await bus.group_remove("members:l", "a") == 1  # twice is fine
    assert await bus.group_remove("members:l", "b") == 0
    assert await bus.group_members(["members:l"]) == [{}]


async def test_group_limit_refuses_newcomers_only(bus: Bus) -> None:
    assert await bus.group_put("g", "a", {}, ttl=30, limit=2) == 1
    assert await bus.group_put("g", "b", {}, ttl=30, limit=2) == 2
    assert await bus.group_put("g", "c", {}, ttl=30, limit=2) == 0  # full
    assert await bus.group_put("g", "b", {"again": True}, ttl=30, limit=2) == 2  # already in
    assert await bus.group_sizes(["g"]) == [2]
    await bus.group_remove("g", "a")
    assert await bus.group_put("g", "c", {}, ttl=30, limit=2) == 2


async def test_group_limit_holds_under_concurrency(bus: Bus) -> None:
    seated = await asyncio.gather(
        *(bus.group_put("g:busy", f"m{n}", {}, ttl=30, limit=5) for n in range(20))
    )
    assert sorted(n for n in seated if n) == [1, 2, 3, 4, 5]
    assert await bus.group_sizes(["g:busy"]) == [5]


def opening(name: str, limit: int = 2) -> Opening:
    return Opening(name, {"cap": limit, "n": name}, ttl=30, claim=f"claim:{name}")


async def seat(
    bus: Bus, member: str, new: Opening, value: dict[str, object] | None = None, **where: str
) -> tuple[str, int]:
    """``group_seat`` in directory "dir" over groups "g:…" (unless ``where`` says otherwise):
    where the member sat and how many are there; the entry's value is checked on the way."""
    directory, prefix = where.get("directory", "dir"), where.get("prefix", "g:")
    name, record, seats = await bus.group_seat(
        directory, prefix, member, value or {}, ttl=30, limit_field="cap", opening=new
    )
    if name:
        assert record == (await bus.group_members([directory]))[0][name]
    else:
        assert record == {} and seats == 0
    return name, seats


async def test_group_seat_fills_the_fullest_group_with_room_then_opens_one(bus: Bus) -> None:
    assert await seat(bus, "a", opening("x"), {"n": 1}) == ("x", 1)
    assert await bus.group_members(["dir", "g:x"]) == [
        {"x": {"cap": 2, "n": "x"}},
        {"a": {"n": 1}},
    ]
    assert await bus.get("claim:x") == {"cap": 2, "n": "x"}
    # room in x: the opening offered is not used, nor its claim taken
    assert await seat(bus, "b", opening("y")) == ("x", 2)
    assert await bus.get("claim:y") is None
    # x is full: y opens; then z, offered next, is passed over for y, which has room
    assert await seat(bus, "c", opening("y")) == ("y", 1)
    assert await seat(bus, "d", opening("z")) == ("y", 2)
    # a member already in a full group is refreshed there, with its new value
    assert await seat(bus, "a", opening("z"), {"n": 2}) == ("x", 2)
    assert (await bus.group_members(["g:x"]))[0]["a"] == {"n": 2}
    assert await bus.group_sizes(["g:x", "g:y", "g:z"]) == [2, 2, 0]


async def test_group_seat_prefers_the_fullest_passes_over_empty_and_unlimited(bus: Bus) -> None:
    for name, members in (("a", 1), ("b", 3), ("c", 0), ("d", 2)):
        await bus.group_put("dir", name, {"cap": 4}, ttl=30)
        for n in range(members):
            await bus.group_put(f"g:{name}", f"{name}{n}", {}, ttl=30)
    await bus.group_put("dir", "e", {"no": "limit"}, ttl=30)  # no limit: never chosen
    await bus.group_put("g:e", "e0", {}, ttl=30)
    seated = [await seat(bus, f"m{n}", opening(f"new{n}")) for n in range(6)]
    # b to 4, then d (3, 4), then a (2, 3, 4): fullest first, never the empty c
    assert seated == [("b", 4), ("d", 3), ("d", 4), ("a", 2), ("a", 3), ("a", 4)]
    assert await seat(bus, "m9", opening("new9")) == ("new9", 1)
    # ties go to the smaller name
    for name in ("q", "p"):
        await bus.group_put("dir2", name, {"cap": 3}, ttl=30)
        await bus.group_put(f"h:{name}", "x", {}, ttl=30)
    assert await seat(bus, "y", opening("r"), directory="dir2", prefix="h:") == ("p", 2)


async def test_group_seat_refuses_a_taken_claim_and_holds_limits_at_once(bus: Bus) -> None:
    await bus.set("claim:taken", {"someone": "else"}, ttl=30)
    assert await seat(bus, "a", Opening("taken", {"cap": 5}, ttl=30, claim="claim:taken")) == (
        "",
        0,
    )
    assert await bus.group_members(["dir", "g:taken"]) == [{}, {}]
    assert await bus.get("claim:taken") == {"someone": "else"}
    with pytest.raises(BusError):
        await bus.group_seat("dir", "g:", "a", {}, ttl=0, limit_field="cap", opening=opening("o"))
    # 40 at once, 5 to a group: 8 groups of 5, each member in one
    seated = await asyncio.gather(
        *(seat(bus, f"m{n}", opening(f"o{n}", 5), directory="busy", prefix="s:") for n in range(40))
    )
    groups = sorted({name for name, _ in seated})
    assert len(groups) == 8 and all(seats <= 5 for _, seats in seated)
    members = await bus.group_members([f"s:{g}" for g in groups])
    assert sorted(m for group in members for m in group) == sorted(f"m{n}" for n in range(40))
    assert [len(group) for group in members] == [5] * 8


async def test_group_seat_lets_expired_members_and_entries_go(bus: Bus) -> None:
    await bus.group_put("dir", "old", {"cap": 2}, ttl=30)
    await bus.group_put("g:old", "gone", {}, ttl=0.3)
    await bus.group_put("g:old", "stays", {}, ttl=30)
    await bus.group_put("dir", "brief", {"cap": 9}, ttl=0.3)
    await bus.group_put("g:brief", "x", {}, ttl=30)

    async def room_in_old() -> bool:
        return await bus.group_sizes(["g:old", "dir"]) == [1, 1]

    await eventually(room_in_old, timeout=3)
    # the expired member's seat is free again; the expired entry is no choice however roomy
    assert await seat(bus, "new", opening("n")) == ("old", 2)


async def test_group_members_expire_one_by_one(bus: Bus) -> None:
    await bus.group_put("g:brief", "gone", {"n": 1}, ttl=0.3)
    await bus.group_put("g:brief", "stays", {"n": 2}, ttl=30)
    await bus.group_put("g:all", "gone", {"n": 3}, ttl=0.3)

    async def expired() -> bool:
        return await bus.group_sizes(["g:brief", "g:all"]) == [1, 0]

    await eventually(expired, timeout=3)
    assert await bus.group_members(["g:brief", "g:all"]) == [{"stays": {"n": 2}}, {}]
    # an expired member's seat is free again
    assert await bus.group_put("g:brief", "new", {}, ttl=30, limit=2) == 2


async def test_groups_and_keys_are_apart(bus: Bus) -> None:
    await bus.set("members:x", {"n": 1})
    await bus.group_put("members:x", "a", {"n": 2})
    assert await bus.get("members:x") == {"n": 1}
    assert await bus.keys("members:") == ["members:x"]
    with pytest.raises(BusError):
        await bus.group_put("members:x", "b", {}, ttl=0)


# -- keys with expiry -------------------------------------------------------------------------


async def test_set_get_delete(bus: Bus) -> None:
    assert await bus.get("presence:x") is None
    assert await bus.set("presence:x", {"name": "Aino"})
    assert await bus.get("presence:x") == {"name": "Aino"}
    assert await bus.set("presence:x", {"name": "Eino"})
    assert await bus.get("presence:x") == {"name": "Eino"}
    assert await bus.delete("presence:x") is True
    assert await bus.delete("presence:x") is False
    assert await bus.get("presence:x") is None


async def test_only_new_refuses_an_existing_key(bus: Bus) -> None:
    assert await bus.set("code:123456", {"show": "a"}, only_new=True) is True
    assert await bus.set("code:123456", {"show": "b"}, only_new=True) is False
    assert await bus.get("code:123456") == {"show": "a"}


async def test_keys_expire(bus: Bus) -> None:
    await bus.set("presence:brief", {"n": 1}, ttl=0.3)
    await bus.set("presence:stays", {"n": 2})
    assert await bus.get("presence:brief") == {"n": 1}
    await eventually(lambda: _is_none(bus.get("presence:brief")), timeout=3)
    assert await bus.get("presence:stays") == {"n": 2}
    # an expired key can be taken again with only_new
    assert await bus.set("presence:brief", {"n": 3}, only_new=True)


async def _is_none(coro: object) -> bool:
    return await coro is None  # type: ignore[misc]


async def test_keys_lists_by_prefix(bus: Bus) -> None:
    await bus.set("show:a", {"n": 1})
    await bus.set("show:b", {"n": 2})
    await bus.set("shows-other", {"n": 3})
    await bus.set("code:1", {"n": 4})
    await bus.set("show:gone", {"n": 5}, ttl=0.2)
    await eventually(lambda: _is_none(bus.get("show:gone")), timeout=3)
    assert await bus.keys("show:") == ["show:a", "show:b"]


# -- counters ---------------------------------------------------------------------------------


async def test_counter_counts_and_expires_from_the_first_count(bus: Bus) -> None:
    assert await bus.counter("rl:x") == (0, None)
    assert await bus.incr("rl:x", ttl=60) == 1
    assert await bus.incr("rl:x", ttl=60) == 2
    value, remaining = await bus.counter("rl:x")
    assert value == 2 and remaining is not None and 55 < remaining <= 60
    await bus.incr("rl:brief", ttl=0.3)
    await bus.incr("rl:brief", ttl=100)  # later counts do not extend the window
    await eventually(lambda: _counter_zero(bus, "rl:brief"), timeout=3)
    assert await bus.incr("rl:brief", ttl=60) == 1


async def _counter_zero(bus: Bus, key: str) -> bool:
    return (await bus.counter(key))[0] == 0


async def test_counters_are_atomic_under_concurrency(bus: Bus) -> None:
    results = await asyncio.gather(*(bus.incr("rl:many", ttl=60) for _ in range(50)))
    assert sorted(results) == list(range(1, 51))


async def test_ping_and_closed_bus(bus: Bus) -> None:
    await bus.ping()
    await bus.close()
    with pytest.raises(BusError):
        await bus.publish("x", {"n": 1})


# -- Redis engine only: outages -----------------------------------------------------------------


async def test_redis_subscription_survives_a_redis_restart() -> None:
    server = RedisServer()
    server.start()
    bus = await RedisBus.connect(server.url)
    try:
        sub = await bus.subscribe("show:r:events")
        await bus.publish("show:r:events", {"n": "before"})
        assert (await sub.get(timeout=2))["n"] == "before"

        server.stop()
        with pytest.raises(BusUnavailable):
            await bus.publish("show:r:events", {"n": "during"})
        with pytest.raises(BusUnavailable):
            await bus.ping()

        server.start()  # same port, empty data

        async def delivered() -> bool:
            # Publish until the listener has re-subscribed; then the message must arrive.
            try:
                await bus.publish("show:r:events", {"n": "after"})
            except BusUnavailable:
                return False
            try:
                return (await sub.get(timeout=0.2))["n"] == "after"
            except TimeoutError:
                return False

        await eventually(delivered, timeout=15, interval=0.1)
        await bus.ping()
        # The restarted Redis has none of the bus's scripts: they are loaded again on first use.
        assert await bus.group_put("g:r", "a", {"n": 1}, ttl=30, limit=2) == 1
        assert await bus.group_members(["g:r"]) == [{"a": {"n": 1}}]
        assert (await bus.append_once("chat:r", {"n": 1}, once="o:r", remember=60, maxlen=5))[
            1
        ] is False
    finally:
        await bus.close()
        server.close()


async def test_redis_writes_refused_for_want_of_replicas_are_an_outage(
    redis_server: RedisServer,
) -> None:
    # min-replicas-to-write (docs/operations.md, Redis Sentinel): a master without its replica
    # refuses writes; the bus says "unavailable", as clients retry then, and reads go on.
    redis_server.flush()
    bus = await RedisBus.connect(redis_server.url)
    admin = redis.Redis.from_url(redis_server.url)
    try:
        await bus.set("show:a", {"n": 1})
        await admin.config_set("min-replicas-to-write", 1)
        for write in (
            lambda: bus.set("show:b", {"n": 2}),
            lambda: bus.group_put("members:l", "a", {}, ttl=30),
            lambda: bus.append_once("chat:l", {"n": 1}, once="o:l", remember=60, maxlen=5),
            lambda: bus.incr("rl:x", ttl=60),
        ):
            with pytest.raises(BusUnavailable):
                await write()
        assert await bus.get("show:a") == {"n": 1}
    finally:
        await admin.config_set("min-replicas-to-write", 0)
        await admin.aclose()
        await bus.close()


async def test_redis_bus_waits_for_a_free_connection_instead_of_failing() -> None:
    # More commands at once than the pool has connections: they queue, none fails.
    server = RedisServer()
    server.start()
    bus = await RedisBus.connect(server.url)
    try:
        results = await asyncio.gather(*(bus.incr("rl:burst", ttl=60) for _ in range(300)))
        assert sorted(results) == list(range(1, 301))
    finally:
        await bus.close()
        server.close()


async def test_redis_bus_started_while_redis_is_down_works_once_it_is_up() -> None:
    server = RedisServer()
    bus = await RedisBus.connect(server.url)  # nothing listens yet
    try:
        with pytest.raises(BusUnavailable):
            await bus.ping()
        server.start()
        await eventually(lambda: _pings(bus), timeout=10, interval=0.1)
        sub = await bus.subscribe("x")
        await bus.publish("x", {"n": 1})
        assert (await sub.get(timeout=2))["n"] == 1
    finally:
        await bus.close()
        server.close()


async def _pings(bus: Bus) -> bool:
    try:
        await bus.ping()
    except BusUnavailable:
        return False
    return True


async def test_a_task_cancelled_in_the_middle_of_bus_calls_ends(bus: Bus) -> None:
    # Python 3.11's asyncio.wait_for (redis-py's socket timeout) dropped a cancellation that came
    # as a write finished: a quarter of these loops ran on after cancel(), as a seat's presence
    # refresh did after its viewer had gone.
    async def refresh(n: int) -> None:
        while True:
            await bus.group_put(f"members:{n % 5}", f"m{n}", {"n": n}, ttl=30)
            await bus.publish(f"lobby:{n % 5}", {"n": n})
            await asyncio.sleep(0)  # the in-process bus never waits: let the others run

    loops = [asyncio.create_task(refresh(n)) for n in range(100)]
    await asyncio.sleep(0.1)
    for loop in loops:
        loop.cancel()
        await asyncio.sleep(0)
    _, running = await asyncio.wait(loops, timeout=5)
    for loop in running:
        loop.cancel()
    assert not running, f"{len(running)} of {len(loops)} loops ran on after cancel()"


async def test_a_counter_counts_by_any_step_atomically(bus: Bus) -> None:
    assert await bus.incr("tries", ttl=60, by=1) == 1
    results = await asyncio.gather(*(bus.incr("tries", ttl=60) for _ in range(20)))
    assert sorted(results) == list(range(2, 22))  # every caller saw its own count
    assert await bus.incr("tries", ttl=60, by=-1) == 20
    count, remaining = await bus.counter("tries")
    assert count == 20 and remaining is not None and 0 < remaining <= 60


async def test_the_memory_bus_forgets_what_expired_even_if_never_read_again() -> None:
    """A closed lobby's chat, an old session, a vanished member: nobody reads them again, and the
    in-process engine drops them once they expire (Redis expires keys itself)."""
    bus = MemoryBus(sweep_interval=0.05)
    await bus.set("session:old", {"member": "m"}, ttl=0.05)
    await bus.append("chat:closed", {"text": "hei"}, maxlen=10, ttl=0.05)
    await bus.group_put("members:gone", "m", {"name": "Aino"}, ttl=0.05)
    await bus.set("show:kept", {"id": "kept"})
    assert bus.families() == {"session": 1, "chat": 1, "members": 1, "show": 1}
    await asyncio.sleep(0.1)
    await bus.set("show:other", {"id": "other"})  # any write sweeps, at most once an interval
    assert bus.families() == {"show": 2}
    await bus.close()
