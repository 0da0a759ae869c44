"""Lobbies and chat on the bus, both engines: seats, presence, codes, acks, dedupe, moderation."""

from __future__ import annotations

import asyncio

import pytest

from rooms.bus import Bus
from rooms.bus_redis import RedisBus
from rooms.chat import CHAT_MAX, Chat, ChatMuted, ChatTooLong
from rooms.errors import InvalidInput
from rooms.lobbies import Lobbies, LobbyFull, LobbyNotFound, Member, NameTaken, clean_name
from tests.helpers import eventually
from tests.redis_server import RedisServer


def member(n: int, name: str | None = None, **kw: object) -> Member:
    return Member(f"m{n}", name or f"Katsoja {n}", **kw)  # type: ignore[arg-type]


async def test_lobbies_fill_up_then_new_ones_open(bus: Bus) -> None:
    lobbies = Lobbies(bus, capacity=3)
    seats = [await lobbies.join("show1", member(n)) for n in range(7)]
    ids = [lobby.id for lobby in seats]
    assert ids[0] == ids[1] == ids[2] and ids[3] == ids[4] == ids[5] and ids[6] not in ids[:6]
    assert len({*ids}) == 3
    assert [await lobbies.occupancy(i) for i in dict.fromkeys(ids)] == [3, 3, 1]
    # another show's lobbies are its own
    other = await lobbies.join("show2", member(99))
    assert other.id not in ids


async def test_friends_join_by_code_full_lobby_says_so_and_last_one_closes_it(bus: Bus) -> None:
    lobbies = Lobbies(bus, capacity=2)
    first = await lobbies.join("s", member(1))
    assert len(first.code) == 5
    friend = await lobbies.join("s", member(2), code=first.code.lower())  # case forgiven
    assert friend.id == first.id
    with pytest.raises(LobbyFull):
        await lobbies.join("s", member(3), code=first.code)
    with pytest.raises(LobbyNotFound):
        await lobbies.join("s", member(3), code="ZZZZZ")
    assert not await lobbies.leave(first, "m1")
    assert await lobbies.leave(first, "m2")  # the last one leaves: the lobby closes
    assert await lobbies.lobbies("s") == []
    with pytest.raises(LobbyNotFound):
        await lobbies.by_code("s", first.code)


