"""The organiser's page through the real page in headless Chromium: sign in with the organiser key,
create a show, see its code, links and QR code, issue a staff key that really opens the screens'
remote, and revoke it; axe finds nothing in Finnish, Swedish and English. No media here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from clients.client import ProtocolError, Session
from tests.a11y import accessible_in_every_language, needs_axe
from tests.browser import chromium, needs_chromium, open_tab, serve, text_of, wait_text
from tests.nodes import ORGANISER_KEY, Node

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    needs_axe,
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(loop_scope="module")
async def node() -> AsyncIterator[Node]:
    async with serve() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


async def test_organiser_signs_in_creates_a_show_and_issues_a_staff_key(
    browser: Browser, node: Node
) -> None:
    desk = await open_tab(browser, node.url + "/organise")
    page = desk.page
    key = page.get_by_label("Järjestäjän avain")
    await key.wait_for(state="visible", timeout=10_000)
    await accessible_in_every_language(desk, "/organise signed out")

    await key.fill("not the key")
    await key.press("Enter")
    await wait_text(desk, "#signin-status", "Avain ei kelpaa.")
    assert await key.get_attribute("aria-invalid") == "true"
    await key.fill(ORGANISER_KEY)
    await key.press("Enter")
    title = page.get_by_label("Esityksen nimi")
    await title.wait_for(state="visible", timeout=10_000)
    # the key stays in this tab only
    assert await desk.eval("() => localStorage.getItem('lampio.organiser.key')") is None
    assert await desk.eval("() => sessionStorage.getItem('lampio.organiser.key')") == ORGANISER_KEY

    await page.get_by_role("button", name="Luo esitys").click()
    await wait_text(desk, "#create-status", "Kirjoita esitykselle nimi.")
    await title.fill("Joulukonsertti")
    await page.get_by_label("Esiintyjä").fill("Kamarikuoro Kaiku")
    await page.get_by_label("Alkamisaika").fill("2026-12-13T15:00")
    await page.get_by_label("Kuvaus").fill("Joululauluja yhdessä.")
    await page.get_by_role("button", name="Luo esitys").click()
    await wait_text(desk, "#create-status", "Esitys ”Joulukonsertti” on luotu.")

    # the show is listed with what the organiser hands out: code, links and QR code
    await wait_text(desk, "#org-shows", "Kamarikuoro Kaiku")
    code = (await text_of(desk, ".org-code")).strip()
    assert len(code) == 7 and code.replace(" ", "").isdigit()
    viewer = page.get_by_role("link", name=f"{node.url}/watch?code={code.replace(' ', '')}")
    assert await viewer.count() == 1
    performer_link = await page.locator(".org-show a").nth(1).get_attribute("href")
    assert performer_link and "#" in performer_link  # the performer's token, in the fragment
    qr = page.get_by_role("img", name="QR-koodi katsojan linkkiin: Joulukonsertti")
    assert (await qr.get_attribute("src") or "").endswith("/qr.svg")
    assert "Joululauluja yhdessä." in await text_of(desk, "#org-shows")
    await desk.screenshot("organise-show")

    # a staff key for a care home: shown once, and it opens the screens' remote
    label = page.get_by_label("Kenelle avain on (esimerkiksi hoivakodin nimi)")
    await label.fill("Hoivakoti Kuusela")
    await page.get_by_role("button", name="Luo avain").click()
    await wait_text(desk, "#key-status", "Uusi avain: Hoivakoti Kuusela.")
    staff_key = (await text_of(desk, "#new-key-value")).strip()
    assert len(staff_key) >= 43
    await wait_text(desk, "#org-keys", "Näyttöjä: 0")
    phone = await Session.connect(node.url)
    try:
        opened = await phone.request("remote.open", key=staff_key)
        assert opened["staff"]["label"] == "Hoivakoti Kuusela"
        await accessible_in_every_language(desk, "/organise with a show and a key")

        await page.get_by_role("button", name="Peru avain").click()
        await page.get_by_role("button", name="Kyllä, peru").click()
        await wait_text(desk, "#key-status", "Avain ”Hoivakoti Kuusela” on peruttu.")
        await wait_text(desk, "#keys-empty", "Ei avaimia.")
        with pytest.raises(ProtocolError) as refused:
            await phone.request("remote.open", key=staff_key)
        assert refused.value.code == "forbidden"
    finally:
        await phone.close()

    await page.get_by_role("button", name="Kirjaudu ulos").click()
    await key.wait_for(state="visible", timeout=5_000)
    # nothing of the desk stays in the page, hidden or not: the performer links carry secrets
    html = await desk.eval("() => document.documentElement.outerHTML")
    assert performer_link not in html and performer_link.split("#")[1] not in html
    assert "Joulukonsertti" not in html
    assert await desk.eval("() => document.querySelectorAll('#org-shows li').length") == 0
    await page.reload()
    await key.wait_for(state="visible", timeout=5_000)  # signed out stays signed out
