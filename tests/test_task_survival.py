"""Long-lived tasks ride out a failing bus: they retry with growing pauses, log each run of failures
once, and do their work again as soon as the bus does (tests/test_outages.py has the real Redis).

The in-process bus here fails on demand (``FlakyBus``): with the bus away (``BusUnavailable``) and
with anything else (a ``RuntimeError``: a task must not end on an error nobody foresaw either).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from clients.client import Session
from lampio_stream.demo import run_demo
from media.stage import Stage
from rooms import events
from rooms.bus import BusUnavailable
from rooms.bus_memory import MemoryBus
from rooms.bus_redis import RedisBus
from rooms.reactions import ReactionTally, publish_totals
from rooms.relay import EventRelay
from rooms.shows import ShowState
from rooms.supervise import every, retrying
from rooms.voice import VoiceStates, announce_mic
from signaling.live import follow_publication
from signaling.ws import close_all
from tests.helpers import eventually
from tests.nodes import Node, serve
from tests.redis_server import RedisServer

FAILURES = [BusUnavailable("redis unavailable: test"), RuntimeError("a bug nobody foresaw")]


class FlakyBus(MemoryBus):
    """The in-process bus; while ``failure`` is set, every call raises it."""

    failure: Exception | None = None


def _flaky(name: str) -> Any:
    real = getattr(MemoryBus, name)

    async def call(self: FlakyBus, *args: Any, **kwargs: Any) -> Any:
        if self.failure is not None:
            raise self.failure
        return await real(self, *args, **kwargs)

    call.__name__ = name
    return call


for _name in (
    "publish",
    "subscribe",
    "append",
    "append_once",
    "read",
    "group_put",
    "group_remove",
    "group_members",
    "group_sizes",
    "set",
    "get",
    "delete",
    "keys",
    "incr",
    "counter",
    "ping",
):
    setattr(FlakyBus, _name, _flaky(_name))


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def logged(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


@pytest.fixture
async def flaky() -> AsyncIterator[FlakyBus]:
    bus = FlakyBus()
    yield bus
    bus.failure = None
    await bus.close()


# -- the helpers --------------------------------------------------------------------------------


async def test_a_run_of_failures_is_logged_once_and_its_end_once(
    logs: list[dict[str, Any]],
) -> None:
    tries = 0

    async def op() -> str:
        nonlocal tries
        tries += 1
        if tries <= 3:
            raise BusUnavailable("away")
        if tries <= 5:
            raise RuntimeError("a bug")
        return "done"

    assert await retrying(op, "thing.do", first=0.01, longest=0.02, show="s1") == "done"
    assert tries == 6
    failed = logged(logs, "thing.do_failed")
    # One line per kind of failure in the run: the bus away as a warning, the bug with its trace.
    assert [(e["log_level"], "exc_info" in e) for e in failed] == [
        ("warning", False),
        ("error", True),
    ]
    assert all(e["show"] == "s1" for e in failed)
    (back,) = logged(logs, "thing.do_back")
    assert back["failures"] == 5 and back["show"] == "s1"


async def test_a_fatal_error_is_not_retried() -> None:
    async def op() -> None:
        raise KeyError("gone")

    with pytest.raises(KeyError):
        await retrying(op, "thing.do", fatal=(KeyError,), first=0.01)


async def test_every_goes_on_after_failed_steps(logs: list[dict[str, Any]]) -> None:
    steps: list[str] = []

    async def step() -> None:
        steps.append("try")
        if len(steps) in (2, 3):
            raise FAILURES[len(steps) - 2]

    task = asyncio.get_running_loop().create_task(
        every(0.01, step, "thing.tick", now=True, first=0.01, longest=0.05)
    )
    try:
        await eventually(lambda: len(steps) >= 6, 5)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(logged(logs, "thing.tick_failed")) == 2
    assert len(logged(logs, "thing.tick_back")) == 1


# -- the node's tasks ---------------------------------------------------------------------------


@pytest.mark.parametrize("failure", FAILURES, ids=["bus_away", "anything"])
async def test_reaction_totals_go_out_again_after_any_failure(
    flaky: FlakyBus, failure: Exception, logs: list[dict[str, Any]]
) -> None:
    tally = ReactionTally()
    sub = await flaky.subscribe(events.show_channel("s1"))
    task = asyncio.get_running_loop().create_task(publish_totals(tally, flaky, "n1"))
    try:
        tally.add("s1", "l1", "applause")
        assert (await sub.get(timeout=2))["counts"] == {"applause": 1}
        flaky.failure = failure
        tally.add("s1", "l1", "applause")
        await eventually(lambda: logged(logs, "reactions.publish_failed"), 2)
        flaky.failure = None

        async def heard() -> bool:
            tally.add("s1", "l1", "bravo")
            try:
                return bool((await sub.get(timeout=0.2))["counts"].get("bravo"))
            except TimeoutError:
                return False

        await eventually(heard, 10, "totals published again")
        assert not task.done()
        assert len(logged(logs, "reactions.publish_failed")) == 1
        assert logged(logs, "reactions.publish_back")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("failure", FAILURES, ids=["bus_away", "anything"])
async def test_presence_and_the_audience_report_go_on_after_any_failure(
    flaky: FlakyBus,
    failure: Exception,
    logs: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("rooms.foyer.REFRESH_INTERVAL", 0.05)
    async with serve(flaky) as node:
        show = await node.create_show()
        studio = await Session.connect(node.url)
        viewers: list[Session] = []
        try:
            await studio.request("perform.host", show=show["id"], token=show["performer_token"])
            viewers.append(await seated(node, show["code"]))
            assert await figure(studio, 1)
            flaky.failure = failure
            await eventually(lambda: logged(logs, "presence.refresh_failed"), 5)
            await eventually(lambda: logged(logs, "audience.count_failed"), 5)
            flaky.failure = None
            viewers.append(await seated(node, show["code"]))
            assert await figure(studio, 2), "the performer's figure follows the audience again"
            await eventually(lambda: logged(logs, "presence.refresh_back"), 10)
            assert not [e for e in logs if e["event"] in ("ws.task_failed", "task.failed")]
        finally:
            for session in (*viewers, studio):
                await session.close()


async def seated(node: Node, code: str) -> Session:
    session = await Session.connect(node.url)
    await session.request("watch.join", code=code)
    return session


async def figure(studio: Session, viewers: int) -> bool:
    """Whether the studio is shown ``viewers`` (before long)."""
    while (await studio.next_event("audience", 10))["viewers"] != viewers:
        pass
    return True


async def test_a_show_moves_once_the_bus_is_back_and_the_latest_move_wins(
    flaky: FlakyBus, logs: list[dict[str, Any]]
) -> None:
    async with serve(flaky) as node:
        services = node.services
        show = await node.create_show()
        codecs = {"video": "video/H264", "audio": "audio/opus"}

        async def state() -> ShowState:
            return (await services.shows.get(show["id"])).state

        flaky.failure = BusUnavailable("away")
        # A performer's media connects while the bus is away: the show goes live once it is back.
        publication = await node.stage.publish_frames(
            show["id"], codecs, follow_publication(services)
        )
        await eventually(lambda: logged(logs, "show.move_failed"), 5)
        flaky.failure = None
        await eventually(lambda: services.lifecycle.latest == {}, 10, "the move done")
        assert await state() is ShowState.LIVE

        # Connected, then gone, both while the bus is away: paused it is, not live.
        flaky.failure = BusUnavailable("away")
        await node.stage.unpublish(publication)
        publication = await node.stage.publish_frames(
            show["id"], codecs, follow_publication(services)
        )
        await node.stage.unpublish(publication)
        flaky.failure = None
        await eventually(lambda: services.lifecycle.latest == {}, 10, "the move done")
        assert await state() is ShowState.PAUSED

        # A show whose record Redis lost is warned of, not retried for ever nor failed.
        await flaky.delete(f"show:{show['id']}")
        await node.stage.publish_frames(show["id"], codecs, follow_publication(services))
        await eventually(lambda: logged(logs, "show.move_lost"), 5)
        assert not logged(logs, "task.failed")


async def test_the_hall_follows_reactions_once_the_bus_lets_it(
    flaky: FlakyBus, logs: list[dict[str, Any]]
) -> None:
    relay = EventRelay(flaky)
    stage = Stage(relay=relay)
    channel = events.show_channel("s1")
    try:
        flaky.failure = RuntimeError("subscribe failed")
        stage.hall("s1")
        await eventually(lambda: logged(logs, "stage.hall_feed_failed"), 5)
        assert relay.following(channel) == 0
        flaky.failure = None
        await eventually(lambda: relay.following(channel) == 1, 10, "the hall follows the show")
        # A show that ends while its hall still waits for the bus ends at once.
        flaky.failure = RuntimeError("subscribe failed")
        stage.hall("s2")
        await asyncio.wait_for(stage.end("s2"), 2)
        flaky.failure = None
    finally:
        await stage.close()
        await relay.close()
    assert relay.following(channel) == 0


@dataclass
class Speaker:
    lobby_id: str | None
    key: str
    mic_on: bool
    lobby_told_on: bool


class NoSeats:
    def set_policy(self, show_id: str, policy: Any) -> list[Any]:
        return []

    def forget(self, show_id: str) -> None:
        pass


async def test_a_lobby_is_told_of_a_microphone_once_the_bus_takes_it(
    flaky: FlakyBus, logs: list[dict[str, Any]]
) -> None:
    sub = await flaky.subscribe(events.lobby_channel("l1"))
    speaker = Speaker("l1", "m1", mic_on=False, lobby_told_on=True)
    flaky.failure = BusUnavailable("away")
    with pytest.raises(BusUnavailable):
        await announce_mic(flaky, speaker, on=False)
    assert speaker.lobby_told_on, "a telling that failed is not taken for told"

    relay = EventRelay(flaky)
    states = VoiceStates(flaky, None, relay, NoSeats())  # type: ignore[arg-type]
    try:
        states.tell_lobbies([speaker])
        await eventually(lambda: logged(logs, "voice.mic_told_failed"), 5)
        flaky.failure = None
        told = await sub.get(timeout=5)
        assert (told["type"], told["member"], told["on"]) == ("voice.mic", "m1", False)
        assert not speaker.lobby_told_on
    finally:
        await states.close()
        await relay.close()


async def test_the_redis_listener_reconnects_after_any_error(
    redis_server: RedisServer, logs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_server.flush()
    bus = await RedisBus.connect(redis_server.url)
    try:
        sub = await bus.subscribe("x")
        dispatch = bus._dispatch
        broken = [True]

        def once_broken(raw: dict[str, Any]) -> None:
            if raw.get("type") == "message" and broken:
                broken.clear()
                raise RuntimeError("a bug in reading")
            dispatch(raw)

        monkeypatch.setattr(bus, "_dispatch", once_broken)
        await bus.publish("x", {"n": 1})  # lost with the broken read

        async def delivered() -> bool:
            await bus.publish("x", {"n": 2})
            try:
                return (await sub.get(timeout=0.2))["n"] == 2
            except TimeoutError:
                return False

        await eventually(delivered, 10, interval=0.1)
        assert logged(logs, "bus.listener_failed")
    finally:
        await bus.close()


async def test_the_demo_performer_comes_back_whatever_refused_it(
    flaky: FlakyBus, logs: list[dict[str, Any]]
) -> None:
    async with serve(flaky) as node:
        flaky.failure = BusUnavailable("away")
        demo = asyncio.get_running_loop().create_task(
            run_demo(node.services.shows, node.url, node.url)
        )
        try:
            await eventually(lambda: logged(logs, "demo.create_failed"), 5)
            flaky.failure = None
            await eventually(lambda: node.stage.live_count == 1, 20, "the demo is live")
            # Its connection closed while the bus is away: perform.start is refused for a while.
            flaky.failure = BusUnavailable("away")
            await close_all(node.services)
            await eventually(lambda: logged(logs, "demo.perform_failed"), 10)
            assert not demo.done()
            flaky.failure = None
            await eventually(lambda: logged(logs, "demo.perform_back"), 20, "the demo is back")
            assert node.stage.live_count == 1
        finally:
            flaky.failure = None
            demo.cancel()
            await asyncio.gather(demo, return_exceptions=True)
