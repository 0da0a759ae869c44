"""The foyer through the real pages in headless Chromium: viewers in one lobby (the second by the
friend's link) see each other's names, chat both ways (text stays text) and applaud; the performer
page's feed deletes, mutes and removes; the chat comes back after a network cut.

No media here: the show need not be live for its foyer, which spares the CPU. The node runs
in-process on the in-process bus, as in tests/test_browser_live.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from tests.browser import (
    PAGE_INTERVAL,
    Tab,
    chromium,
    meter,
    needs_chromium,
    open_tab,
    serve,
    text_of,
    wait_text,
)
from tests.helpers import eventually
from tests.nodes import Node

# One Chromium for the module (each test has its own contexts): starting it is the slow part.
pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.usefixtures("loopback_ice"),
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


async def take_part(
    browser: Browser, node: Node, code: str, name: str, friend_code: str = ""
) -> Tab:
    """The front page: (a friend's code,) the show's code, Enter; a name for the others, Enter;
    wait until seated in a lobby."""
    viewer = await open_tab(browser, node.url + "/")
    if friend_code:
        await viewer.page.get_by_text("Onko sinulla ystäväkoodi?").click()
        await viewer.page.get_by_label("Ystäväkoodi").fill(friend_code.lower())
    await viewer.page.get_by_label("Esityksen koodi").fill(code)
    await viewer.page.get_by_label("Esityksen koodi").press("Enter")
    await viewer.page.get_by_label("Nimesi muille katsojille").fill(name)
    await viewer.page.get_by_label("Nimesi muille katsojille").press("Enter")
    await eventually(lambda: text_of(viewer, "#friend-code"), 10, interval=PAGE_INTERVAL)
    return viewer


async def by_friends_link(browser: Browser, link: str, name: str = "") -> Tab:
    """A friend opens the link straight away (no name), or, with a name, types the friend code
    and the show's code on the front page."""
    if not name:
        viewer = await open_tab(browser, link)
        await eventually(lambda: text_of(viewer, "#friend-code"), 10, interval=PAGE_INTERVAL)
        return viewer
    base, query = link.split("/watch?")
    fields = dict(part.split("=") for part in query.split("&"))
    node = Node(None, base)  # only its address: take_part opens pages there
    return await take_part(browser, node, fields["code"], name, fields["lobby"])


async def say(viewer: Tab, text: str, *, enter: bool = True) -> None:
    """Write a message and send it with Enter (or the button)."""
    field = viewer.page.get_by_label("Kirjoita viesti")
    await field.fill(text)
    if enter:
        await field.press("Enter")
    else:
        await viewer.page.get_by_role("button", name="Lähetä").click()


async def messages(tab: Tab, selector: str = "#chat li") -> list[str]:
    texts: list[str] = await tab.page.locator(selector).all_text_contents()
    return texts


async def gone(tab: Tab, text: str, selector: str = "#chat li") -> bool:
    return all(text not in message for message in await messages(tab, selector))


async def settled(viewer: Tab) -> bool:
    """No message of the viewer's is waiting for the server's acknowledgement."""
    return await viewer.page.locator("#chat li.pending").count() == 0


async def hosting(browser: Browser, show: dict[str, Any]) -> Tab:
    """The performer page, following the show as its host (the feed and meters work)."""
    performer = await open_tab(browser, show["performer_url"])
    await eventually(
        lambda: performer.eval("() => window.lampio.host !== null"), 10, interval=PAGE_INTERVAL
    )
    return performer


async def test_friends_chat_react_and_the_performer_moderates(node: Node, browser: Browser) -> None:
    show = await node.create_show()
    performer = await hosting(browser, show)
    aino = await take_part(browser, node, show["code"], "Aino")
    code = await text_of(aino, "#friend-code")
    link = await aino.page.locator("#friend-link").get_attribute("href")
    assert link == f"{node.url}/watch?code={show['code']}&lobby={code}"
    eino = await by_friends_link(browser, link, "Eino")
    assert await text_of(eino, "#friend-code") == code  # the same lobby
    await wait_text(eino, "#members", "Lämpiössä nyt: Eino (sinä), Aino")
    await wait_text(aino, "#members", "Lämpiössä nyt: Aino (sinä), Eino")

    # both ways; markup stays text
    await say(aino, "Hyvää iltaa <b>kaikki</b>")
    await wait_text(eino, "#chat", "Hyvää iltaa <b>kaikki</b>")
    assert await eino.page.locator("#chat b").count() == 0
    heard = eino.page.locator("#chat li", has_text="Hyvää iltaa")
    assert (await heard.locator(".who").text_content()) == "Aino"
    await say(eino, "Iltaa, Aino!", enter=False)
    await wait_text(aino, "#chat", "Iltaa, Aino!")
    reply = aino.page.locator("#chat li", has_text="Iltaa, Aino!")
    assert (await reply.locator(".who").text_content()) == "Eino"
    await eventually(lambda: settled(eino), 5, interval=PAGE_INTERVAL)  # acknowledged

    # the performer's feed: every lobby, with names, as text
    await wait_text(performer, "#feed", "Hyvää iltaa <b>kaikki</b>")
    assert await performer.page.locator("#feed b").count() == 0
    ainos = performer.page.locator("#feed li", has_text="Hyvää iltaa")
    assert "Aino" in (await ainos.locator(".who").text_content() or "")
    assert f"lämpiö {code}" in (await ainos.locator(".where").text_content() or "")

    # applause moves the performer's meter, and shows in the lobby
    clap = aino.page.get_by_role("button", name="Taputa")
    for _ in range(3):
        await clap.click()
    await eventually(lambda: _at_least(performer, "applause", 1), 10, interval=PAGE_INTERVAL)
    await wait_text(aino, "#react-lobby", "Taputuksia")
    await wait_text(eino, "#react-all", "Taputuksia")
    await aino.screenshot("foyer-viewer")
    await performer.screenshot("foyer-performer")

    # delete: gone for both viewers
    await ainos.get_by_role("button", name="Poista", exact=True).click()
    await eventually(lambda: gone(eino, "Hyvää iltaa"), 10, interval=PAGE_INTERVAL)
    await eventually(lambda: gone(aino, "Hyvää iltaa"), 10, interval=PAGE_INTERVAL)
    await eventually(lambda: gone(performer, "Hyvää iltaa", "#feed li"), 10, interval=PAGE_INTERVAL)

    # mute: Eino is told in words, his text is given back
    einos = performer.page.locator("#feed li", has_text="Iltaa, Aino!")
    await einos.get_by_role("button", name="Hiljennä").click()
    await wait_text(performer, "#feed-status", "Eino on hiljennetty.")
    await say(eino, "Saanko vielä sanoa?")
    await wait_text(eino, "#chat-status", "Esiintyjä on tauottanut viestisi.")
    assert await eino.page.get_by_label("Kirjoita viesti").input_value() == "Saanko vielä sanoa?"
    assert await gone(aino, "Saanko vielä")

    # removal asks first
    await einos.get_by_role("button", name="Poista katsoja").click()
    await wait_text(performer, "#feed", "Poistetaanko Eino esityksestä?")
    await performer.screenshot("foyer-performer-confirm")
    await performer.page.get_by_role("button", name="Kyllä, poista katsoja").click()
    await wait_text(eino, "#watch-status", "Esiintyjä on poistanut sinut tästä esityksestä.")
    await wait_text(performer, "#feed-status", "Eino on poistettu esityksestä.")
    await eventually(lambda: _members_without(aino, "Eino"), 10, interval=PAGE_INTERVAL)
    await eino.screenshot("foyer-viewer-removed")


async def _at_least(performer: Tab, kind: str, n: int) -> bool:
    return await meter(performer, kind) >= n


async def _members_without(viewer: Tab, name: str) -> bool:
    members = await text_of(viewer, "#members")
    return members.startswith("Lämpiössä nyt:") and name not in members


# Keeps the page's WebSockets from connecting while window.holdSockets is set (a network cut).
HOLD_SOCKETS = """() => {
  const Real = window.WebSocket;
  window.holdSockets = true;
  window.WebSocket = class extends Real {
    constructor(url, protocols) {
      super(window.holdSockets ? 'ws://127.0.0.1:9/' : url, protocols);
    }
  };
  window.lampio.connection.socket.close();
}"""


async def test_chat_comes_back_after_a_network_cut(node: Node, browser: Browser) -> None:
    show = await node.create_show()
    aino = await take_part(browser, node, show["code"], "Aino")
    code = await text_of(aino, "#friend-code")
    eino = await by_friends_link(browser, f"{node.url}/watch?code={show['code']}&lobby={code}")
    await wait_text(aino, "#members", "1 muu katsoja")  # Eino gave no name: one tap is enough
    await wait_text(eino, "#members", "Lämpiössä nyt: sinä, Aino")
    await say(aino, "ennen katkoa")
    await wait_text(eino, "#chat", "ennen katkoa")

    # Aino's connection is cut; she writes meanwhile, and Eino too
    await aino.eval(HOLD_SOCKETS)
    await wait_text(aino, "#watch-status", "Yhteys katkesi")
    await say(aino, "kirjoitin katkon aikana")
    await wait_text(aino, "#chat li.pending", "lähtee…")
    await say(eino, "sanoin kun olit poissa")
    await wait_text(eino, "#chat", "sanoin kun olit poissa")
    await eventually(lambda: settled(eino), 5, interval=PAGE_INTERVAL)
    await aino.eval("() => { window.holdSockets = false; }")

    # back as the same member of the same lobby, with what was said meanwhile, nothing twice
    await wait_text(aino, "#chat", "sanoin kun olit poissa", timeout=15)
    await wait_text(eino, "#chat", "kirjoitin katkon aikana")
    assert "chat.history" in aino.sent
    assert await text_of(aino, "#friend-code") == code
    await eventually(lambda: settled(aino), 5, interval=PAGE_INTERVAL)
    for viewer in (aino, eino):
        texts = await messages(viewer)
        assert len(texts) == 3, texts
        assert sum("kirjoitin katkon aikana" in text for text in texts) == 1
    await wait_text(eino, "#members", "Lämpiössä nyt: sinä, Aino")
    assert (await text_of(eino, "#members")).count("Aino") == 1


async def test_a_full_friends_lobby_still_lets_the_friend_watch(browser: Browser) -> None:
    async with serve(lobby_size=1) as node:
        show = await node.create_show()
        aino = await take_part(browser, node, show["code"], "Aino")
        code = await text_of(aino, "#friend-code")
        eino = await by_friends_link(browser, f"{node.url}/watch?code={show['code']}&lobby={code}")
        await wait_text(eino, "#foyer-note", "Ystävän lämpiö on täynnä.")
        assert await text_of(eino, "#friend-code") not in ("", code)
        await wait_text(eino, "#members", "Lämpiössä nyt: sinä")
