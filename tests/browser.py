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

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from lampio_stream.app import create_app
from rooms.bus_memory import MemoryBus
from tests.conftest import ORGANISER_KEY, make_config
from tests.redis_server import free_port

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

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")

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


async def open_tab(browser: Browser, url: str, *, locale: str = "fi-FI") -> Tab:
    """A new context (own cookies, storage and permissions) with one page at ``url``."""
    context = await browser.new_context(
        locale=locale, viewport={"width": 1024, "height": 900}, service_workers="block"
    )
    page = await context.new_page()
    tab = Tab(context, page)
    page.on("console", lambda message: tab.log.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: tab.log.append(f"pageerror: {error}"))
    page.on("websocket", lambda ws: ws.on("framesent", tab.record_sent))
    await page.goto(url)
    return tab


@dataclass
class Node:
    """The app on a loopback port, its public URL being its real address."""

    server: TestServer
    url: str

    async def create_show(self, title: str = "Kevätkonsertti") -> dict[str, Any]:
        """A new show, with its secrets and links (as the organiser's API answers)."""
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.url}/api/shows",
                json={"title": title},
                headers={"Authorization": f"Bearer {ORGANISER_KEY}"},
            ) as response,
        ):
            assert response.status == 201
            show: dict[str, Any] = await response.json()
            return show


@asynccontextmanager
async def serve(**settings: object) -> AsyncIterator[Node]:
    """The node on a free loopback port, on the in-process bus (one node: no Redis needed)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = make_config(public_url=url, **settings)
    server = TestServer(create_app(config, bus=MemoryBus()), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield Node(server, url)
    finally:
        await server.close()
