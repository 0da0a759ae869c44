"""One screen, no scrolling: the Watch page's show view and the studio's live view measured by
their element boxes in headless Chromium at the sizes they are used on (issue 17).

For each viewport, every named control is inside the viewport, the page needs no scrolling
(``scrollHeight <= innerHeight``) and no two named controls overlap. One browser, one node and one
page per view are shared by the viewports: the page is resized (Emulation.setDeviceMetricsOverride,
through Playwright's ``set_viewport_size``) and measured again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from clients.client import Cameras, Performer, Session
from media.sources import TestPatternTrack
from tests.a11y import accessible_in_every_language, assert_targets_large, needs_axe
from tests.browser import (
    SCREENSHOTS,
    Tab,
    chromium,
    go_live,
    needs_chromium,
    open_tab,
    serve,
    wait_text,
)
from tests.helpers import eventually
from tests.nodes import Node, start_performer

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.asyncio(loop_scope="module"),
]

# Landscape tablet, laptop, portrait tablet, television.
WATCH_SIZES = [(1024, 768), (1280, 800), (768, 1024), (1920, 1080)]
STUDIO_SIZES = [(1280, 800), (1920, 1080)]

# What a viewer must see at once while watching, by name (each selector may match several).
WATCH_CONTROLS = {
    "picture": "#video",
    "status": "#watch-status",
    "reactions": "#reactions .react",
    "volume": "#volume-down, #volume-up",
    "toggles": "#captions-button, #chat-button",
    "leave": "#back-button",
    "chat input": "#chat-input",
    "send": "#chat-form button[type=submit]",
}

# The show the viewer of ``watching`` watches (for the intermission's test).
WATCHED: dict[str, dict[str, Any]] = {}

# What a performer must see at once while live.
STUDIO_CONTROLS = {
    "preview": "#preview",
    "status": "#perform-status",
    "pause": "#pause-button",
    "end": "#end-button",
    "audience": "#audience",
    "meters": ".meters li",
    "feed": "#feed",
    "caption input": "#caption-input",
    "caption send": "#caption-form button[type=submit]",
    "details": "#studio-details > summary",
}

# The boxes of the named controls (the visible ones), the page's height and the viewport's.
MEASURE = """(controls) => {
  const boxes = [];
  for (const [name, selector] of Object.entries(controls)) {
    const found = [...document.querySelectorAll(selector)];
    const shown = found.filter((el) => el.getClientRects().length > 0);
    if (!shown.length) boxes.push({name, missing: true});
    for (const el of shown) {
      const r = el.getBoundingClientRect();
      boxes.push({name: `${name} ${el.id || (el.textContent || '').trim().slice(0, 12)}`,
                  l: r.left, t: r.top, r: r.right, b: r.bottom});
    }
  }
  return {boxes, scrollHeight: document.documentElement.scrollHeight,
          scrollWidth: document.documentElement.scrollWidth,
          innerHeight, innerWidth};
}"""


# The elements of a selector whose middle shows something else (scrolled out of their box, or
# covered): what a viewer does not see although its box is in the viewport.
SEEN = """(selector) => [...document.querySelectorAll(selector)]
  .filter((el) => el.getClientRects().length > 0)
  .filter((el) => {
    const r = el.getBoundingClientRect();
    const at = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
    return !(at && (el === at || el.contains(at)));
  })
  .map((el) => el.id || el.dataset.camera || el.tagName)"""


def problems(measured: dict[str, Any]) -> list[str]:
    """What is wrong with the measured page: a control missing, outside, overlapping another;
    a page that scrolls."""
    found = []
    width, height = measured["innerWidth"], measured["innerHeight"]
    if measured["scrollHeight"] > height:
        found.append(f"the page scrolls: {measured['scrollHeight']} px tall in {height}")
    if measured["scrollWidth"] > width:
        found.append(f"the page scrolls sideways: {measured['scrollWidth']} px in {width}")
    boxes = [box for box in measured["boxes"] if not box.get("missing")]
    found += [f"not shown: {box['name']}" for box in measured["boxes"] if box.get("missing")]
    for box in boxes:
        if box["l"] < -0.5 or box["t"] < -0.5 or box["r"] > width + 0.5 or box["b"] > height + 0.5:
            found.append(f"outside the viewport: {box}")
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            x = min(a["r"], b["r"]) - max(a["l"], b["l"])
            y = min(a["b"], b["b"]) - max(a["t"], b["t"])
            if x > 1 and y > 1:
                found.append(f"overlap: {a['name']} / {b['name']}")
    return found


async def measure(tab: Tab, size: tuple[int, int], controls: dict[str, str]) -> dict[str, Any]:
    """The page at ``size``, measured once its layout has settled."""
    await tab.page.set_viewport_size({"width": size[0], "height": size[1]})
    await tab.eval("() => new Promise((done) => requestAnimationFrame(() => setTimeout(done)))")
    measured: dict[str, Any] = await tab.eval(MEASURE, controls)
    print(f"{size[0]}x{size[1]}: {measured['scrollHeight']} px tall")
    if SCREENSHOTS:
        await tab.page.screenshot(path=f"{SCREENSHOTS}/layout-{size[0]}x{size[1]}.png")
    return measured


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[Node]:
    async with serve() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def watching(node: Node, browser: Browser) -> AsyncIterator[Tab]:
    """A viewer watching a live show (from the Python performer), a caption and a message shown."""
    show = await node.create_show("Hyvin pitkä esityksen nimi: Kevään ja kesän laulut yhdessä")
    performer: Performer = await start_performer(node, show, "video/VP8")
    host = await Session.connect(node.url)
    viewer = await open_tab(browser, show["viewer_url"])
    WATCHED["show"] = show
    try:
        await wait_text(viewer, "#watch-status", "suorana")
        sound = viewer.page.locator("#sound-button")
        if await sound.is_visible():
            await sound.click()
        await host.request("perform.host", show=show["id"], token=show["performer_token"])
        await host.request("caption.send", text="Nyt laulamme yhdessä ensimmäisen laulun")
        await wait_text(viewer, "#caption", "Nyt laulamme")
        field = viewer.page.get_by_label("Kirjoita viesti")
        await field.fill("Kiitos, ihanaa!")
        await field.press("Enter")
        await wait_text(viewer, "#chat", "Kiitos, ihanaa!")
        yield viewer
    finally:
        await viewer.context.close()
        await host.close()
        await performer.stop()
        await performer.session.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def studio(node: Node, browser: Browser) -> AsyncIterator[Tab]:
    """The studio live, a viewer's message in the feed and a caption typed."""
    show = await node.create_show("Hyvin pitkä esityksen nimi: Kevään ja kesän laulut yhdessä")
    performer = await go_live(browser, show)
    viewer = await Session.connect(node.url)
    try:
        await viewer.request("watch.join", code=show["code"], name="Eino")
        await viewer.request("chat.send", text="Iltaa studioon!", client_id="layout-1")
        await wait_text(performer, "#feed", "Iltaa studioon!")
        await wait_text(performer, "#audience", "1")
        caption = performer.page.get_by_label("Tekstitysrivi")
        await caption.fill("Tervetuloa")
        await caption.press("Enter")
        await wait_text(performer, "#caption-status", "Tervetuloa")
        yield performer
    finally:
        await viewer.close()
        await performer.context.close()


