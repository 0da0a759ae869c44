"""The programme on the Watch page and the organisers' changes reaching viewers, in headless
Chromium against the real server: shows of two organisers grouped by day with their time, town and
kind in words, filtered with the town and kind buttons; the admin adds an organiser on /organise
whose key really creates shows; an organiser edits a show's time and a viewer waiting for it sees
the new time, cancels it and the viewer is told; axe finds nothing in Finnish, Swedish and English
in each new state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator

from tests.a11y import accessible_in_every_language, assert_targets_large, needs_axe
from tests.browser import (
    PAGE_INTERVAL,
    Tab,
    chromium,
    needs_chromium,
    open_tab,
    serve,
    text_of,
    wait_text,
)
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY, Node, start_performer

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    needs_axe,
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.asyncio(loop_scope="module"),
]

ADMIN_KEY = "test-admin-key-of-the-deployment"
HELSINKI = ZoneInfo("Europe/Helsinki")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[Node]:
    async with serve(admin_key=ADMIN_KEY) as running:
        yield running


async def call(
    node: Node, method: str, path: str, key: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """An API request with a key: the status and the JSON answer (None when there is none)."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, node.url + path, json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        answer = await response.json() if response.content_type == "application/json" else None
        return response.status, answer


async def show_by(node: Node, key: str, **body: Any) -> dict[str, Any]:
    status, show = await call(node, "POST", "/api/shows", key, body)
    assert status == 201, show
    assert isinstance(show, dict)
    return show


def helsinki(days: int, hour: int, minute: int = 0) -> datetime:
    """A time on a day counted from today, on Helsinki's clock."""
    day = datetime.now(HELSINKI).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=HELSINKI)


def week_or_later(days: int) -> str:
    """The programme's part for a show ``days`` from today: this week runs to Sunday."""
    return "week" if days <= 6 - datetime.now(HELSINKI).weekday() else "later"


async def titles(tab: Tab) -> list[str]:
    """The titles of the shows the programme shows now, in order."""
    found: list[str] = await tab.eval(
        "() => [...document.querySelectorAll('#front .show-card :is(h3, h4)')]"
        ".map((h) => h.textContent)"
    )
    return found


async def shows_exactly(tab: Tab, wanted: set[str]) -> bool:
    return set(await titles(tab)) == wanted


async def pressed(button: Locator) -> bool:
    return await button.get_attribute("aria-pressed") == "true"


