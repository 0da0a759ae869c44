"""Care-home screens through the real server on both bus engines: staff keys, pairing a screen by
its code, the screen joining a show with its head count, and the staff phone's controls."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from clients.client import ProtocolError, Session
from rooms.screens import Screen
from signaling.screens import PAIR_FAILURES_ALLOWED, STAFF_KEY_FAILURES_ALLOWED
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY, Node

AUTH = {"Authorization": f"Bearer {ORGANISER_KEY}"}


async def api(
    node: Node, method: str, path: str, body: Any = None, key: str | None = ORGANISER_KEY
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.url + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def staff_key(node: Node, label: str = "Hoivakoti Kuusela") -> str:
    status, body = await api(node, "POST", "/api/staff-keys", {"label": label})
    assert status == 201, body
    assert body["label"] == label and len(body["key"]) >= 43
    return str(body["key"])


async def connect(node: Node) -> Session:
    return await Session.connect(node.url)


async def pair(
    node: Node, key: str, name: str = "Olohuone"
) -> tuple[Session, Session, str, dict[str, Any]]:
    """A screen with a fresh pairing code, and a phone that confirmed it."""
    screen = await connect(node)
    hello = await screen.request("screen.hello")
    assert hello["state"] == "pairing" and len(hello["code"]) == 6
    phone = await connect(node)
    await phone.request("remote.open", key=key)
    paired = await phone.request("screen.pair", code=hello["code_display"], name=name)
    return screen, phone, hello["token"], paired["screen"]


async def test_staff_keys_are_issued_listed_and_revoked(node: Node) -> None:
    key = await staff_key(node)
    status, listed = await api(node, "GET", "/api/staff-keys")
    assert status == 200
    [entry] = listed["staff_keys"]
    assert entry["label"] == "Hoivakoti Kuusela" and entry["screens"] == 0
    assert "key" not in entry and key not in str(listed)  # shown once, when issued

    # wrong organiser keys and bad input have their own codes
    assert (await api(node, "GET", "/api/staff-keys", key=None))[0] == 401
    status, body = await api(node, "GET", "/api/staff-keys", key="wrong")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await api(node, "POST", "/api/staff-keys", {"label": ""})
    assert (status, body["error"]["code"]) == (400, "invalid_input")
    status, body = await api(node, "POST", "/api/staff-keys", {"label": "x", "key": "mine"})
    assert (status, body["error"]["code"]) == (400, "invalid_input")

    screen, phone, _, _ = await pair(node, key)
    try:
        status, body = await api(node, "DELETE", f"/api/staff-keys/{entry['id']}")
        assert status == 200 and body == {"revoked": True, "screens_forgotten": 1}
        # the screen goes back to showing a pairing code; the key opens nothing any more
        assert (await screen.next_event("screen.unpaired"))["type"] == "screen.unpaired"
        with pytest.raises(ProtocolError) as refused:
            await phone.request("remote.open", key=key)
        assert refused.value.code == "forbidden"
        status, body = await api(node, "DELETE", f"/api/staff-keys/{entry['id']}")
        assert (status, body["error"]["code"]) == (404, "staff_key_not_found")
    finally:
        await screen.close()
        await phone.close()


async def test_pairing_a_screen_remembers_it_and_keeps_its_code_until_then(node: Node) -> None:
    key = await staff_key(node)
    screen = await connect(node)
    phone = await connect(node)
    try:
        hello = await screen.request("screen.hello")
        # a screen that reconnects before it is paired keeps showing the same code
        again = await screen.request("screen.hello", token=hello["token"])
        assert again["code"] == hello["code"] and again["state"] == "pairing"
        assert 590 <= again["expires_in"] <= 600

        with pytest.raises(ProtocolError) as no_key:
            await phone.request("screen.pair", code=hello["code"])
        assert no_key.value.code == "invalid_input"  # the remote is opened with a key first
        opened = await phone.request("remote.open", key=key)
        assert opened == {"staff": {"label": "Hoivakoti Kuusela"}, "screens": []}
        paired = await phone.request("screen.pair", code=hello["code"], name="Olohuone")
        assert paired["screen"]["name"] == "Olohuone" and paired["screen"]["head_count"] == 1
        await screen.next_event("screen.paired")

        # from now on the token opens the screen, on any connection
        later = await connect(node)
        welcome = await later.request("screen.hello", token=hello["token"])
        assert welcome["state"] == "paired" and welcome["screen"]["id"] == paired["screen"]["id"]
        assert welcome["show"] is None  # nothing in the programme yet
        await later.close()
        # the code was used once: it pairs nothing else
        with pytest.raises(ProtocolError) as used:
            await phone.request("screen.pair", code=hello["code"])
        assert used.value.code == "pairing_not_found"
    finally:
        await screen.close()
        await phone.close()


async def test_wrong_expired_and_guessed_codes(node: Node) -> None:
    key = await staff_key(node)
    screen = await connect(node)
    phone = await connect(node)
    try:
        with pytest.raises(ProtocolError) as bad_key:
            await phone.request("remote.open", key="not-a-key")
        assert bad_key.value.code == "forbidden"
        await phone.request("remote.open", key=key)

        node.screens.pairing_lifetime = 0.3
        hello = await screen.request("screen.hello")

        async def expired() -> bool:
            return await node.screens.pairing_of(hello["token"]) is None

        await eventually(expired, 5, interval=0.05)
        with pytest.raises(ProtocolError) as late:
            await phone.request("screen.pair", code=hello["code"])
        assert late.value.code == "pairing_expired"
        # an expired code's screen gets a new code when it asks again
        fresh = await screen.request("screen.hello", token=hello["token"])
        assert fresh["code"] != hello["code"] and fresh["token"] != hello["token"]

        with pytest.raises(ProtocolError) as short:
            await phone.request("screen.pair", code="12 34")
        assert short.value.code == "invalid_input"
        wrong = "000000" if fresh["code"] != "000000" else "111111"
        # one expired and one short before (the wrong staff key counts apart, see below)
        for _ in range(PAIR_FAILURES_ALLOWED - 2):
            with pytest.raises(ProtocolError) as guess:
                await phone.request("screen.pair", code=wrong)
            assert guess.value.code == "pairing_not_found"
        with pytest.raises(ProtocolError) as limited:
            await phone.request("screen.pair", code=fresh["code"])  # even the right one, now
        assert limited.value.code == "rate_limited" and limited.value.details["retry_after"] > 0
    finally:
        await screen.close()
        await phone.close()


async def test_wrong_codes_do_not_lock_the_care_home_out_of_its_remote(node: Node) -> None:
    """The phones of a care home share one address: a colleague's wrong codes limit pairing, not
    opening the remote; only wrong staff keys limit that."""
    key = await staff_key(node)
    typo = await connect(node)
    colleague = await connect(node)
    try:
        await typo.request("remote.open", key=key)
        for _ in range(PAIR_FAILURES_ALLOWED):
            with pytest.raises(ProtocolError) as guess:
                await typo.request("screen.pair", code="000000")
            assert guess.value.code == "pairing_not_found"
        with pytest.raises(ProtocolError) as limited:
            await typo.request("screen.pair", code="000000")
        assert limited.value.code == "rate_limited"
        # another phone of the same care home still opens its remote, with its screens
        opened = await colleague.request("remote.open", key=key)
        assert opened["staff"]["label"] == "Hoivakoti Kuusela"

        # wrong staff keys have a limit of their own, per address
        for _ in range(STAFF_KEY_FAILURES_ALLOWED):
            with pytest.raises(ProtocolError) as wrong:
                await typo.request("remote.open", key="not-a-key")
            assert wrong.value.code == "forbidden"
        with pytest.raises(ProtocolError) as locked:
            await colleague.request("remote.open", key=key)
        assert locked.value.code == "rate_limited" and locked.value.details["retry_after"] > 0
    finally:
        await typo.close()
        await colleague.close()


async def test_a_malformed_status_is_refused_as_invalid_input(node: Node) -> None:
    key = await staff_key(node)
    screen, phone, token, _ = await pair(node, key)
    try:
        await screen.next_event("screen.paired")
        await screen.request("screen.hello", token=token)
        for bad in [
            {"state": "live", "sound": []},
            {"state": "live", "sound": {}},
            {"state": "live", "sound": 1},
            {"state": "nope"},
            {"state": "live", "show": ["x"]},
            {"state": "live", "show": {}},
        ]:
            with pytest.raises(ProtocolError) as refused:
                await screen.request("screen.status", **bad)
            assert refused.value.code == "invalid_input", bad
        # the same connection carries on
        reply = await screen.request("screen.status", state="waiting", sound="off", show=None)
        assert reply["show"] is None
    finally:
        await screen.close()
        await phone.close()


async def test_a_key_revoked_while_it_pairs_leaves_no_screen_behind(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The organiser revokes the key just as staff confirm a code: the revocation scans for the
    key's screens before the pairing saves its screen; the pairing must see that and undo itself."""
    key = await staff_key(node)
    screens = node.screens
    [entry] = await screens.staff_keys()
    save = screens._save
    revoked: list[Screen] = []

    async def revoke_then_save(screen: Screen, token_digest: str) -> None:
        if not revoked:
            revoked.append(screen)
            assert await screens.revoke_key(entry.id) == []  # nothing to forget yet
        await save(screen, token_digest)

    monkeypatch.setattr(screens, "_save", revoke_then_save)
    screen = await connect(node)
    phone = await connect(node)
    try:
        hello = await screen.request("screen.hello")
        await phone.request("remote.open", key=key)
        with pytest.raises(ProtocolError) as refused:
            await phone.request("screen.pair", code=hello["code"])
        assert refused.value.code == "forbidden"
        assert revoked and await screens.of_staff(entry.id) == []
        assert await screens.by_token(hello["token"]) is None
        # the TV is told, and shows a new code
        await screen.next_event("screen.unpaired")
        again = await screen.request("screen.hello", token=hello["token"])
        assert again["state"] == "pairing" and again["code"] != hello["code"]
    finally:
        await screen.close()
        await phone.close()


