"""A ticketed show on the Watch page in headless Chromium against the real server: its own code
on the keypad asks for a ticket; the ticket's sixteen digits, tapped as printed, let the senior in;
the same ticket on a second device takes the seat, and the first page says so calmly. axe-core's
WCAG checks on the new states."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser

from tests.a11y import assert_accessible, needs_axe
from tests.browser import Tab, chromium, needs_chromium, open_tab, serve, text_of, wait_text
from tests.nodes import ORGANISER_KEY, Node

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    needs_axe,
    pytest.mark.asyncio(loop_scope="module"),
]

AUTH = {"Authorization": f"Bearer {ORGANISER_KEY}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[Node]:
    async with serve() as running:
        yield running


async def ticketed_show(node: Node) -> tuple[dict[str, Any], str]:
    async with aiohttp.ClientSession(node.url) as http:
        made = await http.post(
            "/api/shows", json={"title": "Lippukonsertti", "access": "ticket"}, headers=AUTH
        )
        show = await made.json()
        minted = await http.post(
            f"/api/shows/{show['id']}/tickets", json={"count": 1}, headers=AUTH
        )
        code: str = (await minted.json())["tickets"][0]["code"]
    return show, code


async def tap(viewer: Tab, digits: str) -> None:
    """Tap the digits on the keypad (erasing what is there), then OK."""
    page = viewer.page
    while await page.locator("#code").input_value():
        await page.get_by_role("button", name="Pyyhi").click()
    for digit in digits:
        await page.get_by_role("button", name=digit, exact=True).click()
    await page.get_by_role("button", name="OK", exact=True).click()


async def take_part_with_ticket(browser: Browser, node: Node, ticket: str, name: str) -> Tab:
    viewer = await open_tab(browser, node.url + "/")
    await tap(viewer, ticket)
    await viewer.page.get_by_label("Nimesi muille katsojille").fill(name)
    await viewer.page.get_by_role("button", name="Katso esitystä").click()
    await wait_text(viewer, "#watch-status", "Esitys ei ole vielä alkanut.")
    return viewer


async def test_a_ticket_on_the_keypad_lets_a_senior_in_and_holds_one_seat(
    node: Node, browser: Browser
) -> None:
    show, ticket = await ticketed_show(node)
    first = await open_tab(browser, node.url + "/")
    try:
        await tap(first, show["code"])
        await wait_text(first, "#code-status", "Tähän esitykseen tarvitaan lippu.")
        await assert_accessible(first.page, "fi: a ticketed show's own code")
        while await first.page.locator("#code").input_value():
            await first.page.get_by_role("button", name="Pyyhi").click()
        for digit in ticket[:7]:
            await first.page.get_by_role("button", name=digit, exact=True).click()
        shown = await first.page.locator("#code").input_value()
        assert shown == f"{ticket[:4]} {ticket[4:7]}", shown  # in fours, as a ticket prints it
        await first.context.close()

        first = await take_part_with_ticket(browser, node, ticket, "Aino")
        second = await take_part_with_ticket(browser, node, ticket, "Aino tabletilla")
        await wait_text(first, "#watch-status", "Lippusi on nyt käytössä toisella laitteella.")
        await assert_accessible(first.page, "fi: the ticket taken into use elsewhere")
        assert "Esitys ei ole vielä alkanut." in await text_of(second, "#watch-status")
        await second.context.close()
    finally:
        await first.context.close()