async def test_programme_by_day_with_time_words_filtered_by_town_and_kind(
    node: Node, browser: Browser
) -> None:
    keys = {}
    for name, city in (("Oulun kaupunki", "Oulu"), ("Turun kaupunki", "Turku")):
        status, organiser = await call(
            node, "POST", "/api/organisers", ADMIN_KEY, {"name": name, "city": city}
        )
        assert status == 201
        keys[city] = organiser["key"]
    concert = await show_by(
        node, keys["Oulu"], title="Iltakonsertti", category="concert",
        starts_at=helsinki(0, 23, 50).isoformat(), performer="Oulu Sinfonia",
    )  # fmt: skip
    await show_by(
        node, keys["Turku"], title="Aamun yhteislaulu", category="sing-along",
        starts_at=helsinki(1, 10).isoformat(),
    )  # fmt: skip
    await show_by(
        node, keys["Oulu"], title="Tietovisa", category="quiz",
        starts_at=helsinki(20, 14, 30).isoformat(),
    )  # fmt: skip
    everything = {"Iltakonsertti", "Aamun yhteislaulu", "Tietovisa"}

    viewer = await open_tab(browser, node.url + "/")
    page = viewer.page
    await wait_text(viewer, "#group-today", "Iltakonsertti")
    today = page.locator("#group-today .show-card", has_text="Iltakonsertti")
    assert await text_of(viewer, "#group-today h3") == "Tänään"
    assert (await today.locator(".when").text_content()) == "Tänään klo 23.50"
    assert (await today.locator(".where").text_content()) == "Oulu, Konsertti"
    tomorrow = page.locator(f"#group-{week_or_later(1)} .show-card", has_text="yhteislaulu")
    assert (await tomorrow.locator(".when").text_content()) == "Huomenna klo 10"
    assert (await tomorrow.locator(".where").text_content()) == "Turku, Yhteislaulu"
    later = page.locator("#group-later .show-card", has_text="Tietovisa")
    assert ((await later.locator(".when").text_content()) or "").endswith(" klo 14.30")
    # a calendar file per show, from the link alone
    calendar = today.get_by_role("link", name="Lisää kalenteriin: Iltakonsertti")
    href = await calendar.get_attribute("href")
    assert href == f"/api/shows/{concert['id']}.ics"
    assert await calendar.get_attribute("download") is not None

    # the town buttons are those of the programme; one tap shows that town only
    towns = page.get_by_role("group", name="Paikkakunta")
    names = await towns.get_by_role("button").all_text_contents()
    assert [n.lstrip("✓ ") for n in names] == ["Kaikki", "Oulu", "Turku"]
    oulu = towns.get_by_role("button", name="Oulu", exact=True)
    assert await pressed(towns.get_by_role("button", name="Kaikki"))
    at = await oulu.bounding_box()
    await oulu.click()
    await eventually(lambda: shows_exactly(viewer, {"Iltakonsertti", "Tietovisa"}), 10,
                     interval=PAGE_INTERVAL)  # fmt: skip
    assert await pressed(oulu) and not await pressed(towns.get_by_role("button", name="Kaikki"))
    assert await oulu.bounding_box() == at  # the button tapped stays where it was
    await wait_text(viewer, "#filter-status", "Näytetään 2 esitystä.")
    kinds = page.get_by_role("group", name="Millainen esitys")
    await kinds.get_by_role("button", name="Konsertti").click()
    await eventually(lambda: shows_exactly(viewer, {"Iltakonsertti"}), 10, interval=PAGE_INTERVAL)
    await wait_text(viewer, "#filter-status", "Näytetään 1 esitys.")
    await accessible_in_every_language(viewer, "programme, a town and a kind chosen")
    await assert_targets_large(page, "programme, a town and a kind chosen")

    # the same words in English; then everything again
    await page.get_by_role("button", name="English", exact=True).click()
    await wait_text(viewer, "#group-today .when", "Today at 23:50")
    await wait_text(viewer, "#group-today .where", "Oulu, Concert")
    await page.get_by_role("button", name="Suomi", exact=True).click()
    await kinds.get_by_role("button", name="Yhteislaulu").click()  # none in Oulu
    await wait_text(viewer, "#filter-status", "Tällä valinnalla ei ole esityksiä.")
    assert await titles(viewer) == []
    await kinds.get_by_role("button", name="Kaikki").click()
    await towns.get_by_role("button", name="Kaikki").click()
    await eventually(lambda: shows_exactly(viewer, everything), 10, interval=PAGE_INTERVAL)
    await viewer.screenshot("programme")
    await viewer.context.close()


