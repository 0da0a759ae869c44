"""The show API over real HTTP, on both bus engines."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest
import segno
from aiohttp.test_utils import TestClient

from tests.nodes import ORGANISER_KEY, create, error_of

AUTH = {"Authorization": f"Bearer {ORGANISER_KEY}"}


async def test_create_show_returns_secrets_and_links(client: TestClient) -> None:  # type: ignore[type-arg]
    show = await create(client, description="Kuoro laulaa", starts_at="2026-12-13T15:00:00+02:00")
    assert show["title"] == "Joulukonsertti" and show["state"] == "scheduled"
    assert len(show["code"]) == 6 and show["code"].isdigit()
    assert show["code_display"] == f"{show['code'][:3]} {show['code'][3:]}"
    assert len(show["performer_token"]) >= 43 and len(show["stream_key"]) >= 43
    assert show["performer_token"] != show["stream_key"]
    assert show["viewer_url"] == f"http://127.0.0.1:8080/watch?code={show['code']}"
    assert show["performer_url"].startswith("http://127.0.0.1:8080/studio#")
    assert show["starts_at"] == "2026-12-13T15:00:00+02:00"


async def test_programme_and_lookup_by_code_hide_secrets(client: TestClient) -> None:  # type: ignore[type-arg]
    early = await create(client, title="Aamujumppa", starts_at="2026-12-01T09:00:00+02:00")
    late = await create(client, title="Iltakonsertti", starts_at="2026-12-01T19:00:00+02:00")
    response = await client.get("/api/shows")
    assert response.status == 200
    programme = (await response.json())["shows"]
    assert [s["title"] for s in programme] == ["Aamujumppa", "Iltakonsertti"]
    text = await response.text()
    for secret in (early["performer_token"], early["stream_key"], late["stream_key"]):
        assert secret not in text

    found = await client.get(f"/api/shows/by-code/{late['code']}")
    assert found.status == 200
    body = await found.json()
    assert body["id"] == late["id"] and "stream_key" not in body and "performer_token" not in body
    # people type codes with spaces, as they are shown
    spaced = await client.get(f"/api/shows/by-code/{late['code'][:3]}%20{late['code'][3:]}")
    assert spaced.status == 200


async def test_the_organiser_lists_its_ended_shows(client: TestClient) -> None:  # type: ignore[type-arg]
    gone = await create(client, title="Peruttu konsertti")
    kept = await create(client, title="Tuleva konsertti")
    assert (await client.post(f"/api/shows/{gone['id']}/cancel", headers=AUTH)).status == 200
    ended = await client.get("/api/shows?ended=true", headers=AUTH)
    assert ended.status == 200
    shows = (await ended.json())["shows"]
    assert [s["id"] for s in shows] == [gone["id"]] and shows[0]["state"] == "ended"
    open_ = (await (await client.get("/api/shows?ended=false", headers=AUTH)).json())["shows"]
    assert [s["id"] for s in open_] == [kept["id"]]
    # the public programme has no ended shows to list
    assert (await error_of(await client.get("/api/shows?ended=true")))[0] == 400
    assert (await error_of(await client.get("/api/shows?ended=yes", headers=AUTH)))[0] == 400


async def test_codes_are_unique_among_open_shows(client: TestClient) -> None:  # type: ignore[type-arg]
    codes = {(await create(client, title=f"Show {n}"))["code"] for n in range(30)}
    assert len(codes) == 30


async def test_show_detail_for_its_performer_only(client: TestClient) -> None:  # type: ignore[type-arg]
    show = await create(client)
    other = await create(client, title="Toinen")
    url = f"/api/shows/{show['id']}"
    mine = await client.get(url, headers={"Authorization": f"Bearer {show['performer_token']}"})
    assert mine.status == 200 and (await mine.json())["stream_key"] == show["stream_key"]
    assert (await client.get(url, headers=AUTH)).status == 200
    theirs = await client.get(url, headers={"Authorization": f"Bearer {other['performer_token']}"})
    assert await error_of(theirs) == (403, "forbidden")
    assert await error_of(await client.get(url)) == (401, "unauthorized")
    unknown = await client.get("/api/shows/nope", headers={"Authorization": "Bearer x"})
    assert await error_of(unknown) == (403, "forbidden")  # ids cannot be probed
    assert await error_of(await client.get("/api/shows/nope", headers=AUTH)) == (
        404,
        "show_not_found",
    )


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({}, {"title": "x"}, (401, "unauthorized")),
        ({"Authorization": "Bearer wrong"}, {"title": "x"}, (403, "forbidden")),
        ({"Authorization": "Basic abc"}, {"title": "x"}, (401, "unauthorized")),
        (AUTH, {}, (400, "invalid_input")),
        (AUTH, {"title": "   "}, (400, "invalid_input")),
        (AUTH, {"title": 5}, (400, "invalid_input")),
        (AUTH, {"title": "x" * 201}, (400, "invalid_input")),
        (AUTH, {"title": "x", "description": ["a"]}, (400, "invalid_input")),
        (AUTH, {"title": "x", "starts_at": "tomorrow"}, (400, "invalid_input")),
        (AUTH, {"title": "x", "starts_at": "2026-12-01T10:00:00"}, (400, "invalid_input")),
        (AUTH, {"title": "x", "secret": 1}, (400, "invalid_input")),
    ],
)
async def test_create_show_errors(
    client: TestClient,  # type: ignore[type-arg]
    headers: dict[str, str],
    body: dict[str, Any],
    expected: tuple[int, str],
) -> None:
    response = await client.post("/api/shows", json=body, headers=headers)
    assert await error_of(response) == expected
    assert (await (await client.get("/api/shows")).json())["shows"] == []  # nothing was created


async def test_create_show_body_errors(client: TestClient) -> None:  # type: ignore[type-arg]
    not_json = await client.post("/api/shows", data="title=x", headers=AUTH)
    assert await error_of(not_json) == (415, "unsupported_media_type")
    broken = await client.post(
        "/api/shows", data="{oops", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert await error_of(broken) == (400, "invalid_json")
    array = await client.post("/api/shows", json=["title"], headers=AUTH)
    assert await error_of(array) == (400, "invalid_json")
    huge = await client.post("/api/shows", json={"title": "x" * 100_000}, headers=AUTH)
    assert await error_of(huge) == (413, "payload_too_large")


async def test_unknown_routes_and_methods_get_json_errors(client: TestClient) -> None:  # type: ignore[type-arg]
    assert await error_of(await client.get("/api/nothing")) == (404, "not_found")
    deleted = await client.delete("/api/shows")
    assert await error_of(deleted) == (405, "method_not_allowed")
    assert "GET" in deleted.headers["Allow"]


async def test_wrong_codes_are_rate_limited_per_address(client: TestClient) -> None:  # type: ignore[type-arg]
    show = await create(client)
    wrong = "000000" if show["code"] != "000000" else "000001"
    for _ in range(5):
        response = await client.get(f"/api/shows/by-code/{wrong}")
        assert await error_of(response) == (404, "show_not_found")
    limited = await client.get(f"/api/shows/by-code/{wrong}")
    assert await error_of(limited) == (429, "rate_limited")
    assert 800 <= int(limited.headers["Retry-After"]) <= 900
    # once limited, even the right code waits: guessing must not be able to continue
    right = await client.get(f"/api/shows/by-code/{show['code']}")
    assert right.status == 429
    # X-Forwarded-For is not trusted: a header cannot dodge the limit
    dodge = await client.get(
        f"/api/shows/by-code/{show['code']}", headers={"X-Forwarded-For": "192.0.2.1"}
    )
    assert dodge.status == 429
    # another address (127.0.0.2 is loopback too) is not affected
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as other:
        response = await other.get(client.make_url(f"/api/shows/by-code/{show['code']}"))
        assert response.status == 200


async def test_malformed_codes_count_as_failures(client: TestClient) -> None:  # type: ignore[type-arg]
    for bad in ("12345", "abcdef", "1234567"):
        response = await client.get(f"/api/shows/by-code/{bad}")
        assert await error_of(response) == (400, "invalid_input")
    for _ in range(2):
        await client.get("/api/shows/by-code/999999")
    assert (await client.get("/api/shows/by-code/999999")).status == 429


async def test_successful_lookups_never_count(client: TestClient) -> None:  # type: ignore[type-arg]
    show = await create(client)
    for _ in range(12):
        assert (await client.get(f"/api/shows/by-code/{show['code']}")).status == 200


async def test_pages_are_served_with_security_headers(client: TestClient) -> None:  # type: ignore[type-arg]
    for path in ("/", "/watch", "/studio", "/perform"):
        response = await client.get(path)
        assert response.status == 200
        assert "<html" in await response.text()
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    script = await client.get("/static/index.js")
    assert script.status == 200 and "javascript" in script.content_type


async def test_stream_key_rotation_by_performer(client: TestClient) -> None:  # type: ignore[type-arg]
    show = await create(client)
    url = f"/api/shows/{show['id']}/stream-key"
    assert await error_of(await client.post(url)) == (401, "unauthorized")
    wrong = await client.post(url, headers={"Authorization": "Bearer nope"})
    assert await error_of(wrong) == (403, "forbidden")
    rotated = await client.post(url, headers={"Authorization": f"Bearer {show['performer_token']}"})
    assert rotated.status == 200
    new_key = (await rotated.json())["stream_key"]
    assert new_key != show["stream_key"] and len(new_key) >= 43
    # the WHIP endpoint takes the new key and refuses the old one
    sdp = {"Content-Type": "application/sdp"}
    old = await client.post(
        "/whip", data="v=0", headers={**sdp, "Authorization": f"Bearer {show['stream_key']}"}
    )
    assert old.status == 403
    new = await client.post(
        "/whip", data="v=0", headers={**sdp, "Authorization": f"Bearer {new_key}"}
    )
    assert await error_of(new) == (400, "invalid_sdp")  # past the key check


async def test_show_qr_code_leads_to_the_viewer_link(client: TestClient) -> None:  # type: ignore[type-arg]
    show = await create(client)
    response = await client.get(f"/api/shows/{show['id']}/qr.svg")  # public: no key needed
    assert response.status == 200
    assert response.content_type == "image/svg+xml"
    svg = await response.text()
    assert svg.startswith("<svg") and "<path" in svg
    # the very symbol of the viewer link (a phone camera opens the show)
    expected = io.BytesIO()
    segno.make_qr(show["viewer_url"], error="m").save(
        expected, kind="svg", scale=8, border=4, xmldecl=False
    )
    assert svg == expected.getvalue().decode()
    missing = await client.get("/api/shows/nosuchshow/qr.svg")
    assert await error_of(missing) == (404, "show_not_found")
