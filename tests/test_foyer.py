"""The foyer through the real server on both bus engines: lobbies of viewers (Python client), chat
that stays in its lobby and survives reconnects, limits, and the performer's moderation."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clients.client import ProtocolError, Session, Watcher
from rooms.bus import Bus
from rooms.bus_redis import RedisBus
from tests.helpers import eventually
from tests.nodes import Node, serve
from tests.redis_server import RedisServer


@pytest.fixture
async def node(bus: Bus) -> AsyncIterator[Node]:
    async with serve(bus, lobby_size=2) as running:
        yield running


async def join(node: Node, code: str, name: str, **extra: Any) -> tuple[Session, dict[str, Any]]:
    session = await Session.connect(node.url)
    try:
        joined = await session.request("watch.join", code=code, name=name, **extra)
    except BaseException:
        await session.close()
        raise
    return session, joined


async def next_chat(session: Session, timeout: float = 5) -> dict[str, Any]:
    return await session.next_event("chat.message", timeout)


async def no_chat_before(session: Session, lobby_mate: Session) -> None:
    """No chat reaches ``session`` before the message its lobby-mate posts now: every node hands
    chat on in the order it was posted, so anything sent earlier would have come first."""
    marker = await lobby_mate.request("chat.send", text="merkki", client_id="marker")
    assert (await next_chat(session))["id"] == marker["id"]


async def test_lobbies_chat_stays_in_its_lobby_and_reaches_the_performer(node: Node) -> None:
    show = await node.create_show()
    performer = await Session.connect(node.url)
    await performer.request("perform.host", show=show["id"], token=show["performer_token"])
    seats = [await join(node, show["code"], f"Katsoja {n}") for n in range(6)]
    try:
        lobbies = [joined["lobby"]["id"] for _, joined in seats]
        assert len(set(lobbies)) == 3 and lobbies[0] == lobbies[1] != lobbies[2] == lobbies[3]
        (a, _), (b, joined_b), (c, _), (d, _) = seats[:4]
        assert {m["name"] for m in joined_b["members"]} == {"Katsoja 0", "Katsoja 1"}
        ack = await a.request("chat.send", text="Hyvää iltaa <b>kaikki</b>", client_id="a-1")
        assert ack["id"] and ack["duplicate"] is False
        heard = await next_chat(b)
        assert heard["text"] == "Hyvää iltaa <b>kaikki</b>" and heard["name"] == "Katsoja 0"
        assert heard["id"] == ack["id"]
        await no_chat_before(c, d)  # another lobby hears nothing
        feed = await next_chat(performer)  # the performer's feed has every lobby
        assert feed["id"] == ack["id"] and feed["lobby"] == lobbies[0]
    finally:
        for session, _ in seats:
            await session.close()
        await performer.close()


async def test_acked_chat_survives_reconnect_and_duplicates_are_dropped(node: Node) -> None:
    show = await node.create_show()
    a, joined_a = await join(node, show["code"], "Aino")
    b, _ = await join(node, show["code"], "Eino")
    try:
        first = await a.request("chat.send", text="yksi", client_id="m-1")
        seen = first["id"]
        await b.close()  # Eino's tablet loses its connection
        second = await a.request("chat.send", text="kaksi", client_id="m-2")
        repeat = await a.request("chat.send", text="kaksi", client_id="m-2")  # resent after a cut
        assert repeat["duplicate"] is True and repeat["id"] == second["id"]
        b, rejoined = await join(
            node, show["code"], "Eino", lobby=joined_a["lobby"]["code"], session="none"
        )
        history = await b.request("chat.history", after=seen)
        assert [m["text"] for m in history["messages"]] == ["kaksi"]
        assert [m["text"] for m in rejoined["chat"]] == ["yksi", "kaksi"]
    finally:
        await a.close()
        await b.close()


async def test_a_watcher_coming_back_gets_an_older_message_it_never_heard(node: Node) -> None:
    """Two messages said at once may be heard in either order; a node that dies between them
    takes the older one with it. Coming back, the watcher still gets it, and nothing twice."""
    show = await node.create_show()
    aino, _ = await join(node, show["code"], "Aino")
    eino = Watcher(await Session.connect(node.url, resume=True))
    try:
        await eino.join(show["code"], name="Eino")
        older = await aino.request("chat.send", text="ensin", client_id="m-1")
        newer = await aino.request("chat.send", text="sitten", client_id="m-2")
        await eventually(lambda: newer["id"] in eino.chat, 5, "Eino hears both")
        del eino.chat[older["id"]]  # as if its delivery died with the node, the newer one heard
        await eino.session.link.ws.close(code=1011)  # the connection is lost
        await eventually(lambda: eino.session.reconnects == 1, 10, "Eino is back")
        assert set(eino.chat) == {older["id"], newer["id"]}  # a dict by id: nothing twice
    finally:
        await aino.close()
        await eino.session.close()


async def test_chat_limits_give_their_codes_and_disturb_nothing(node: Node) -> None:
    show = await node.create_show()
    a, _ = await join(node, show["code"], "Aino")
    b, _ = await join(node, show["code"], "Eino")
    try:
        with pytest.raises(ProtocolError) as caught:
            await a.request("chat.send", text="x" * 501, client_id="long")
        assert caught.value.code == "chat_too_long"
        with pytest.raises(ProtocolError) as caught:
            await a.request("chat.send", text="   ", client_id="empty")
        assert caught.value.code == "invalid_input"
        codes = []
        for n in range(8):
            try:
                await a.request("chat.send", text=f"viesti {n}", client_id=f"burst-{n}")
                codes.append("ok")
            except ProtocolError as exc:
                codes.append(exc.code)
        assert codes[:5] == ["ok"] * 5 and "rate_limited" in codes[5:]
        # Eino is not affected by Aino's limit
        assert (await b.request("chat.send", text="minä saan", client_id="e-1"))["id"]
    finally:
        await a.close()
        await b.close()


async def test_friends_lobby_full_and_moderation(node: Node) -> None:
    show = await node.create_show()
    performer = await Session.connect(node.url)
    a, joined = await join(node, show["code"], "Aino")
    b, joined_b = await join(node, show["code"], "Eino", lobby=joined["lobby"]["code"])
    sessions = [a, b, performer]
    try:
        assert joined_b["lobby"]["id"] == joined["lobby"]["id"]
        with pytest.raises(ProtocolError) as caught:
            await join(node, show["code"], "Kolmas", lobby=joined["lobby"]["code"])
        assert caught.value.code == "lobby_full"
        # only the performer (or a host) moderates
        with pytest.raises(ProtocolError) as caught:
            await a.request("chat.mute", member=joined_b["me"]["id"])
        assert caught.value.code == "forbidden"
        await performer.request("perform.host", show=show["id"], token=show["performer_token"])
        lobby, eino = joined["lobby"]["id"], joined_b["me"]["id"]

        posted = await b.request("chat.send", text="häiriö", client_id="b-1")
        await next_chat(a)
        await performer.request("chat.delete", lobby=lobby, message=posted["id"])
        assert (await a.next_event("chat.deleted", 2))["id"] == posted["id"]
        history = (await a.request("chat.history"))["messages"]
        assert all(m.get("text") != "häiriö" for m in history)

        await performer.request("chat.mute", member=eino)
        with pytest.raises(ProtocolError) as caught:
            await b.request("chat.send", text="vielä", client_id="b-2")
        assert caught.value.code == "chat_muted"

        await performer.request("viewer.remove", lobby=lobby, member=eino)
        removed = await b.next_event("member.removed", 2)
        assert removed["member"] == eino
        closed = await b.next_event("closed", 5)
        assert closed["code"] == 4003
        # Aino carries on
        assert (await a.request("chat.send", text="jatketaan", client_id="a-9"))["id"]
    finally:
        for session in sessions:
            await session.close()


async def test_guessing_friends_codes_is_limited_per_address_apart_from_show_codes(
    node: Node,
) -> None:
    """Someone with the show's code guessing friends' codes to sit in strangers' lobbies (and read
    their chat) gets five wrong answers, then ``rate_limited`` even for the right code; the show's
    code still seats them in a lobby of their own, and other addresses are not affected."""
    show = await node.create_show()
    aino, joined = await join(node, show["code"], "Aino")
    friends_code = joined["lobby"]["code"]
    guesser = await Session.connect(node.url, local_address="127.0.0.7")
    sessions = [aino, guesser]
    try:
        wrong = "22222" if friends_code != "22222" else "33333"
        answers = []
        for _ in range(6):
            with pytest.raises(ProtocolError) as caught:
                await guesser.request("watch.join", code=show["code"], lobby=wrong)
            answers.append(caught.value.code)
        assert answers == ["lobby_not_found"] * 5 + ["rate_limited"]
        with pytest.raises(ProtocolError) as caught:
            await guesser.request("watch.join", code=show["code"], lobby=friends_code)
        assert caught.value.code == "rate_limited"
        friend = await Session.connect(node.url, local_address="127.0.0.8")
        sessions.append(friend)
        seated = await friend.request("watch.join", code=show["code"], lobby=friends_code)
        assert seated["lobby"]["id"] == joined["lobby"]["id"]
        # show codes have their own bucket: the guesser is seated wherever there is room
        assert (await guesser.request("watch.join", code=show["code"]))["me"]["id"]
    finally:
        for session in sessions:
            await session.close()


async def test_reactions_are_totalled_and_reach_the_performer_and_lobbies(node: Node) -> None:
    show = await node.create_show()
    performer = await Session.connect(node.url)
    await performer.request("perform.host", show=show["id"], token=show["performer_token"])
    seats = [await join(node, show["code"], f"K{n}") for n in range(3)]
    try:
        (a, ja), (b, _), (c, jc) = seats
        for _ in range(3):
            await a.request("react", kind="applause")
        await b.request("react", kind="applause")
        await c.request("react", kind="bravo")
        totals: dict[str, int] = {}
        per_lobby: dict[str, dict[str, int]] = {}
        while totals != {"applause": 4, "bravo": 1}:
            event = await performer.next_event("reactions", 5)
            for kind, n in event["counts"].items():
                totals[kind] = totals.get(kind, 0) + n
            for lobby, kinds in event["lobbies"].items():
                for kind, n in kinds.items():
                    per_lobby.setdefault(lobby, {})
                    per_lobby[lobby][kind] = per_lobby[lobby].get(kind, 0) + n
        assert per_lobby[ja["lobby"]["id"]] == {"applause": 4}
        assert per_lobby[jc["lobby"]["id"]] == {"bravo": 1}
        seen_by_c = await c.next_event("reactions", 5)  # lobbies see the whole audience too
        assert seen_by_c["show"] == show["id"]

        with pytest.raises(ProtocolError) as caught:
            await a.request("react", kind="tomato")
        assert caught.value.code == "invalid_input"
        results = []
        for _ in range(12):
            try:
                await b.request("react", kind="heart")
                results.append("ok")
            except ProtocolError as exc:
                results.append(exc.code)
        assert results.count("ok") <= 10 and "rate_limited" in results
    finally:
        for session, _ in seats:
            await session.close()
        await performer.close()


async def test_a_viewer_without_a_name_can_choose_one_later(node: Node) -> None:
    show = await node.create_show()
    a, joined = await join(node, show["code"], "")
    b, _ = await join(node, show["code"], "Eino", lobby=joined["lobby"]["code"])
    try:
        assert joined["me"]["name"] == ""
        renamed = await a.request("member.rename", name="  Aino  ")
        assert renamed["me"]["name"] == "Aino"
        event = await b.next_event("lobby.members", 5)
        while "Aino" not in {m["name"] for m in event["members"]}:
            event = await b.next_event("lobby.members", 5)
        with pytest.raises(ProtocolError) as caught:
            await a.request("member.rename", name="x" * 41)
        assert caught.value.code == "invalid_input"
    finally:
        await a.close()
        await b.close()


async def test_a_lobby_spans_two_nodes_on_one_redis(redis_server: RedisServer) -> None:
    # Each node has its own bus connection; a lobby's chat and member list cross between them,
    # and the performer on one node sees chat posted on the other.
    redis_server.flush()
    async with contextlib.AsyncExitStack() as stack:
        nodes: list[Node] = []
        for _ in range(2):
            bus = await RedisBus.connect(redis_server.url)
            stack.push_async_callback(bus.close)
            nodes.append(await stack.enter_async_context(serve(bus, lobby_size=3)))
        one, two = nodes

        async def seated(node: Node, name: str, **extra: Any) -> tuple[Session, dict[str, Any]]:
            session, joined = await join(node, show["code"], name, **extra)
            stack.push_async_callback(session.close)
            return session, joined

        show = await one.create_show()
        performer = await Session.connect(one.url)
        stack.push_async_callback(performer.close)
        await performer.request("perform.host", show=show["id"], token=show["performer_token"])
        a, joined = await seated(one, "Aino")
        b, joined_b = await seated(two, "Eino", lobby=joined["lobby"]["code"])
        assert joined_b["lobby"]["id"] == joined["lobby"]["id"]
        assert {m["name"] for m in joined_b["members"]} == {"Aino", "Eino"}
        ack = await b.request("chat.send", text="Terveisiä toiselta", client_id="b-1")
        assert (await next_chat(a))["id"] == ack["id"]
        assert (await next_chat(performer))["id"] == ack["id"]
        _, joined_c = await seated(two, "Into")  # the lobby on node one has a seat
        assert joined_c["lobby"]["id"] == joined["lobby"]["id"]
        with pytest.raises(ProtocolError) as full:
            await join(one, show["code"], "Outi", lobby=joined["lobby"]["code"])
        assert full.value.code == "lobby_full"


async def test_a_late_goodbye_of_the_old_connection_keeps_the_seat(node: Node) -> None:
    """After a network cut the viewer is back on a new connection before the server notices the old
    one has gone; the old one's goodbye must not empty the seat (or close the lobby)."""
    show = await node.create_show()
    old, joined = await join(node, show["code"], "Aino")
    host = await Session.connect(node.url)
    try:
        back, rejoined = await join(
            node,
            show["code"],
            "Aino",
            lobby=joined["lobby"]["code"],
            session=joined["session"],
        )
        assert rejoined["me"]["id"] == joined["me"]["id"]  # the same member, a new connection
        assert rejoined["session"] == joined["session"]  # one session a member, not one a join
        await old.close()  # now the server notices the old connection going
        await host.request("perform.host", show=show["id"], token=show["performer_token"])
        lobbies = node.lobbies
        await eventually(lambda: _audience_is(host, 1), 5)
        members = await lobbies.members(joined["lobby"]["id"])
        assert [m.id for m in members] == [joined["me"]["id"]]
        assert [lobby.id for lobby in await lobbies.lobbies(show["id"])] == [joined["lobby"]["id"]]
        await back.close()
    finally:
        await host.close()


async def _audience_is(host: Session, count: int) -> bool:
    event = await host.next_event("audience")
    return bool(event["viewers"] == count)
