"""A programme of several organisers over real HTTP, on both bus engines: the admin creates and
revokes organisers; each organiser manages only its own shows; shows are edited, rescheduled and
cancelled (everyone who joined hears so), filtered, and unlisted."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from icalendar import Calendar
from PIL import Image

from clients.client import ProtocolError, Session
from rooms.bus import Bus
from tests.nodes import ORGANISER_KEY, Node, error_of, serve

ADMIN_KEY = "test-admin-key-for-the-programme"


@pytest.fixture
async def node(bus: Bus) -> AsyncIterator[Node]:
    async with serve(bus, admin_key=ADMIN_KEY, default_city="Turku") as running:
        yield running


@pytest.fixture
async def http(node: Node) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(node.url) as session:
        yield session


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_organiser(http: aiohttp.ClientSession, name: str, city: str) -> dict[str, Any]:
    response = await http.post(
        "/api/organisers", json={"name": name, "city": city}, headers=bearer(ADMIN_KEY)
    )
    assert response.status == 201, await response.text()
    return await response.json()  # type: ignore[no-any-return]


async def new_show(http: aiohttp.ClientSession, key: str, **body: Any) -> dict[str, Any]:
    response = await http.post(
        "/api/shows", json={"title": "Konsertti", **body}, headers=bearer(key)
    )
    assert response.status == 201, await response.text()
    return await response.json()  # type: ignore[no-any-return]


async def titles(http: aiohttp.ClientSession, query: str = "", key: str | None = None) -> list[str]:
    response = await http.get(f"/api/shows{query}", headers=bearer(key) if key else None)
    assert response.status == 200, await response.text()
    return [s["title"] for s in (await response.json())["shows"]]


async def test_the_admin_creates_organisers_who_each_manage_only_their_own_shows(
    http: aiohttp.ClientSession,
) -> None:
    oulu = await new_organiser(http, "Oulun kaupunki", "Oulu")
    tampere = await new_organiser(http, "Tampere-talo", "Tampere")
    assert len(oulu["key"]) >= 43 and oulu["key"] != tampere["key"]
    listed = await (await http.get("/api/organisers", headers=bearer(ADMIN_KEY))).json()
    assert [o["name"] for o in listed["organisers"]] == ["Turku", "Oulun kaupunki", "Tampere-talo"]
    assert oulu["key"] not in str(listed)  # shown once, never again
    # only the admin creates or lists organisers
    for key in (oulu["key"], ORGANISER_KEY):
        response = await http.post(
            "/api/organisers", json={"name": "x", "city": "y"}, headers=bearer(key)
        )
        assert await error_of(response) == (403, "forbidden")
        assert await error_of(await http.get("/api/organisers", headers=bearer(key))) == (
            403,
            "forbidden",
        )

    mine = await new_show(http, oulu["key"], title="Oulun laulut", listed=False)
    assert (mine["city"], mine["listed"]) == ("Oulu", False)
    theirs = await new_show(http, tampere["key"], title="Tampereen tanssit")
    legacy = await new_show(http, ORGANISER_KEY, title="Turun tuokio")
    assert legacy["city"] == "Turku"  # the node's own key: an organiser of its default city

    assert await titles(http, key=oulu["key"]) == ["Oulun laulut"]  # its own, unlisted too
    assert sorted(await titles(http, key=ADMIN_KEY)) == [
        "Oulun laulut",
        "Tampereen tanssit",
        "Turun tuokio",
    ]
    assert sorted(await titles(http)) == ["Tampereen tanssit", "Turun tuokio"]  # the public

    # another organiser's show is none of this one's: not found, not changed
    url = f"/api/shows/{theirs['id']}"
    assert await error_of(await http.get(url, headers=bearer(oulu["key"]))) == (
        404,
        "show_not_found",
    )
    patch = await http.patch(url, json={"title": "Vallattu"}, headers=bearer(oulu["key"]))
    assert await error_of(patch) == (404, "show_not_found")
    cancel = await http.post(f"{url}/cancel", headers=bearer(oulu["key"]))
    assert await error_of(cancel) == (404, "show_not_found")
    # the admin may; a performer token may read its show but not edit it
    edited = await http.patch(url, json={"title": "Tanssit"}, headers=bearer(ADMIN_KEY))
    assert edited.status == 200 and (await edited.json())["title"] == "Tanssit"
    performer = bearer(theirs["performer_token"])
    assert (await http.get(url, headers=performer)).status == 200
    refused = await http.patch(url, json={"title": "Oma"}, headers=performer)
    assert await error_of(refused) == (403, "forbidden")
    # an organiser cannot put its show under another organiser
    stolen = await http.post(
        "/api/shows", json={"title": "x", "organiser": tampere["id"]}, headers=bearer(oulu["key"])
    )
    assert await error_of(stolen) == (400, "invalid_input")
    by_admin = await new_show(http, ADMIN_KEY, title="Tampereelle", organiser=tampere["id"])
    assert by_admin["city"] == "Tampere"
    assert "Tampereelle" in await titles(http, key=tampere["key"])


async def test_a_revoked_organiser_is_refused_at_once_and_its_shows_stay(
    http: aiohttp.ClientSession,
) -> None:
    jkl = await new_organiser(http, "Jyväskylän kaupunki", "Jyväskylä")
    await new_show(http, jkl["key"], title="Jyväskylän jazz")
    gone = await http.delete(f"/api/organisers/{jkl['id']}", headers=bearer(ADMIN_KEY))
    assert gone.status == 204
    assert await error_of(await http.get("/api/shows", headers=bearer(jkl["key"]))) == (
        403,
        "forbidden",
    )
    assert "Jyväskylän jazz" in await titles(http, key=ADMIN_KEY)
    again = await http.delete(f"/api/organisers/{jkl['id']}", headers=bearer(ADMIN_KEY))
    assert await error_of(again) == (404, "organiser_not_found")
    own = await http.delete("/api/organisers/default", headers=bearer(ADMIN_KEY))
    assert await error_of(own) == (400, "invalid_input")


async def test_without_an_admin_key_nobody_is_the_admin(bus: Bus) -> None:
    async with serve(bus) as node, aiohttp.ClientSession(node.url) as http:
        response = await http.get("/api/organisers", headers=bearer(ORGANISER_KEY))
        assert await error_of(response) == (403, "forbidden")
        response = await http.get("/api/organisers", headers=bearer(ADMIN_KEY))
        assert await error_of(response) == (403, "forbidden")


async def test_editing_a_show_checks_every_field_and_tells_who_joined(
    node: Node, http: aiohttp.ClientSession
) -> None:
    show = await new_show(http, ORGANISER_KEY, starts_at="2026-12-20T14:00:00+02:00")
    url = f"/api/shows/{show['id']}"
    for body in (
        {"code": "123456"},
        {"category": "wrestling"},
        {"language": "suomi"},
        {"listed": "no"},
        {"access": "vip"},
        {"starts_at": "2026-12-20T14:00:00"},
        {"title": ""},
        {"title": "x" * 201},
    ):
        response = await http.patch(url, json=body, headers=bearer(ORGANISER_KEY))
        assert await error_of(response) == (400, "invalid_input"), body
    viewer = await Session.connect(node.url)
    try:
        await viewer.request("watch.join", code=show["code"], name="Aino")
        moved = {"starts_at": "2026-12-21T15:00:00+02:00", "category": "sing-along"}
        response = await http.patch(url, json=moved, headers=bearer(ORGANISER_KEY))
        assert response.status == 200
        heard = await viewer.next_event("show.updated")
        assert heard["changed"] == ["category", "starts_at"]
        assert heard["public"]["starts_at"] == "2026-12-21T15:00:00+02:00"
        assert "performer_token" not in heard["public"]
        programme = await (await http.get("/api/shows")).json()
        assert programme["shows"][0]["category"] == "sing-along"
    finally:
        await viewer.close()


async def test_a_cancelled_show_tells_who_joined_and_its_code_stops_working(
    node: Node, http: aiohttp.ClientSession
) -> None:
    show = await new_show(http, ORGANISER_KEY, title="Peruttava")
    viewer = await Session.connect(node.url)
    try:
        await viewer.request("watch.join", code=show["code"], name="Aino")
        response = await http.post(f"/api/shows/{show['id']}/cancel", headers=bearer(ORGANISER_KEY))
        assert response.status == 200 and (await response.json())["cancelled"] is True
        heard = await viewer.next_event("show.state")
        assert (heard["state"], heard.get("cancelled")) == ("ended", True)
        found = await http.get(f"/api/shows/by-code/{show['code']}")
        assert await error_of(found) == (410, "show_cancelled")  # a senior typing it hears why
        late = await Session.connect(node.url)
        try:
            with pytest.raises(ProtocolError) as refused:
                await late.request("watch.join", code=show["code"], name="Eino")
            assert refused.value.code == "show_cancelled"
        finally:
            await late.close()
        assert "Peruttava" not in await titles(http)
        again = await http.post(f"/api/shows/{show['id']}/cancel", headers=bearer(ORGANISER_KEY))
        assert await error_of(again) == (404, "show_not_found")
    finally:
        await viewer.close()


async def test_the_programme_filters_by_city_category_time_and_words(
    http: aiohttp.ClientSession,
) -> None:
    oulu = await new_organiser(http, "Oulun kaupunki", "Oulu")
    await new_show(
        http,
        oulu["key"],
        title="Joululauluja",
        category="sing-along",
        starts_at="2026-12-20T14:00:00+02:00",
        performer="Oulun kuoro",
    )
    await new_show(
        http,
        ORGANISER_KEY,
        title="Tuolijumppa",
        category="exercise",
        starts_at="2026-12-21T10:00:00+02:00",
    )
    await new_show(http, ORGANISER_KEY, title="Salainen", listed=False)
    assert await titles(http, "?city=oulu") == ["Joululauluja"]
    assert await titles(http, "?category=exercise") == ["Tuolijumppa"]
    window = "?from=2026-12-21T00:00:00%2B02:00&to=2026-12-22T00:00:00%2B02:00"
    assert await titles(http, window) == ["Tuolijumppa"]
    assert await titles(http, "?q=oulun%20KUORO") == ["Joululauluja"]
    assert "Salainen" not in await titles(http, "?q=salainen")
    for query in (
        "?category=wrestling",
        "?from=tomorrow",
        "?city=",
        "?colour=red",
        "?q=" + "x" * 101,
    ):
        assert await error_of(await http.get(f"/api/shows{query}")) == (400, "invalid_input"), query
    categories = await (await http.get("/api/categories")).json()
    assert "sing-along" in categories["categories"]


async def test_an_unlisted_show_is_reached_by_its_code_only(http: aiohttp.ClientSession) -> None:
    show = await new_show(http, ORGANISER_KEY, title="Hoivakodin oma", listed=False)
    assert "Hoivakodin oma" not in await titles(http)
    found = await http.get(f"/api/shows/by-code/{show['code']}")
    assert found.status == 200 and (await found.json())["title"] == "Hoivakodin oma"


async def test_calendar_files_parse_and_follow_the_show(http: aiohttp.ClientSession) -> None:
    oulu = await new_organiser(http, "Oulun kaupunki", "Oulu")
    show = await new_show(
        http,
        oulu["key"],
        title="Joulukonsertti",
        description="Kuoro laulaa",
        starts_at="2026-12-20T14:00:00+02:00",
        category="concert",
    )
    await new_show(http, ORGANISER_KEY, title="Turun jumppa", starts_at="2026-12-21T10:00:00+02:00")
    await new_show(http, oulu["key"], title="Ei aikaa")  # no start time: in no calendar
    await new_show(
        http, oulu["key"], title="Salainen", listed=False, starts_at="2026-12-22T10:00:00+02:00"
    )

    response = await http.get(f"/api/shows/{show['id']}.ics")
    assert response.status == 200 and response.content_type == "text/calendar"
    (event,) = Calendar.from_ical(await response.read()).walk("VEVENT")
    assert str(event["summary"]) == "Joulukonsertti"
    assert event.decoded("dtstart") == datetime.fromisoformat("2026-12-20T14:00:00+02:00")
    assert event.decoded("dtend") - event.decoded("dtstart") == timedelta(hours=1)
    assert show["code_display"] in str(event["description"])
    assert str(event["status"]) == "CONFIRMED" and int(event["sequence"]) == 0
    (alarm,) = event.walk("VALARM")
    assert alarm.decoded("trigger") == -timedelta(minutes=30)

    feed = await http.get("/api/calendar.ics?city=Oulu")
    assert feed.status == 200
    summaries = [str(e["summary"]) for e in Calendar.from_ical(await feed.read()).walk("VEVENT")]
    assert summaries == ["Joulukonsertti"]  # not Turku's, not the untimed, not the unlisted
    everyone = Calendar.from_ical(await (await http.get("/api/calendar.ics")).read())
    assert sorted(str(e["summary"]) for e in everyone.walk("VEVENT")) == [
        "Joulukonsertti",
        "Turun jumppa",
    ]

    # rescheduled, then cancelled: the calendar that added it sees both
    url = f"/api/shows/{show['id']}"
    moved = {"starts_at": "2026-12-27T14:00:00+02:00"}
    assert (await http.patch(url, json=moved, headers=bearer(oulu["key"]))).status == 200
    (event,) = Calendar.from_ical(await (await http.get(f"{url}.ics")).read()).walk("VEVENT")
    assert event.decoded("dtstart").day == 27 and int(event["sequence"]) == 1
    assert (await http.post(f"{url}/cancel", headers=bearer(oulu["key"]))).status == 200
    feed = Calendar.from_ical(await (await http.get("/api/calendar.ics?city=oulu")).read())
    (event,) = feed.walk("VEVENT")
    assert str(event["status"]) == "CANCELLED" and int(event["sequence"]) == 2

    untimed = await http.get("/api/shows/nosuchshow.ics")
    assert await error_of(untimed) == (404, "show_not_found")
    bad = await http.get("/api/calendar.ics?category=wrestling")
    assert await error_of(bad) == (400, "invalid_input")


async def test_a_ticketed_show_admits_its_ticket_holders_one_seat_per_ticket(
    node: Node, http: aiohttp.ClientSession
) -> None:
    show = await new_show(http, ORGANISER_KEY, title="=Lippukonsertti", access="ticket")
    url = f"/api/shows/{show['id']}/tickets"
    for body in (
        {"count": 0},
        {"count": 501},
        {"count": True},
        {"count": 2, "head_count": 0},
        {"count": 1, "price": 10},
    ):
        response = await http.post(url, json=body, headers=bearer(ORGANISER_KEY))
        assert await error_of(response) == (400, "invalid_input"), body
    minted = await http.post(url, json={"count": 3}, headers=bearer(ORGANISER_KEY))
    assert minted.status == 201
    codes = [t["code"] for t in (await minted.json())["tickets"]]
    assert len(set(codes)) == 3 and all(len(c) == 16 and c.isdigit() for c in codes)
    sheet = await http.post(
        url,
        json={"count": 2, "label": "Hoivakoti Kuusela", "head_count": 12},
        headers={**bearer(ORGANISER_KEY), "Accept": "text/csv"},
    )
    assert sheet.status == 201 and sheet.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO(await sheet.text())))
    assert rows[0] == ["code", "show", "starts_at", "label", "head_count"] and len(rows) == 3
    assert rows[1][1] == "'=Lippukonsertti"  # a spreadsheet shows it, never runs it
    room = rows[1][0]
    other = await new_organiser(http, "Oulun kaupunki", "Oulu")
    refused = await http.post(url, json={"count": 1}, headers=bearer(other["key"]))
    assert await error_of(refused) == (404, "show_not_found")

    sessions: list[Session] = []

    async def take_part(code: str, name: str) -> tuple[Session, dict[str, Any]]:
        session = await Session.connect(node.url)
        sessions.append(session)
        return session, await session.request("watch.join", code=code, name=name)

    try:
        # the show's own code is not enough; a ticket is, typed as people type it
        with pytest.raises(ProtocolError) as refused_join:
            await take_part(show["code"], "Aino")
        assert refused_join.value.code == "ticket_required"
        spaced = " ".join(codes[0][i : i + 4] for i in range(0, 16, 4))
        first, joined = await take_part(spaced, "Aino")
        assert joined["show"]["id"] == show["id"]
        found = await http.get(f"/api/shows/by-code/{codes[1]}")
        assert found.status == 200 and (await found.json())["access"] == "ticket"
        wrong = await http.get(f"/api/shows/by-code/{'9' * 16}")
        assert await error_of(wrong) == (404, "show_not_found")
        # a care home's ticket counts its room
        _, room_joined = await take_part(room, "Kuusela")
        assert room_joined["me"]["head_count"] == 12
        # the same ticket on a second device takes the seat over; the first is let go
        _, again = await take_part(codes[0], "Aino tabletilla")
        closed = await first.next_event("closed", timeout=5)
        assert closed["code"] == 4009
        assert again["me"]["id"] != joined["me"]["id"]
    finally:
        for session in sessions:
            await session.close()


def signed(secret: str, body: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    mac = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"Content-Type": "application/json", "X-Signature": f"sha256={mac}"}


async def test_a_shop_mints_tickets_through_a_signed_webhook(http: aiohttp.ClientSession) -> None:
    oulu = await new_organiser(http, "Oulun kaupunki", "Oulu")
    show = await new_show(http, oulu["key"], title="Lippukonsertti", access="ticket")
    issued = await http.post("/api/hook-secret", headers=bearer(oulu["key"]))
    assert issued.status == 201
    secret = (await issued.json())["secret"]
    order = {
        "organiser": oulu["id"],
        "id": "tilaus-1001",
        "timestamp": int(time.time()),
        "show": show["id"],
        "count": 2,
        "label": "Tilaus 1001",
    }
    raw, headers = signed(secret, order)
    response = await http.post("/api/hooks/tickets", data=raw, headers=headers)
    assert response.status == 201, await response.text()
    tickets = (await response.json())["tickets"]
    assert len(tickets) == 2 and all(len(t["code"]) == 16 for t in tickets)
    found = await http.get(f"/api/shows/by-code/{tickets[0]['code']}")
    assert found.status == 200 and (await found.json())["id"] == show["id"]

    again = await http.post("/api/hooks/tickets", data=raw, headers=headers)
    assert await error_of(again) == (409, "replayed")
    tampered = raw.replace(b'"count": 2', b'"count": 9')
    refused = await http.post("/api/hooks/tickets", data=tampered, headers=headers)
    assert await error_of(refused) == (401, "bad_signature")
    unsigned = await http.post(
        "/api/hooks/tickets", data=raw, headers={"Content-Type": "application/json"}
    )
    assert await error_of(unsigned) == (401, "bad_signature")
    stale = signed(secret, {**order, "id": "tilaus-1002", "timestamp": int(time.time()) - 3600})
    assert await error_of(
        await http.post("/api/hooks/tickets", data=stale[0], headers=stale[1])
    ) == (
        401,
        "stale_timestamp",
    )
    # another organiser's secret does not mint for this organiser's show
    tampere = await new_organiser(http, "Tampere-talo", "Tampere")
    theirs = (await (await http.post("/api/hook-secret", headers=bearer(tampere["key"]))).json())[
        "secret"
    ]
    forged = signed(theirs, {**order, "id": "tilaus-1003"})
    assert await error_of(
        await http.post("/api/hooks/tickets", data=forged[0], headers=forged[1])
    ) == (
        401,
        "bad_signature",
    )
    as_them = signed(theirs, {**order, "organiser": tampere["id"], "id": "tilaus-1004"})
    answer = await http.post("/api/hooks/tickets", data=as_them[0], headers=as_them[1])
    assert await error_of(answer) == (404, "show_not_found")
    # a refused order may be sent again, corrected; a new secret retires the old one
    wrong = signed(secret, {**order, "id": "tilaus-1005", "count": 0})
    assert await error_of(
        await http.post("/api/hooks/tickets", data=wrong[0], headers=wrong[1])
    ) == (
        400,
        "invalid_input",
    )
    fixed = signed(secret, {**order, "id": "tilaus-1005", "count": 1})
    assert (await http.post("/api/hooks/tickets", data=fixed[0], headers=fixed[1])).status == 201
    await http.post("/api/hook-secret", headers=bearer(oulu["key"]))
    old = signed(secret, {**order, "id": "tilaus-1006"})
    assert await error_of(await http.post("/api/hooks/tickets", data=old[0], headers=old[1])) == (
        401,
        "bad_signature",
    )


async def test_each_organiser_sees_and_revokes_only_its_own_staff_keys(
    http: aiohttp.ClientSession,
) -> None:
    oulu = await new_organiser(http, "Oulun kaupunki", "Oulu")
    tampere = await new_organiser(http, "Tampere-talo", "Tampere")
    made = await http.post(
        "/api/staff-keys", json={"label": "Koivukoti"}, headers=bearer(oulu["key"])
    )
    assert made.status == 201
    key = await made.json()
    await http.post(
        "/api/staff-keys", json={"label": "Hervannan koti"}, headers=bearer(tampere["key"])
    )

    async def labels(who: str) -> list[str]:
        listed = await (await http.get("/api/staff-keys", headers=bearer(who))).json()
        return sorted(k["label"] for k in listed["staff_keys"])

    assert await labels(oulu["key"]) == ["Koivukoti"]
    assert await labels(ADMIN_KEY) == ["Hervannan koti", "Koivukoti"]
    refused = await http.delete(f"/api/staff-keys/{key['id']}", headers=bearer(tampere["key"]))
    assert await error_of(refused) == (404, "staff_key_not_found")
    gone = await http.delete(f"/api/staff-keys/{key['id']}", headers=bearer(oulu["key"]))
    assert gone.status == 200 and await labels(oulu["key"]) == []


def picture(size: tuple[int, int], fmt: str, **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB" if fmt != "PNG" else "1", size, "white").save(out, fmt, **save)
    return out.getvalue()


async def test_a_show_gets_a_picture_made_small_without_its_metadata(
    node: Node, http: aiohttp.ClientSession
) -> None:
    show = await new_show(http, ORGANISER_KEY, title="Kuvakonsertti")
    url = f"/api/shows/{show['id']}/image"
    exif = Image.Exif()
    exif[0x0110] = "Kamera 3000"  # the camera model: must not leave the organiser's file
    photo = picture((3000, 2000), "JPEG", exif=exif.tobytes())
    viewer = await Session.connect(node.url)
    try:
        await viewer.request("watch.join", code=show["code"], name="Aino")
        headers = {**bearer(ORGANISER_KEY), "Content-Type": "image/jpeg"}
        response = await http.put(url, data=photo, headers=headers)
        assert response.status == 200, await response.text()
        image_url = (await response.json())["image_url"]
        heard = await viewer.next_event("show.updated")
        assert heard["changed"] == ["image"] and heard["public"]["image_url"] == image_url
    finally:
        await viewer.close()
    served = await http.get(image_url)
    assert served.status == 200 and served.content_type == "image/jpeg"
    with Image.open(io.BytesIO(await served.read())) as shown:
        assert shown.size == (1080, 720) and not shown.getexif()
    again = await http.get(image_url, headers={"If-None-Match": served.headers["ETag"]})
    assert again.status == 304
    programme = await (await http.get("/api/shows")).json()
    assert programme["shows"][0]["image_url"] == image_url

    gif = picture((10, 10), "GIF")
    refused = await http.put(
        url, data=gif, headers={**bearer(ORGANISER_KEY), "Content-Type": "image/png"}
    )
    assert await error_of(refused) == (415, "unsupported_image")
    bomb = picture((20000, 20000), "PNG")  # 400 million pixels in a few kilobytes
    assert len(bomb) < 100_000
    refused = await http.put(
        url, data=bomb, headers={**bearer(ORGANISER_KEY), "Content-Type": "image/png"}
    )
    assert await error_of(refused) == (400, "invalid_input")
    wrong_type = await http.put(
        url, data=photo, headers={**bearer(ORGANISER_KEY), "Content-Type": "text/plain"}
    )
    assert await error_of(wrong_type) == (415, "unsupported_media_type")
    gone = await http.delete(url, headers=bearer(ORGANISER_KEY))
    assert gone.status == 200 and (await gone.json())["image_url"] is None
    assert await error_of(await http.get(image_url)) == (404, "not_found")
