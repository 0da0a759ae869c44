"""Headless Chromium for browser tests: Debian's /usr/bin/chromium, driven by Playwright, loopback.

Nothing is downloaded: Playwright only drives the system browser. The node runs in-process, on a
port chosen up front so that its public URL (and so the WebSocket Origin check) matches its address.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests import nodes
from tests.helpers import eventually
from tests.nodes import Node

CHROMIUM = Path("/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",  # a moving test picture and a beep, 20 fps
    "--use-fake-ui-for-media-stream",  # camera and microphone allowed without asking
    "--allow-loopback-in-peer-connection",  # ICE candidates on 127.0.0.1
    # As on a viewer's own browser (headless would otherwise play sound unasked): sound needs the
    # viewer's own key press or touch on the page first.
    "--autoplay-policy=document-user-activation-required",
]

# Skipped without Chromium, except in CI (CI set), where that fails: see tests/conftest.py.
needs_chromium = pytest.mark.needs(CHROMIUM, "headless Chromium (Debian's chromium package)")

# How often a check asks the page while waiting: each time is a round trip to Chromium.
PAGE_INTERVAL = 0.1

# Set LAMPIO_SCREENSHOTS=/some/dir to keep screenshots of the pages for a human to look at.
SCREENSHOTS = os.environ.get("LAMPIO_SCREENSHOTS")


@asynccontextmanager
async def chromium(*extra_args: str) -> AsyncIterator[Browser]:
    """One Chromium process with a fresh profile; pages go in separate contexts."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args], headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Tab:
    """A page in its own browser context, with what its console said (shown when a test fails)
    and the ``type`` of every message it sent on its WebSockets.

    Mind that Playwright runs ``evaluate`` and locator queries as if the user had touched the page
    (user activation), which unlocks sound: to see what the page does untouched, wait on ``sent``.
    """

    context: BrowserContext
    page: Page
    log: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    async def eval(self, expression: str, arg: Any = None) -> Any:
        """Evaluate JavaScript in the page."""
        return await self.page.evaluate(expression, arg)

    def record_sent(self, payload: str | bytes) -> None:
        """Note the type of a message the page sent."""
        try:
            message = json.loads(payload)
        except ValueError:
            message = {}
        self.sent.append(str(message.get("type")) if isinstance(message, dict) else "?")

    def console(self) -> str:
        """The page's console output so far, for failure messages."""
        return "\n".join(self.log[-40:])

    async def screenshot(self, name: str) -> Path | None:
        """Save a screenshot when LAMPIO_SCREENSHOTS names a directory."""
        if not SCREENSHOTS:
            return None
        path = Path(SCREENSHOTS) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(path), full_page=True)
        return path


async def open_tab(
    browser: Browser, url: str, *, locale: str = "fi-FI", init_script: str | None = None
) -> Tab:
    """A new context (own cookies, storage and permissions) with one page at ``url``; with
    ``init_script``, JavaScript that runs in every page before the page's own."""
    context = await browser.new_context(
        locale=locale, viewport={"width": 1024, "height": 900}, service_workers="block"
    )
    if init_script is not None:
        await context.add_init_script(init_script)
    page = await context.new_page()
    tab = Tab(context, page)
    page.on("console", lambda message: tab.log.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: tab.log.append(f"pageerror: {error}"))
    page.on("websocket", lambda ws: ws.on("framesent", tab.record_sent))
    await page.goto(url)
    return tab


@asynccontextmanager
async def serve(**settings: object) -> AsyncIterator[Node]:
    """The node on a free loopback port whose public URL is its real address, on the in-process
    bus (one node: no Redis needed)."""
    async with nodes.serve(None, public=True, **settings) as node:
        yield node


async def text_of(tab: Tab, selector: str) -> str:
    """The text of the first element ``selector`` finds ("" if it has none)."""
    return (await tab.page.locator(selector).text_content()) or ""


async def wait_text(tab: Tab, selector: str, wanted: str, timeout: float = 20) -> None:
    """Wait until the element's text contains ``wanted``; fail with the page's console."""
    try:
        await eventually(
            lambda: _contains(tab, selector, wanted),
            timeout,
            f"{wanted!r} in {selector}",
            interval=PAGE_INTERVAL,
        )
    except AssertionError as error:
        raise AssertionError(
            f"{error}\n{selector}: {await text_of(tab, selector)!r}\nconsole:\n{tab.console()}"
        ) from None


async def _contains(tab: Tab, selector: str, wanted: str) -> bool:
    return wanted in await text_of(tab, selector)


async def meter(performer: Tab, kind: str) -> int:
    """The studio's count of the reactions of ``kind``."""
    return int(await text_of(performer, f"#meter-{kind}") or 0)


async def go_live(
    browser: Browser, show: dict[str, Any], codec: str | None = None, **tab: Any
) -> Tab:
    """The studio, camera on, live (the show's state says so)."""
    base, fragment = show["performer_url"].split("#")
    url = f"{base}?codec={codec}#{fragment}" if codec else show["performer_url"]
    performer = await open_tab(browser, url, **tab)
    button = performer.page.locator("#live-button")
    await button.wait_for(state="visible", timeout=20_000)
    assert await button.text_content() == "Aloita lähetys"
    await button.click()
    await wait_text(performer, "#perform-status", "Suorana")
    pause = performer.page.get_by_role("button", name="Pidä tauko")
    await pause.wait_for(state="visible", timeout=5_000)
    assert await button.is_hidden()  # one big button at a time
    return performer


# What the viewer page's peer connection has received so far (window.lampio: the pages' test hook).
RECEIVED = """async () => {
  const pc = window.lampio.pc;
  const video = document.getElementById('video');
  const out = {frames: 0, audioPackets: 0, videoCodec: null, width: video.videoWidth};
  if (!pc) return out;
  const stats = await pc.getStats();
  stats.forEach((report) => {
    if (report.type !== 'inbound-rtp') return;
    if (report.kind === 'video') {
      out.frames = report.framesDecoded ?? 0;
      out.videoCodec = stats.get(report.codecId)?.mimeType ?? null;
    } else if (report.kind === 'audio') {
      out.audioPackets = report.packetsReceived ?? 0;
    }
  });
  return out;
}"""


async def received(viewer: Tab) -> dict[str, Any]:
    """What the viewer page has received so far: frames, audio packets, codec, picture width."""
    result: dict[str, Any] = await viewer.eval(RECEIVED)
    return result


async def flowing(viewer: Tab, frames: int, packets: int) -> dict[str, Any]:
    """What was received, if more than ``frames`` and ``packets`` and a picture shows; else {}."""
    now = await received(viewer)
    ok = now["frames"] > frames and now["audioPackets"] > packets and now["width"] > 0
    return now if ok else {}


async def wait_media_flowing(viewer: Tab, timeout: float = 20) -> dict[str, Any]:
    """Wait until video frames are decoded and shown and audio packets arrive, then grow."""
    try:
        first = await eventually(lambda: flowing(viewer, 0, 0), timeout, interval=0.2)
        return await eventually(
            lambda: flowing(viewer, first["frames"] + 10, first["audioPackets"] + 10),
            timeout,
            "media still flowing",
            interval=0.2,
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\nconsole:\n{viewer.console()}") from None
