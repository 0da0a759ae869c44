"""The Watch page (`/`) as its viewers use it, in headless Chromium against the real server: the
code tapped on the keypad, a name, the show live with captions, reactions and chat; axe-core's WCAG
checks in every main state in Finnish, Swedish and English; a journey by keyboard alone; and the
page at 200 % zoom with no text overlapping or cut off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page

from clients.client import Session
from tests.a11y import assert_accessible, assert_targets_large, layout_problems, needs_axe
from tests.browser import (
    PAGE_INTERVAL,
    SCREENSHOTS,
    Tab,
    chromium,
    go_live,
    meter,
    needs_chromium,
    open_tab,
    serve,
    text_of,
    wait_media_flowing,
    wait_text,
)
from tests.helpers import eventually
from tests.nodes import Node

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.asyncio(loop_scope="module"),
]

# What each language's page says in the states the tests look for.
SAYS = {
    "fi": {"code": "Esityksen koodi", "name": "Nimesi muille katsojille", "go": "Katso esitystä",
           "scheduled": "Esitys ei ole vielä alkanut.", "ended": "Esitys on päättynyt.",
           "chat": "Kirjoita viesti"},
    "sv": {"code": "Föreställningens kod", "name": "Ditt namn för de andra tittarna",
           "go": "Titta på föreställningen", "scheduled": "Föreställningen har inte börjat än.",
           "ended": "Föreställningen är slut.", "chat": "Skriv ett meddelande"},
    "en": {"code": "The show's code", "name": "Your name for the other viewers",
           "go": "Watch the show", "scheduled": "The show has not started yet.",
           "ended": "The show has ended.", "chat": "Write a message"},
}  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[Node]:
    async with serve() as running:
        yield running


async def end_show(node: Node, show: dict[str, Any]) -> None:
    """The performer ends the show (from their own connection)."""
    session = await Session.connect(node.url)
    try:
        await session.request("perform.end", show=show["id"], token=show["performer_token"])
    finally:
        await session.close()


async def tap_code(viewer: Tab, code: str) -> None:
    """Tap the six digits on the keypad, then OK."""
    for digit in code:
        await viewer.page.get_by_role("button", name=digit, exact=True).click()
    assert await viewer.page.locator("#code").input_value() == f"{code[:3]} {code[3:]}"
    await viewer.page.get_by_role("button", name="OK", exact=True).click()


# Where the picture is: its size, how far it has played and what was decoded.
PICTURE = """async () => {
  const video = document.getElementById('video');
  let frames = 0;
  const stats = await window.lampio.pc?.getStats();
  stats?.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') frames = r.framesDecoded;
  });
  return {width: video.videoWidth, time: video.currentTime, frames};
}"""


async def test_keypad_to_a_live_show_with_captions_reactions_and_chat(
    node: Node, browser: Browser
) -> None:
    show = await node.create_show()
    performer = await go_live(browser, show)
    viewer = await open_tab(browser, node.url + "/")
    card = viewer.page.locator("#live-list li", has_text="Kevätkonsertti")
    await card.wait_for(timeout=10_000)  # the live show is on the front page, as a card
    await tap_code(viewer, show["code"])

    name = viewer.page.get_by_label("Nimesi muille katsojille")
    await name.wait_for(state="visible", timeout=10_000)
    assert await viewer.page.locator("#front").is_hidden()  # one step at a time
    await wait_text(viewer, "#name-title", "Kevätkonsertti")
    await name.fill("Aino")
    await viewer.page.get_by_role("button", name="Katso esitystä").click()

    await wait_text(viewer, "#watch-status", "Nyt suorana.")
    await wait_media_flowing(viewer)
    first = await viewer.eval(PICTURE)
    later = await eventually(lambda: _moved_on(viewer, first), 20, interval=0.2)
    assert later["width"] > 0 and later["frames"] > first["frames"]
    assert await viewer.eval("() => document.getElementById('video').muted") is False

    # a helper types a caption in the studio: the viewer sees it under the picture
    caption = performer.page.get_by_label("Tekstitysrivi")
    await caption.fill("Hyvää iltaa, rakkaat kuulijat!")
    await caption.press("Enter")
    await wait_text(viewer, "#caption", "Hyvää iltaa, rakkaat kuulijat!")
    await wait_text(performer, "#caption-status", "Katsojat näkevät nyt:")
    toggle = viewer.page.get_by_role("button", name="Näytä tekstitys")
    await toggle.click()  # captions off: hidden, and the button says so
    assert await toggle.get_attribute("aria-pressed") == "false"
    assert await viewer.page.locator("#caption").is_hidden()
    await toggle.click()
    assert await viewer.page.locator("#caption").is_visible()

    # volume in steps, no dragging
    await wait_text(viewer, "#volume-value", "80 %")
    await viewer.page.get_by_role("button", name="Hiljemmin").click()
    await wait_text(viewer, "#volume-value", "60 %")
    assert abs(await viewer.eval("() => document.getElementById('video').volume") - 0.6) < 0.01

    # applause moves the performer's meter; a message reaches the studio's feed
    for _ in range(2):
        await viewer.page.get_by_role("button", name="Taputa").click()
    await eventually(lambda: _meter_moved(performer), 10, interval=PAGE_INTERVAL)
    await viewer.page.get_by_label("Kirjoita viesti").fill("Kiitos, ihanaa!")
    await viewer.page.get_by_label("Kirjoita viesti").press("Enter")
    await wait_text(performer, "#feed", "Kiitos, ihanaa!")
    assert "Aino" in await text_of(performer, "#feed .who")
    await viewer.screenshot("watch-live")

    # the chat can be hidden, and leaving goes back to the programme; the name is remembered
    await viewer.page.get_by_role("button", name="Näytä keskustelu").click()
    assert await viewer.page.locator("#foyer").is_hidden()
    # one tap makes the show fill the whole screen, and one more brings the browser back
    full = viewer.page.get_by_role("button", name="Koko näyttö")
    await full.click()
    await eventually(
        lambda: viewer.eval("() => document.fullscreenElement !== null"), 5, interval=PAGE_INTERVAL
    )
    await eventually(lambda: _pressed(full), 5, interval=PAGE_INTERVAL)
    await full.click()
    await eventually(
        lambda: viewer.eval("() => document.fullscreenElement === null"), 5, interval=PAGE_INTERVAL
    )
    await viewer.page.get_by_role("button", name="Lopeta katselu").click()
    # before the end, one question first; skipping it leaves in one tap (test_browser_feedback)
    await viewer.page.get_by_role("button", name="Ohita ja lopeta katselu").click()
    await card.get_by_role("button").click()
    assert await viewer.page.get_by_label("Nimesi muille katsojille").input_value() == "Aino"


async def _moved_on(viewer: Tab, first: dict[str, Any]) -> dict[str, Any]:
    now: dict[str, Any] = await viewer.eval(PICTURE)
    return now if now["time"] > first["time"] + 0.5 and now["frames"] > first["frames"] else {}


async def _meter_moved(performer: Tab) -> bool:
    return await meter(performer, "applause") >= 1


@needs_axe
@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
async def test_every_state_of_watch_is_accessible(node: Node, browser: Browser, lang: str) -> None:
    says = SAYS[lang]
    show = await node.create_show("Kevätkonsertti")
    viewer = await open_tab(browser, node.url + "/")
    page = viewer.page
    await page.locator(f"[data-lang={lang}]").click()
    await page.reload()  # the choice is remembered
    assert await page.get_attribute("html", "lang") == lang
    assert await page.locator(f"[data-lang={lang}]").get_attribute("aria-pressed") == "true"
    await page.locator("#coming-list li").first.wait_for(timeout=10_000)
    await assert_accessible(page, f"{lang}: programme and keypad")
    await assert_targets_large(page, f"{lang}: programme and keypad")

    await page.get_by_label(says["code"]).fill(show["code"])
    await page.get_by_label(says["code"]).press("Enter")
    await page.get_by_label(says["name"]).wait_for(state="visible", timeout=10_000)
    await assert_accessible(page, f"{lang}: name step")

    await page.get_by_label(says["name"]).fill("Aino")
    await page.get_by_role("button", name=says["go"]).click()
    await wait_text(viewer, "#watch-status", says["scheduled"])
    await page.get_by_label(says["chat"]).fill("Hei kaikki")
    await page.get_by_label(says["chat"]).press("Enter")
    await eventually(lambda: _acknowledged(page), 10, interval=PAGE_INTERVAL)
    assert await page.locator("#foyer").is_visible()
    await assert_accessible(page, f"{lang}: watching, chat open")
    await assert_targets_large(page, f"{lang}: watching")

    await end_show(node, show)
    await wait_text(viewer, "#watch-status", says["ended"])
    await assert_accessible(page, f"{lang}: ended")
    await viewer.context.close()


async def _acknowledged(page: Page) -> bool:
    return await page.locator("#chat li").count() == 1 and (
        await page.locator("#chat li.pending").count() == 0
    )


async def focused(page: Page) -> dict[str, Any]:
    """What has the keyboard focus, and whether a focus ring shows."""
    result: dict[str, Any] = await page.evaluate(
        """() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return {id: el.id, text: (el.textContent || '').trim(), tag: el.tagName,
              ring: el.matches(':focus-visible')
                && (style.outlineStyle !== 'none' || style.boxShadow !== 'none')};
    }"""
    )
    return result


async def tab_to(page: Page, wanted: str, limit: int = 80) -> dict[str, Any]:
    """Press Tab until the element with this id or text has the focus (which must show)."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        now = await focused(page)
        if wanted == now["id"] or now["text"].endswith(wanted):  # (a picture may come first)
            assert now["ring"], f"no visible focus on {now}"
            return now
    raise AssertionError(f"Tab never reached {wanted!r}")