async def test_screen_watches_with_its_head_count_and_obeys_the_phone(node: Node) -> None:
    key = await staff_key(node)
    show = await node.create_show("Yhteislaulu")
    performer = await connect(node)
    await performer.request("perform.host", show=show["id"], token=show["performer_token"])
    screen, phone, token, paired = await pair(node, key)
    try:
        await screen.next_event("screen.paired")
        welcome = await screen.request("screen.hello", token=token)
        assert welcome["show"]["id"] == show["id"]  # the programme's next show, by itself

        await phone.request("remote.control", screen=paired["id"], head_count=12, volume=60)
        control = await screen.next_event("screen.control")
        assert control["screen"]["head_count"] == 12 and control["screen"]["volume"] == 60
        # the room's camera is off until staff turn it on, and says so to the screen
        assert control["screen"]["camera"] == "off"
        await phone.request("remote.control", screen=paired["id"], camera="performer")
        assert (await screen.next_event("screen.control"))["screen"]["camera"] == "performer"
        await phone.request("remote.control", screen=paired["id"], camera="off")
        assert (await screen.next_event("screen.control"))["screen"]["camera"] == "off"
        joined = await screen.request(
            "watch.join", code=show["code"], head_count=12, screen=True, name="Olohuone"
        )
        assert joined["me"]["role"] == "screen" and joined["me"]["head_count"] == 12

        async def audience() -> bool:
            event = await performer.next_event("audience")
            return bool(event["viewers"] == 12)

        await eventually(audience, 10)

        # staff count two more residents: the seat takes the new head count in place
        await phone.request("remote.control", screen=paired["id"], head_count=14)
        await screen.next_event("screen.control")
        recounted = await screen.request("watch.heads")
        assert recounted["me"] == {**joined["me"], "head_count": 14}

        async def fourteen() -> bool:
            event = await performer.next_event("audience")
            return bool(event["viewers"] == 14)

        await eventually(fourteen, 10)
        # a viewer cannot claim a room
        viewer = await connect(node)
        await viewer.request("watch.join", code=show["code"], name="Aili")
        with pytest.raises(ProtocolError) as claimed:
            await viewer.request("watch.heads")
        assert claimed.value.code == "forbidden"
        await viewer.close()

        # the screen tells what it does; the phone sees it
        reply = await screen.request("screen.status", state="scheduled", show=show["id"])
        assert reply["show"]["id"] == show["id"]
        status = await phone.next_event("screen.status")
        assert status["status"]["state"] == "scheduled"
        assert status["status"]["title"] == "Yhteislaulu"

        # a reaction for the room reaches the screen, which sends it as its own
        await phone.request("remote.react", screen=paired["id"], kind="applause")
        assert (await screen.next_event("screen.react"))["kind"] == "applause"
        await screen.request("react", kind="applause")

        async def applause() -> bool:
            event = await performer.next_event("reactions")
            return bool(event["counts"].get("applause"))

        await eventually(applause, 10)

        # choosing a show: only open shows; null goes back to the programme
        await phone.request("remote.control", screen=paired["id"], show=show["id"])
        assert (await screen.next_event("screen.control"))["screen"]["show"] == show["id"]
        for bad, code in [
            ({"show": "nope"}, "show_not_found"),
            ({"head_count": 0}, "invalid_input"),
            ({"head_count": 201}, "invalid_input"),
            ({"volume": 101}, "invalid_input"),
            ({"camera": "always"}, "invalid_input"),
            ({}, "invalid_input"),
        ]:
            with pytest.raises(ProtocolError) as refused:
                await phone.request("remote.control", screen=paired["id"], **bad)
            assert refused.value.code == code, bad
        with pytest.raises(ProtocolError) as other:
            await phone.request("remote.control", screen="someone-elses", volume=5)
        assert other.value.code == "screen_not_found"

        # another care home's key does not reach this screen
        stranger = await connect(node)
        await stranger.request("remote.open", key=await staff_key(node, "Palvelutalo Koivu"))
        with pytest.raises(ProtocolError) as theirs:
            await stranger.request("remote.react", screen=paired["id"], kind="heart")
        assert theirs.value.code == "screen_not_found"
        await stranger.close()

        # forgetting the screen sends it back to pairing
        await phone.request("remote.forget", screen=paired["id"])
        await screen.next_event("screen.unpaired")
        again = await screen.request("screen.hello", token=token)
        assert again["state"] == "pairing"
    finally:
        for session in (screen, phone, performer):
            await session.close()


