"""The node's event relay: one subscription per channel however many follow it, routes by lobby
and role, reactions merged for viewers, a failing listener harming no one, the last out closing."""

from __future__ import annotations

from typing import Any

from rooms import events
from rooms.bus import Bus
from rooms.relay import VIEWER_REACTIONS_INTERVAL, EventRelay
from tests.helpers import eventually


class Inbox:
    """A listener that keeps what it gets."""

    def __init__(self, fail: bool = False) -> None:
        self.got: list[dict[str, Any]] = []
        self.texts: list[str] = []
        self.fail = fail

    def deliver(self, event: dict[str, Any], text: str) -> None:
        self.got.append(event)
        self.texts.append(text)
        if self.fail:
            raise RuntimeError("this listener is broken")

    def types(self) -> list[str]:
        return [e["type"] for e in self.got]


async def test_chat_goes_to_its_lobby_and_the_feed_on_one_subscription(bus: Bus) -> None:
    relay = EventRelay(bus)
    aili, bertta, feed = Inbox(), Inbox(), Inbox()
    stops = [
        await relay.follow_chat("s1", aili, "lobby-a"),
        await relay.follow_chat("s1", bertta, "lobby-b"),
        await relay.follow_chat("s1", feed),
    ]
    assert relay.following(events.show_chat_channel("s1")) == 3
    message = events.chat_message("lobby-a", "ABCDE", "1-0", {"text": "hei"})
    await bus.publish(events.show_chat_channel("s1"), message)
    await bus.publish(events.show_chat_channel("s1"), events.chat_deleted("lobby-b", "2-0"))
    await eventually(lambda: len(feed.got) == 2, 5)
    await eventually(lambda: len(aili.got) == 1 and len(bertta.got) == 1, 5)
    assert aili.got[0]["text"] == "hei" and bertta.types() == ["chat.deleted"]
    assert aili.texts[0] is feed.texts[0]  # encoded once for everyone
    for stop in stops:
        await stop()
    assert relay.following(events.show_chat_channel("s1")) == 0
    await relay.close()


async def test_reactions_at_once_to_performers_merged_to_viewers(bus: Bus) -> None:
    relay = EventRelay(bus)
    performer, viewer = Inbox(), Inbox()
    await relay.follow_show("s1", performer, performer=True)
    await relay.follow_show("s1", viewer, performer=False)
    channel = events.show_channel("s1")
    for node in ("a", "b", "c"):
        await bus.publish(
            channel, events.reactions("s1", node, {"applause": 2}, {"l": {"applause": 2}})
        )
    await bus.publish(channel, events.caption("s1", "Tervetuloa"))
    await eventually(lambda: performer.types().count("reactions") == 3, 5)
    await eventually(lambda: "caption" in viewer.types(), 5)
    await eventually(
        lambda: (
            sum(e["counts"].get("applause", 0) for e in viewer.got if e["type"] == "reactions") == 6
        ),
        5 + VIEWER_REACTIONS_INTERVAL,
    )
    # viewers get at most the first total at once and the rest merged, not one event per node
    assert viewer.types().count("reactions") <= 2
    await relay.close()


async def test_a_failing_listener_harms_no_other_and_the_last_out_unsubscribes(bus: Bus) -> None:
    relay = EventRelay(bus)
    broken, fine = Inbox(fail=True), Inbox()
    stop_broken = await relay.follow_lobby("l1", broken)
    stop_fine = await relay.follow_lobby("l1", fine)
    for n in range(3):
        await bus.publish(events.lobby_channel("l1"), events.lobby_members("l1", [{"n": n}]))
    await eventually(lambda: len(fine.got) == 3 and len(broken.got) == 3, 5)
    await stop_broken()
    await stop_broken()  # twice is harmless
    assert relay.following(events.lobby_channel("l1")) == 1
    await stop_fine()
    assert relay.following(events.lobby_channel("l1")) == 0
    # nothing follows the channel here any more: a new follower opens a fresh subscription
    again = Inbox()
    stop_again = await relay.follow_lobby("l1", again)
    await bus.publish(events.lobby_channel("l1"), events.member_removed("l1", "m1"))
    await eventually(lambda: again.types() == ["member.removed"], 5)
    assert fine.types() == ["lobby.members"] * 3
    await stop_again()
    await relay.close()
