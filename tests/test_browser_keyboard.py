"""Keyboard-only journeys (issue 17) on the studio (go live, moderate a message, type a caption)
and the organiser's page (sign in, create a show), as the Watch page has in
tests/test_browser_watch.py; the phone's pairing journey is in tests/test_browser_pairing_qr.py.
Only key presses reach the pages (Tab, Shift+Tab, Enter, Space and typing, which Playwright sends
as CDP Input.dispatchKeyEvent); every control reached must show its focus.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from clients.client import Session
from tests.browser import (
    PAGE_INTERVAL,
    chromium,
    needs_chromium,
    open_tab,
    serve,
    text_of,
    wait_text,
)
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY, Node

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.asyncio(loop_scope="module"),
]

# What has the focus, and whether a focus ring shows.
FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {id: el.id, text: (el.textContent || '').trim(), tag: el.tagName,
          ring: el.matches(':focus-visible')
            && (style.outlineStyle !== 'none' || style.boxShadow !== 'none')};
}"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[Node]:
    async with serve() as running:
        yield running


async def tab_to(page: Page, wanted: str, limit: int = 80, key: str = "Tab") -> dict[str, Any]:
    """Press Tab (or Shift+Tab) until the element with this id or text has the focus, which must
    show."""
    for _ in range(limit):
        await page.keyboard.press(key)
        now: dict[str, Any] = await page.evaluate(FOCUSED)
        if wanted == now["id"] or now["text"] == wanted:
            assert now["ring"], f"no visible focus on {now}"
            return now
    raise AssertionError(f"{key} never reached {wanted!r}")


async def test_studio_by_keyboard_alone(node: Node, browser: Browser) -> None:
    show = await node.create_show("Yhteislaulu")
    performer = await open_tab(browser, show["performer_url"])
    page = performer.page
    await page.locator("#live-button:not([disabled])").wait_for(state="visible", timeout=20_000)
    await tab_to(page, "live-button")
    await page.keyboard.press("Enter")
    await wait_text(performer, "#perform-status", "Suorana")

    viewer = await Session.connect(node.url)
    try:
        await viewer.request("watch.join", code=show["code"], name="Eino")
        await viewer.request("chat.send", text="Ei sovi tähän", client_id="kb-1")
        await wait_text(performer, "#feed", "Ei sovi tähän")
        # moderate: the message's "Delete" button, Space presses it
        await tab_to(page, "Poista")
        await page.keyboard.press("Space")
        await eventually(lambda: _gone(performer, "Ei sovi tähän"), 10, interval=PAGE_INTERVAL)
        # back up the page to the caption line: type, Enter shows it to the viewers
        await tab_to(page, "caption-input", key="Shift+Tab")
        await page.keyboard.type("Hyvää iltaa kaikille")
        await page.keyboard.press("Enter")
        await wait_text(performer, "#caption-status", "Hyvää iltaa kaikille")
        # the show's details open from the keyboard too
        await tab_to(page, "Näytä esityksen tiedot: linkit, avaimet ja QR-koodi")
        await page.keyboard.press("Enter")
        assert await page.locator("#studio-details").get_attribute("open") is not None
        await tab_to(page, "Kopioi")
    finally:
        await viewer.close()
        await performer.context.close()


async def _gone(performer: Any, text: str) -> bool:
    return text not in await text_of(performer, "#feed")


async def test_organise_by_keyboard_alone(node: Node, browser: Browser) -> None:
    desk = await open_tab(browser, node.url + "/organise")
    page = desk.page
    await page.get_by_label("Järjestäjän avain").wait_for(state="visible", timeout=10_000)
    await tab_to(page, "org-key")
    await page.keyboard.type(ORGANISER_KEY)
    await page.keyboard.press("Enter")
    await page.locator("#show-title").wait_for(state="visible", timeout=10_000)
    await tab_to(page, "show-title")
    await page.keyboard.type("Näppäinkonsertti")
    await page.keyboard.press("Tab")
    await page.keyboard.type("Kamarikuoro Kaiku")
    await tab_to(page, "Luo esitys")
    await page.keyboard.press("Enter")
    await wait_text(desk, "#create-status", "Esitys ”Näppäinkonsertti” on luotu.")
    await wait_text(desk, "#org-shows", "Kamarikuoro Kaiku")
    await desk.context.close()
