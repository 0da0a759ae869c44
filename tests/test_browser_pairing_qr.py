"""Pairing a care-home screen by its QR code, with the keyboard alone on the phone (issue 17).

The TV's QR code is decoded from a screenshot of the page, as a phone's camera would see it, with
zxing-cpp (a dev dependency: a real decoder, not the library that drew the code); the decoded URL
is opened as the staff phone, which takes the code from the fragment, and staff only type their
key and confirm: Tab, typing and Enter, nothing else.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, Page

from tests.a11y import accessible_in_every_language, needs_axe
from tests.browser import PAGE_INTERVAL, chromium, needs_chromium, open_tab, serve, wait_text
from tests.helpers import eventually
from tests.nodes import Node
from tests.pairing import staff_key

pytestmark = [pytest.mark.browser, needs_chromium, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[Node]:
    async with serve() as running:
        yield running


async def focused_id(page: Page) -> str:
    return str(await page.evaluate("() => document.activeElement?.id ?? ''"))


async def _qr_shown(page: Page) -> bool:
    return bool(
        await page.evaluate(
            "() => !document.getElementById('pair-qr-figure').hidden"
            " && document.getElementById('pair-qr').naturalWidth > 0"
        )
    )


@needs_axe
async def test_the_qr_code_pairs_the_screen_by_keyboard(node: Node, browser: Browser) -> None:
    key = await staff_key(node.url, "Palvelutalo Koivikko")
    tv = await open_tab(browser, node.url + "/screen")
    await tv.page.locator("#pair-code").wait_for(state="visible", timeout=10_000)
    await eventually(lambda: _qr_shown(tv.page), 10, interval=PAGE_INTERVAL)
    code = "".join((await tv.page.locator("#pair-code").text_content() or "").split())
    alt = await tv.page.locator("#pair-qr").get_attribute("alt") or ""
    assert f"{node.url}/screen/pair" in alt  # said in words too, and the address is on screen
    for width, height in [(1024, 768), (1920, 1080)]:  # the code and the QR code on one screen
        await tv.page.set_viewport_size({"width": width, "height": height})
        for part in ("#pair-code", "#pair-qr"):
            box = await tv.page.locator(part).bounding_box()
            assert box is not None and box["y"] + box["height"] <= height, (part, width, box)
        await tv.screenshot(f"screen-pairing-qr-{width}x{height}")
    await accessible_in_every_language(tv, "/screen pairing with its QR code")

    shot = await tv.page.locator("#pair-qr").screenshot()
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)).convert("L"))
    assert [result.text for result in found] == [f"{node.url}/screen/pair#code={code}"]

    phone = await open_tab(browser, found[0].text)
    page = phone.page
    # the key first (the phone has none yet): it has the focus; typed, then Enter
    await eventually(lambda: _focus_is(page, "staff-key"), 10, interval=PAGE_INTERVAL)
    assert "code=" not in page.url  # the code left the address at once
    await page.keyboard.type(key)
    await page.keyboard.press("Enter")
    # the remote opens with the code filled in and the focus on "Connect the screen"
    await eventually(lambda: _focus_is(page, "pair-submit"), 10, interval=PAGE_INTERVAL)
    assert await page.locator("#pair-code-input").input_value() == f"{code[:3]} {code[3:]}"
    await wait_text(phone, "#pair-status", "Näytön koodi on valmiina")
    assert await page.evaluate("() => document.activeElement.matches(':focus-visible')")
    await page.keyboard.press("Enter")
    await wait_text(phone, "#pair-status", "on yhdistetty")
    await tv.page.locator("#pairing").wait_for(state="hidden", timeout=10_000)
    await phone.context.close()
    await tv.context.close()


async def test_the_pairing_qr_endpoint_wants_six_digits(node: Node) -> None:
    async with aiohttp.ClientSession() as http:
        for bad in ({"code": "12345"}, {"code": "abcdef"}, {"code": 123456}, {}):
            async with http.post(f"{node.url}/api/screens/pair-qr", json=bad) as response:
                assert response.status == 400, bad
        async with http.post(f"{node.url}/api/screens/pair-qr", json={"code": "123456"}) as ok:
            assert ok.status == 200
            assert ok.content_type == "image/svg+xml"


async def _focus_is(page: Page, element_id: str) -> bool:
    return await focused_id(page) == element_id
