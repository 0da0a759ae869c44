"""The performer studio (`/studio`) in headless Chromium against the real server, with the fake
camera and microphone: devices, going live, pausing, the audience (care-home head counts), the
audience sound, the intermission and a lobby on stage, what to share, and ending the show; and
axe-core's WCAG checks before and while live in Finnish, Swedish and English.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from clients.client import Session
from tests.a11y import assert_accessible, layout_problems, needs_axe
from tests.browser import (
    PAGE_INTERVAL,
    Tab,
    chromium,
    go_live,
    needs_chromium,
    open_tab,
    serve,
    text_of,
    wait_text,
)
from tests.helpers import eventually
from tests.nodes import Node
from tests.pairing import paired_screen

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[Node]:
    async with serve() as running:
        yield running


async def test_studio_from_going_live_to_the_end(node: Node, browser: Browser) -> None:
    show = await node.create_show()
    # the old address of the performer link still opens the studio
    old = await open_tab(browser, show["performer_url"].replace("/studio#", "/perform#"))
    await wait_text(old, "#show-title", "Kevätkonsertti")
    await old.context.close()

    performer = await go_live(browser, show)
    page = performer.page
    await performer.context.grant_permissions(["clipboard-read", "clipboard-write"])
    assert await page.locator("#camera option").count() >= 1  # the devices to choose from
    microphones = await page.locator("#microphone option").all_text_contents()
    if len(microphones) > 1:  # another microphone while live: the audience hears that one
        await page.get_by_label("Mikrofoni", exact=True).select_option(index=1)
        await eventually(lambda: _sends_from(performer, microphones[1]), 10, interval=PAGE_INTERVAL)

    # a care-home screen counts its residents, a viewer counts once
    screen, phone = await paired_screen(node.url, 5, "Kotikallio")
    viewer = await Session.connect(node.url)
    try:
        await screen.request("watch.join", code=show["code"], name="Kotikallio", screen=True)
        joined = await viewer.request("watch.join", code=show["code"], name="Aino")
        await wait_text(performer, "#audience", "Katsojia nyt: 6")

        hall = page.get_by_role("button", name="Yleisön äänet")
        assert await hall.get_attribute("aria-pressed") == "true"
        await hall.click()
        assert await hall.get_attribute("aria-pressed") == "false"

        await page.get_by_role("button", name="Pidä tauko").click()
        await wait_text(performer, "#perform-status", "Tauolla")
        await page.get_by_role("button", name="Jatka lähetystä").click()
        await wait_text(performer, "#perform-status", "Suorana")

        # the intermission opens for every viewer; Aino's lobby goes on stage and comes off
        await page.get_by_role("button", name="Avaa väliaika").click()
        state = await viewer.next_event("voice.state")
        assert state["intermission"] is True
        await wait_text(performer, "#voice-status", "Väliaika on auki")
        assert await page.get_by_role("button", name="Sulje väliaika").is_visible()
        lobby = joined["lobby"]
        invite = page.get_by_role("button", name=f"Kutsu lavalle: lämpiö {lobby['code']}")
        await invite.wait_for(timeout=10_000)
        assert "Aino" in await text_of(performer, "#lobby-list")
        await invite.click()
        while (state := await viewer.next_event("voice.state"))["stage"] is None:
            pass
        assert state["stage"] == lobby["id"]
        await wait_text(performer, "#voice-status", f"Lavalla nyt: lämpiö {lobby['code']}")
        await page.get_by_role("button", name=f"Lopeta lavavuoro: lämpiö {lobby['code']}").click()
        await wait_text(performer, "#lobby-list", "Kutsu lavalle")

        # what to share, behind "show details": the code, the QR code of the viewer link, the links
        await page.get_by_text("Näytä esityksen tiedot").click()
        assert await text_of(performer, "#show-code") == show["code_display"]
        await eventually(
            lambda: performer.eval("() => document.getElementById('qr').naturalWidth"),
            10,
            interval=PAGE_INTERVAL,
        )
        await page.get_by_role("button", name="Kopioi: Katsojien linkki").click()
        await wait_text(performer, "#copy-status", "Kopioitu.")
        assert await performer.eval("() => navigator.clipboard.readText()") == show["viewer_url"]
        await performer.screenshot("studio-live")
        await page.get_by_text("Näytä esityksen tiedot").click()  # the details close again

        # ending asks first, then everyone is told
        await page.get_by_role("button", name="Päätä esitys").click()
        await page.get_by_role("button", name="Kyllä, päätä esitys").click()
        await wait_text(performer, "#perform-status", "Esitys on päättynyt.")
        while (await viewer.next_event("show.state")).get("state") != "ended":
            pass
        assert await page.get_by_role("button", name="Aloita lähetys").is_hidden()
    finally:
        await screen.close()
        await phone.close()
        await viewer.close()


async def _sends_from(performer: Tab, label: str) -> bool:
    sent = await performer.eval(
        "() => window.lampio.pc.getSenders().map((s) => s.track?.label ?? '')"
    )
    return label in sent


@needs_axe
async def test_studio_is_accessible_before_and_while_live(node: Node, browser: Browser) -> None:
    show = await node.create_show()
    performer = await open_tab(browser, show["performer_url"])
    page = performer.page
    await page.locator("#live-button").wait_for(state="visible", timeout=20_000)
    viewer = await Session.connect(node.url)
    try:
        await viewer.request("watch.join", code=show["code"], name="Eino")
        await viewer.request("chat.send", text="Iltaa studioon!", client_id="a11y-1")
        await wait_text(performer, "#feed", "Iltaa studioon!")
        for lang in ("fi", "sv", "en"):
            await page.locator(f"[data-lang={lang}]").click()
            assert await page.get_attribute("html", "lang") == lang
            await assert_accessible(page, f"{lang}: studio before live")
        await page.locator("[data-lang=fi]").click()
        # 200 % zoom on a 1024×768 tablet: nothing overlaps, nothing is cut
        await page.set_viewport_size({"width": 512, "height": 384})
        await layout_problems(page, "studio at 200 %")
        await page.set_viewport_size({"width": 1024, "height": 900})
        await page.get_by_role("button", name="Aloita lähetys").click()
        await wait_text(performer, "#perform-status", "Suorana")
        await page.get_by_label("Tekstitysrivi").fill("Tervetuloa")
        await page.get_by_label("Tekstitysrivi").press("Enter")
        await wait_text(performer, "#caption-status", "Tervetuloa")
        for lang in ("fi", "sv", "en"):
            await page.locator(f"[data-lang={lang}]").click()
            await assert_accessible(page, f"{lang}: studio live")
        await page.locator("[data-lang=fi]").click()  # the choice is remembered: back to Finnish
    finally:
        await viewer.close()
