"""The care-home screen, the staff phone and the organiser page at 200 % zoom on a 1024×768 tablet
(512×384 CSS pixels at twice the density): no text overlaps, leaves the screen or is cut, and no
page scrolls sideways (the Watch page and the studio are checked in their own tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from playwright.async_api import Browser, Page

from tests.a11y import layout_problems
from tests.browser import chromium, needs_chromium, serve
from tests.nodes import ORGANISER_KEY, Node

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with serve() as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


async def zoomed(browser: Browser, url: str) -> Page:
    context = await browser.new_context(
        locale="fi-FI",
        viewport={"width": 512, "height": 384},
        device_scale_factor=2,
        service_workers="block",
    )
    page = await context.new_page()
    await page.goto(url)
    return page


async def test_screen_phone_and_organiser_pages_at_200_percent(
    node: Node, browser: Browser
) -> None:
    await node.create_show("Hyvin pitkä esityksen nimi: Kevään ja kesän laulut yhdessä")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{node.url}/api/staff-keys",
            json={"label": "Palvelutalo Koivikko, 2. kerroksen olohuone"},
            headers={"Authorization": f"Bearer {ORGANISER_KEY}"},
        ) as response,
    ):
        assert response.status == 201
        staff_key = (await response.json())["key"]

    screen = await zoomed(browser, node.url + "/screen")
    await screen.locator("#pair-code").wait_for(state="visible", timeout=10_000)
    await layout_problems(screen, "/screen with its pairing code")

    phone = await zoomed(browser, node.url + "/screen/pair")
    key = phone.get_by_label("Kirjoita avain, jonka sait järjestäjältä")
    await key.wait_for(state="visible", timeout=10_000)
    await layout_problems(phone, "/screen/pair key entry")
    await key.fill(staff_key)
    await key.press("Enter")
    await phone.get_by_label("Näytön koodi").wait_for(state="visible", timeout=10_000)
    await layout_problems(phone, "/screen/pair remote")

    desk = await zoomed(browser, node.url + "/organise")
    organiser_key = desk.get_by_label("Järjestäjän avain")
    await organiser_key.wait_for(state="visible", timeout=10_000)
    await layout_problems(desk, "/organise signed out")
    await organiser_key.fill(ORGANISER_KEY)
    await organiser_key.press("Enter")
    await desk.get_by_role("img", name="QR-koodi katsojan linkkiin", exact=False).first.wait_for(
        timeout=10_000
    )
    await layout_problems(desk, "/organise with a show and a staff key")
