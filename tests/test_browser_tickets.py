"""A ticketed show on the Watch page in headless Chromium against the real server: its own code
on the keypad asks for a ticket; the ticket's sixteen digits, tapped as printed, let the senior in;
the same ticket on a second device takes the seat, and the first page says so calmly; an organiser
makes a show ticketed with a picture on /organise and prints its tickets. axe-core's WCAG checks on
the new states."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from PIL import Image
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


async def test_an_organiser_makes_a_show_ticketed_with_a_picture_and_prints_its_tickets(
    node: Node, browser: Browser, tmp_path: Path
) -> None:
    show = await node.create_show("Kuvakonsertti")
    photo = tmp_path / "kuva.jpg"
    Image.new("RGB", (1600, 1200), "navy").save(photo, "JPEG")
    desk = await open_tab(browser, node.url + "/organise")
    viewer: Tab | None = None
    try:
        page = desk.page
        key = page.get_by_label("Järjestäjän avain")
        await key.fill(ORGANISER_KEY)
        await key.press("Enter")
        card = page.locator("li.org-show", has_text="Kuvakonsertti")
        await card.get_by_role("button", name="Muokkaa").click()
        await page.get_by_label("Vain lipulla").check()
        await page.get_by_label("Kuva ohjelmaan").set_input_files(photo)
        await page.get_by_role("button", name="Tallenna muutokset").click()
        await wait_text(desk, "#shows-status", "Muutokset on tallennettu")
        await card.get_by_text("Vain lipulla").first.wait_for(timeout=10_000)

        await card.get_by_role("button", name="Liput").click()
        await page.get_by_label("Montako lippua").fill("3")
        await page.get_by_label("Kenelle (esim. hoivakodin nimi)").fill("Hoivakoti Kuusela")
        await page.get_by_role("button", name="Tee liput").click()
        await wait_text(desk, "#shows-status", "Tehtiin 3 lippua.")
        codes = await page.locator(".ticket-codes li strong").all_text_contents()
        assert len(codes) == 3 and all(len(c.replace(" ", "")) == 16 for c in codes)
        assert (
            await page.get_by_role("link", name="Tallenna tiedostoon (CSV)").get_attribute(
                "download"
            )
            == "liput.csv"
        )
        await assert_accessible(page, "fi: /organise, tickets made")

        # the programme shows the picture; a printed ticket lets a senior in
        viewer = await open_tab(browser, node.url + "/")
        picture = viewer.page.locator("li.show-card", has_text="Kuvakonsertti").locator("img")
        await picture.wait_for(timeout=10_000)
        assert await picture.evaluate("(img) => img.complete && img.naturalWidth") == 960
        await tap(viewer, codes[0].replace(" ", ""))
        await viewer.page.get_by_label("Nimesi muille katsojille").fill("Aino")
        await viewer.page.get_by_role("button", name="Katso esitystä").click()
        await wait_text(viewer, "#watch-status", "Esitys ei ole vielä alkanut.")
        assert show["code"] not in await text_of(viewer, "#watch-status")
    finally:
        await desk.context.close()
        if viewer is not None:
            await viewer.context.close()