@pytest.mark.parametrize("size", WATCH_SIZES, ids=[f"{w}x{h}" for w, h in WATCH_SIZES])
async def test_watch_show_view_fits_one_screen(watching: Tab, size: tuple[int, int]) -> None:
    measured = await measure(watching, size, WATCH_CONTROLS)
    assert not problems(measured), f"{size}: {problems(measured)}"


@pytest.mark.parametrize("size", STUDIO_SIZES, ids=[f"{w}x{h}" for w, h in STUDIO_SIZES])
async def test_studio_live_view_fits_one_screen(studio: Tab, size: tuple[int, int]) -> None:
    measured = await measure(studio, size, STUDIO_CONTROLS)
    assert not problems(measured), f"{size}: {problems(measured)}"


@needs_axe
async def test_the_one_screen_views_are_accessible(watching: Tab, studio: Tab) -> None:
    """axe finds nothing in fi, sv and en in the show view (live, a caption and a message) and the
    studio's live view with its details open; the targets stay large."""
    await watching.page.set_viewport_size({"width": 1024, "height": 768})
    await accessible_in_every_language(watching, "Watch show view at 1024×768")
    await assert_targets_large(watching.page, "Watch show view at 1024×768")
    await studio.page.set_viewport_size({"width": 1280, "height": 800})
    await studio.page.locator("#studio-details > summary").click()
    await accessible_in_every_language(studio, "studio live view, details open, at 1280×800")
    await studio.page.locator("#studio-details > summary").click()


async def test_an_intermission_with_cameras_fits_one_screen(node: Node, watching: Tab) -> None:
    """In an intermission, with the viewer's camera on (by keyboard) and another member's tile
    shown, the show view still fits at every size: the picture, the reactions, the chat's input,
    the Camera button and the tiles in view, nothing overlapping, no scrolling. The module's last
    test: it leaves the show as it found it."""
    show = WATCHED["show"]
    host = await Session.connect(node.url)
    other = Cameras(await Session.connect(node.url))
    button = watching.page.locator("#camera-button")
    try:
        await host.request("perform.host", show=show["id"], token=show["performer_token"])
        await host.request("voice.intermission", open=True)
        await other.session.request("watch.join", code=show["code"], name="Aino")
        await other.join(TestPatternTrack(320, 240, fps=15), slots=1)
        await other.set(True)
        await button.wait_for(state="visible", timeout=20_000)
        await button.focus()
        await watching.page.keyboard.press("Enter")
        await wait_text(watching, "#camera-note", "Kamerasi on päällä")
        await eventually(
            lambda: watching.eval(
                "() => [...document.querySelectorAll('#camera-tiles .camera-tile')]"
                ".some((li) => li.dataset.camera !== 'self'"
                " && li.querySelector('video').videoWidth > 0)"
            ),
            20,
            "Aino's tile decoded",
            interval=0.25,
        )
        controls = {**WATCH_CONTROLS, "camera": "#camera-button", "tiles": "#camera-tiles li"}
        found = {}
        for size in WATCH_SIZES:
            wrong = problems(await measure(watching, size, controls))
            # each tile seen, not merely laid out: what is at its middle is the tile itself
            hidden = await watching.eval(SEEN, "#camera-tiles li, #chat-input")
            if wrong or hidden:
                found[size] = [*wrong, *(f"covered or scrolled away: {h}" for h in hidden)]
        assert not found, found
    finally:
        if await button.get_attribute("aria-pressed") == "true":
            await button.click()
        await other.close()
        await other.session.close()
        await host.request("voice.intermission", open=False)
        await host.close()