async def test_organiser_creates_a_show_with_performer_and_lists_it_with_links(
    node: Node,
) -> None:
    status, show = await api(
        node,
        "POST",
        "/api/shows",
        {"title": "Runoilta", "description": "Lauluja ja runoja", "performer": "Aino Laulaja"},
    )
    assert status == 201 and show["performer"] == "Aino Laulaja"
    status, listed = await api(node, "GET", "/api/shows")
    assert listed["shows"][0]["performer_url"] == show["performer_url"]
    status, public = await api(node, "GET", "/api/shows", key=None)
    assert public["shows"][0]["performer"] == "Aino Laulaja"
    assert "performer_url" not in public["shows"][0]
    status, body = await api(node, "GET", "/api/shows", key="wrong")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await api(node, "POST", "/api/shows", {"title": "x", "performer": 5})
    assert (status, body["error"]["code"]) == (400, "invalid_input")


async def test_staff_give_a_screen_a_ticket_for_a_ticketed_show(node: Node) -> None:
    key = await staff_key(node)
    status, show = await api(
        node, "POST", "/api/shows", {"title": "Lippukonsertti", "access": "ticket"}
    )
    assert status == 201
    status, minted = await api(
        node, "POST", f"/api/shows/{show['id']}/tickets", {"count": 1, "head_count": 9}
    )
    ticket = minted["tickets"][0]["code_display"]
    screen, phone, token, paired = await pair(node, key)
    try:
        await screen.next_event("screen.paired")
        with pytest.raises(ProtocolError) as wrong:
            await phone.request("remote.control", screen=paired["id"], ticket="1234 5678 9012 3456")
        assert wrong.value.code == "show_not_found"
        reply = await phone.request("remote.control", screen=paired["id"], ticket=ticket)
        assert reply["screen"]["show"] == show["id"]  # the ticket's show, chosen with it
        control = (await screen.next_event("screen.control"))["screen"]
        welcome = await screen.request("screen.hello", token=token)
        assert welcome["show"]["id"] == show["id"] and welcome["show"]["access"] == "ticket"
        with pytest.raises(ProtocolError) as refused:
            await screen.request("watch.join", code=show["code"], screen=True, head_count=1)
        assert refused.value.code == "ticket_required"
        joined = await screen.request(
            "watch.join", code=control["ticket"], screen=True, head_count=1
        )
        assert joined["show"]["id"] == show["id"] and joined["me"]["head_count"] == 9
        cleared = await phone.request("remote.control", screen=paired["id"], ticket=None)
        assert cleared["screen"]["ticket"] is None
        # the organiser calls the show off: the screen that chose it is told
        status, _ = await api(node, "POST", f"/api/shows/{show['id']}/cancel")
        assert status == 200
        told = await screen.next_event("show.state")
        assert (told["state"], told.get("cancelled")) == ("ended", True)
    finally:
        for session in (screen, phone):
            await session.close()