async def test_watch_by_keyboard_alone(node: Node, browser: Browser) -> None:
    show = await node.create_show("Yhteislaulu")
    viewer = await open_tab(browser, node.url + "/")
    page = viewer.page
    await page.locator("#coming-list li").first.wait_for(timeout=10_000)

    await tab_to(page, "code")
    await page.keyboard.type(show["code"])
    assert await page.locator("#code").input_value() == f"{show['code'][:3]} {show['code'][3:]}"
    await page.keyboard.press("Enter")
    # the name step takes the focus
    await eventually(lambda: _focus_is(page, "name"), 10, interval=PAGE_INTERVAL)
    await page.keyboard.type("Eino")
    await page.keyboard.press("Enter")
    await wait_text(viewer, "#watch-status", "Esitys ei ole vielä alkanut.")

    await page.emulate_media(reduced_motion="reduce")
    await tab_to(page, "Taputa")
    await page.keyboard.press("Space")
    await wait_text(viewer, "#react-lobby", "Taputuksia")
    assert await page.locator("#react-float .bubble").count() == 0  # no motion when asked
    await tab_to(page, "chat-input")
    await page.keyboard.type("Tervehdys näppäimistöltä")
    await page.keyboard.press("Enter")
    await eventually(lambda: _acknowledged(page), 10, interval=PAGE_INTERVAL)
    await tab_to(page, "back-button")
    await page.keyboard.press("Enter")
    await page.locator("#front").wait_for(state="visible", timeout=5_000)
    assert await _focus_is(page, "code")