async def test_presence_expires_when_a_client_vanishes(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rooms.lobbies.PRESENCE_TTL", 0.3)
    lobbies = Lobbies(bus, capacity=2)
    lobby = await lobbies.join("s", member(1, "Aino"))
    assert [m.name for m in await lobbies.members(lobby.id)] == ["Aino"]

    async def gone() -> bool:
        return await lobbies.members(lobby.id) == []

    await eventually(gone, timeout=5)
    assert await lobbies.lobbies("s") == []  # and the empty lobby closed


async def test_joins_at_once_never_overfill_a_lobby(bus: Bus) -> None:
    lobbies = Lobbies(bus, capacity=3)
    seats = await asyncio.gather(*(lobbies.join("s", member(n)) for n in range(10)))
    ids = [lobby.id for lobby in seats]
    assert [await lobbies.occupancy(i) for i in set(ids)] == [ids.count(i) for i in set(ids)]
    # filled one by one: a burst of joins does not scatter people into lobbies of one
    assert sorted(ids.count(i) for i in set(ids)) == [1, 3, 3, 3]
    # friends racing for the last seats of one lobby: as many get in as there are seats
    friends = Lobbies(bus, capacity=3)
    first = await friends.join("f", member(100))
    joined = await asyncio.gather(
        *(friends.join("f", member(n), code=first.code) for n in range(101, 106)),
        return_exceptions=True,
    )
    assert sum(isinstance(j, LobbyFull) for j in joined) == 3
    assert await friends.occupancy(first.id) == 3


async def test_joins_from_two_nodes_at_once_fill_lobbies_one_by_one(
    bus: Bus, request: pytest.FixtureRequest
) -> None:
    """Two nodes (two connections to the same Redis, or one process's bus) seat 40 viewers in
    lobbies of 5 at once: 8 full lobbies, each viewer in one of them, in the one it was told."""
    other = bus
    if isinstance(bus, RedisBus):
        server: RedisServer = request.getfixturevalue("redis_server")
        other = await RedisBus.connect(server.url)
    try:
        nodes = [Lobbies(bus, capacity=5), Lobbies(other, capacity=5)]
        seats = await asyncio.gather(*(nodes[n % 2].join("s", member(n)) for n in range(40)))
        lobbies = await nodes[0].lobbies("s")
        assert len(lobbies) == 8 and {lobby.id for lobby in seats} == {lb.id for lb in lobbies}
        members = {lobby.id: await nodes[1].members(lobby.id) for lobby in lobbies}
        assert all(len(m) == 5 for m in members.values())
        told = {f"m{n}": lobby.id for n, lobby in enumerate(seats)}
        assert {m.id: lid for lid, ms in members.items() for m in ms} == told
    finally:
        if other is not bus:
            await other.close()


async def test_a_lobby_closed_as_empty_opens_again_when_its_member_comes_back(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection that stalled past its presence: its lobby was closed meanwhile; the next
    # refresh seats it again and lists the lobby (and its code) again.
    monkeypatch.setattr("rooms.lobbies.PRESENCE_TTL", 0.3)
    lobbies = Lobbies(bus, capacity=2)
    lobby = await lobbies.join("s", member(1, "Aino"))

    async def closed() -> bool:
        return await lobbies.lobbies("s") == []

    await eventually(closed, timeout=5)
    with pytest.raises(LobbyNotFound):
        await lobbies.by_code("s", lobby.code)
    monkeypatch.setattr("rooms.lobbies.PRESENCE_TTL", 30.0)
    await lobbies.refresh(lobby, member(1, "Aino"))
    assert await lobbies.lobbies("s") == [lobby]
    assert await lobbies.by_code("s", lobby.code) == lobby
    assert [m.name for m in await lobbies.members(lobby.id)] == ["Aino"]


async def test_care_home_screen_is_one_seat_with_a_head_count(bus: Bus) -> None:
    lobbies = Lobbies(bus, capacity=2)
    lobby = await lobbies.join("s", Member("tv", "Kotipihlaja", head_count=14, role="screen"))
    await lobbies.join("s", member(1))
    assert await lobbies.occupancy(lobby.id) == 2
    assert await lobbies.audience("s") == 15


def test_names_are_trimmed_and_bounded() -> None:
    assert clean_name("  Aino   Virtanen ") == "Aino Virtanen"
    with pytest.raises(InvalidInput):
        clean_name("x" * 41)


def test_names_are_visible_and_not_the_shows_own() -> None:
    # invisible and control characters go: a name of nothing but them is no name
    assert clean_name("\u200b\u2066\u200e") == ""
    assert clean_name("Ai\u200bno\x07") == "Aino"
    assert clean_name("\u202eonia") == "onia"  # no right-to-left override turning text around
    # nobody in the foyer passes for the performer or for the show itself
    with pytest.raises(NameTaken):
        clean_name("  tapiolan   KUORO ", performer="Tapiolan kuoro")
    with pytest.raises(NameTaken):
        clean_name("Esiintyjä")
    assert clean_name("Tapiolan kuoron ystävä", performer="Tapiolan kuoro")


async def test_one_members_client_ids_never_silence_anothers(bus: Bus) -> None:
    lobbies, chat = Lobbies(bus), Chat(bus)
    lobby = await lobbies.join("s", member(1, "Aino"))
    await lobbies.join("s", member(2, "Bertta"))
    first = await chat.post(lobby, member(1, "Aino"), "Hei!", "c1")
    other = await chat.post(lobby, member(2, "Bertta"), "Moi!", "c1")
    assert not other.duplicate and other.id != first.id
    assert [m["text"] for m in await chat.history(lobby)] == ["Hei!", "Moi!"]


async def test_chat_is_stored_acknowledged_resumable_and_deduplicated(bus: Bus) -> None:
    lobbies, chat = Lobbies(bus), Chat(bus)
    lobby = await lobbies.join("s", member(1, "Aino"))
    first = await chat.post(lobby, member(1, "Aino"), "Hyvää iltaa!", "c1")
    again = await chat.post(lobby, member(1, "Aino"), "Hyvää iltaa!", "c1")
    assert not first.duplicate and again.duplicate and again.id == first.id
    second = await chat.post(lobby, member(1, "Aino"), "<b>ei html</b>\x07", "c2")
    history = await chat.history(lobby)
    assert [m["text"] for m in history] == ["Hyvää iltaa!", "<b>ei html</b>"]
    assert [m["text"] for m in await chat.history(lobby, after=first.id)] == ["<b>ei html</b>"]
    assert await chat.history(lobby, after=second.id) == []


async def test_a_newcomer_sees_the_newest_chat_and_a_returner_pages_through_the_rest(
    bus: Bus,
) -> None:
    lobbies, chat = Lobbies(bus), Chat(bus)
    lobby = await lobbies.join("s", member(1, "Aino"))
    ids = [
        (await chat.post(lobby, member(1, "Aino"), f"viesti {n}", f"c{n}")).id for n in range(250)
    ]
    recent = await chat.recent(lobby)
    assert [m["text"] for m in recent] == [f"viesti {n}" for n in range(50, 250)]
    first, more = await chat.page(lobby)
    assert len(first) == 200 and more
    rest, more = await chat.page(lobby, first[-1]["id"])
    assert [m["id"] for m in first + rest] == ids and not more


async def test_chat_limits_and_moderation(bus: Bus) -> None:
    lobbies, chat = Lobbies(bus), Chat(bus)
    lobby = await lobbies.join("s", member(1))
    with pytest.raises(ChatTooLong):
        await chat.post(lobby, member(1), "x" * (CHAT_MAX + 1), "c1")
    with pytest.raises(InvalidInput):
        await chat.post(lobby, member(1), "   ", "c2")
    posted = await chat.post(lobby, member(1), "x" * CHAT_MAX, "c3")
    await chat.delete(lobby, posted.id)
    history = await chat.history(lobby)
    assert [h["type"] for h in history] == ["chat.deleted"]
    await chat.mute("s", "m1")
    with pytest.raises(ChatMuted):
        await chat.post(lobby, member(1), "hei", "c4")
    await chat.mute("s", "m1", muted=False)
    assert not (await chat.post(lobby, member(1), "hei", "c4")).duplicate


async def test_chat_events_are_published_once_on_the_shows_chat_channel(bus: Bus) -> None:
    # One publish per message: each node hands it to its members of the lobby and to the
    # performer's feed; the lobby's own channel carries members and voice, not chat.
    lobbies, chat = Lobbies(bus), Chat(bus)
    lobby = await lobbies.join("s", member(1))
    in_lobby = await bus.subscribe(f"lobby:{lobby.id}")
    feed = await bus.subscribe("showchat:s")
    posted = await chat.post(lobby, member(1), "Bravo!", "c1")
    event = await asyncio.wait_for(feed.get(), 2)
    assert event["type"] == "chat.message" and event["id"] == posted.id
    assert event["text"] == "Bravo!" and event["lobby"] == lobby.id
    await chat.delete(lobby, posted.id)
    deleted = await asyncio.wait_for(feed.get(), 2)
    assert deleted == {"type": "chat.deleted", "lobby": lobby.id, "id": posted.id}
    # Nor did the lobby's channel carry them: the first message on it is one published after.
    await bus.publish(f"lobby:{lobby.id}", {"type": "after"})
    assert await in_lobby.get(timeout=2) == {"type": "after"}
    for sub in (in_lobby, feed):
        await sub.close()