async def test_admin_adds_an_organiser_who_moves_and_cancels_a_show_a_viewer_waits_for(
    node: Node, browser: Browser
) -> None:
    desk = await open_tab(browser, node.url + "/organise")
    page = desk.page
    key = page.get_by_label("Järjestäjän avain")
    await key.fill(ADMIN_KEY)
    await key.press("Enter")
    # the admin key: the organisers, the node's own first
    await page.get_by_role("heading", name="Järjestäjät").wait_for(timeout=10_000)
    await wait_text(desk, "#org-organisers", "tämän palvelun oma järjestäjä")
    await page.get_by_label("Järjestäjän nimi (esimerkiksi Oulun kaupunki)").fill("Porin kaupunki")
    await page.get_by_label("Paikkakunta").fill("Pori")
    await page.get_by_role("button", name="Lisää järjestäjä").click()
    await wait_text(desk, "#organiser-status", "Uusi järjestäjä: Porin kaupunki.")
    await wait_text(desk, "#org-organisers", "Porin kaupunki")
    pori = (await text_of(desk, "#new-organiser-key-value")).strip()
    await accessible_in_every_language(desk, "/organise as the admin, a new organiser's key")

    # the key shown works: the organiser's shows are Pori's
    show = await show_by(
        node, pori, title="Yhteislaulu", category="sing-along",
        starts_at=helsinki(1, 10).isoformat(),
    )  # fmt: skip
    assert show["city"] == "Pori"
    on_air = await show_by(node, pori, title="Suora tanssiesitys")
    performer = await start_performer(node, on_air, "video/VP8")

    viewer = await open_tab(browser, show["viewer_url"])
    await wait_text(viewer, "#watch-status", "Esitys ei ole vielä alkanut.")
    await wait_text(viewer, "#watch-when", "Alkaa huomenna klo 10.")

    # the organiser signs in with its own key: its shows, no organisers
    await page.get_by_role("button", name="Kirjaudu ulos").click()
    await key.fill(pori)
    await key.press("Enter")
    item = page.locator(".org-show", has_text="Yhteislaulu")
    await item.wait_for(timeout=10_000)
    assert await page.locator("#organisers").is_hidden()
    listed = (await item.text_content()) or ""
    assert "Pori" in listed and "Yhteislaulu" in listed
    # a new show of a kind, from the form: its town is the organiser's
    await page.get_by_label("Esityksen nimi").fill("Kamarikonsertti")
    await page.get_by_label("Laji").select_option(label="Konsertti")
    await page.get_by_role("button", name="Luo esitys").click()
    await wait_text(desk, "#create-status", "Esitys ”Kamarikonsertti” on luotu.")
    chamber = page.locator(".org-show", has_text="Kamarikonsertti")
    await chamber.wait_for(timeout=10_000)
    assert "LajiKonsertti" in ((await chamber.locator(".facts").text_content()) or "")
    assert "PaikkakuntaPori" in ((await chamber.locator(".facts").text_content()) or "")
    await item.get_by_role("button", name="Muokkaa").click()
    await accessible_in_every_language(desk, "/organise editing a show")
    await page.locator("#edit-title").fill("Yhteislaulu puistossa")
    moved = helsinki(1, 11, 30).isoformat()
    # the field is on the device's clock: the new time as the browser's local time
    local = await desk.eval(
        "(iso) => { const d = new Date(iso);"
        " return new Date(d - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16); }",
        moved,
    )
    await page.locator("#edit-time").fill(local)
    await item.get_by_label("Näkyy julkisessa ohjelmassa").uncheck()
    await desk.screenshot("organise-edit")
    await page.get_by_role("button", name="Tallenna muutokset").click()
    await wait_text(desk, "#shows-status", "Muutokset on tallennettu: ”Yhteislaulu puistossa”.")
    await wait_text(desk, "#org-shows", "Vain koodilla: ei julkisessa ohjelmassa")

    # the viewer waiting sees the new title and time at once, and is told calmly
    await wait_text(viewer, "#watch-title", "Yhteislaulu puistossa")
    await wait_text(viewer, "#watch-news", "Esitys siirtyi: huomenna klo 11.30.")
    await wait_text(viewer, "#watch-when", "Alkaa huomenna klo 11.30.")
    await accessible_in_every_language(viewer, "watching, the show moved")
    await viewer.screenshot("watch-moved")

    # a live show cannot be cancelled: the page says so plainly
    live = page.locator(".org-show", has_text="Suora tanssiesitys")
    await live.get_by_role("button", name="Peru esitys").click()
    await live.get_by_role("button", name="Kyllä, peru esitys").click()
    await wait_text(desk, "#shows-status", "Esitys on nyt suorana, joten sitä ei voi perua.")
    await performer.stop()
    await performer.session.close()

    # cancelled after a second question: the viewer is told, and the code says so
    await item.get_by_role("button", name="Peru esitys").click()
    await accessible_in_every_language(desk, "/organise asking before cancelling")
    await desk.screenshot("organise-cancel")
    await item.get_by_role("button", name="Kyllä, peru esitys").click()
    await wait_text(desk, "#shows-status", "Esitys ”Yhteislaulu puistossa” on peruttu.")
    await wait_text(viewer, "#watch-status", "Esitys on peruttu.")
    assert await viewer.page.locator("#watch-news").is_hidden()
    await accessible_in_every_language(viewer, "watching, the show cancelled")
    await viewer.page.get_by_role("button", name="Lopeta katselu").click()
    await viewer.page.get_by_label("Esityksen koodi").fill(show["code"])
    await viewer.page.get_by_label("Esityksen koodi").press("Enter")
    await wait_text(viewer, "#code-status", "Tämä esitys on peruttu.")

    # the admin revokes the organiser's key after a second question: it stops working at once
    await page.get_by_role("button", name="Kirjaudu ulos").click()
    await key.fill(ADMIN_KEY)
    await key.press("Enter")
    entry = page.locator("#org-organisers li", has_text="Porin kaupunki")
    await entry.get_by_role("button", name="Poista järjestäjän avain").click()
    await entry.get_by_role("button", name="Kyllä, poista avain").click()
    await wait_text(desk, "#organiser-status", "Järjestäjän ”Porin kaupunki” avain on poistettu.")
    status, _ = await call(node, "POST", "/api/shows", pori, {"title": "Ei enää"})
    assert status == 403
    assert (await call(node, "GET", "/api/shows", ORGANISER_KEY))[0] == 200
    await viewer.context.close()
    await desk.context.close()