async def test_lobby_microphone_and_the_show_sound_lowered(node: Node, browser: Browser) -> None:
    # before the show starts the lobby may talk (docs/protocol.md, "Lobby voice")
    show = await node.create_show("Lukupiiri")
    aino = await open_tab(browser, show["viewer_url"])
    await eventually(lambda: text_of(aino, "#friend-code"), 10, interval=PAGE_INTERVAL)
    code = await text_of(aino, "#friend-code")
    eino = await open_tab(browser, f"{show['viewer_url']}&lobby={code}")
    mic = eino.page.get_by_role("button", name="Mikrofoni")
    await mic.wait_for(state="visible", timeout=15_000)
    assert await mic.get_attribute("aria-pressed") == "false"
    await mic.click()
    await eventually(lambda: _pressed(mic), 10, interval=PAGE_INTERVAL)
    await wait_text(eino, "#voice-note", "Mikrofonisi on päällä.")
    # Aino hears Eino: her show's sound is lowered meanwhile, and she is told who talks
    await wait_text(aino, "#volume-value", "hiljennetty puheen ajaksi", timeout=15)
    await wait_text(aino, "#voice-note", "Puhuu nyt: Katsoja")
    await mic.click()
    await eventually(lambda: _not_pressed(mic), 10, interval=PAGE_INTERVAL)
    await eventually(lambda: _not_ducked(aino), 15, interval=PAGE_INTERVAL)


async def _pressed(button: Any) -> bool:
    return bool(await button.get_attribute("aria-pressed") == "true")


async def _not_pressed(button: Any) -> bool:
    return bool(await button.get_attribute("aria-pressed") == "false")


async def _not_ducked(viewer: Tab) -> bool:
    return "hiljennetty" not in await text_of(viewer, "#volume-value")


async def _focus_is(page: Page, element_id: str) -> bool:
    return bool(await page.evaluate("(id) => document.activeElement?.id === id", element_id))


@pytest.mark.parametrize(
    ("size", "scale"),
    [((512, 384), 2), ((1920, 1080), 1)],
    ids=["1024x768-at-200%", "1920x1080"],
)
async def test_zoom_and_screen_sizes_keep_text_whole(
    node: Node, browser: Browser, size: tuple[int, int], scale: int
) -> None:
    # 200 % zoom on a 1024×768 tablet is a 512×384 CSS-pixel viewport at twice the pixel density
    show = await node.create_show("Hyvin pitkä esityksen nimi: Kevään ja kesän laulut yhdessä")
    context = await browser.new_context(
        locale="fi-FI",
        viewport={"width": size[0], "height": size[1]},
        device_scale_factor=scale,
        service_workers="block",
    )
    page = await context.new_page()
    await page.goto(node.url + "/")
    await page.locator("#coming-list li").first.wait_for(timeout=10_000)
    await layout_problems(page, "programme and keypad")
    await page.get_by_label("Esityksen koodi").fill(show["code"])
    await page.get_by_label("Esityksen koodi").press("Enter")
    await page.get_by_label("Nimesi muille katsojille").fill("Aino Maria Virtanen-Korhonen")
    await layout_problems(page, "name step")
    await page.get_by_label("Nimesi muille katsojille").press("Enter")
    await page.locator("#watch").wait_for(state="visible", timeout=10_000)
    host = await Session.connect(node.url)
    try:
        await host.request("perform.host", show=show["id"], token=show["performer_token"])
        await host.request("caption.send", text="Nyt laulamme yhdessä ensimmäisen laulun")
        await page.get_by_label("Kirjoita viesti").fill("Pitkä viesti " * 8)
        await page.get_by_label("Kirjoita viesti").press("Enter")
        await eventually(lambda: _acknowledged(page), 10, interval=PAGE_INTERVAL)
        await layout_problems(page, "watching, chat open")
        if SCREENSHOTS:
            path = f"{SCREENSHOTS}/watch-{size[0]}x{size[1]}.png"
            await page.screenshot(path=path, full_page=True)
    finally:
        await host.close()
        await context.close()
