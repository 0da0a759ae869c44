"""Lobby cameras in headless Chromium (clients/web/cameras.js, watch/foyercameras.js,
studio/wall.js) with the fake camera: two viewers of one lobby see each other's tiles, a member of
another lobby sees neither; during the show the Camera button is gone until an intermission,
whose end switches the camera off and releases it; the seventh camera of a lobby waits and says
so; the studio's audience wall shows only the members who chose to be shown to the performer.
axe finds nothing in fi/sv/en in the foyer with cameras on and on the studio's wall.

The other members of a lobby are Python clients (clients/client.py's Cameras) where a browser
tab is not the point: they are lighter than tabs on a small machine.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from clients.client import Cameras, Session
from media.sources import TestPatternTrack
from tests.a11y import AXE, accessible_in_every_language, assert_targets_large
from tests.browser import PAGE_INTERVAL, Tab, chromium, needs_chromium, open_tab, serve, wait_text
from tests.helpers import eventually
from tests.nodes import Node, start_performer

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.asyncio(loop_scope="module"),
]

# axe-core's checks run where it is installed (`make test`), and always in CI.
CHECK_AXE = AXE.exists() or bool(os.environ.get("CI"))

# The foyer's tiles as the viewer sees them: whose, and whether a picture is decoded on each.
TILES = """() => [...document.querySelectorAll('#camera-tiles .camera-tile')].map((li) => ({
  key: li.dataset.camera, name: li.querySelector('figcaption').textContent,
  width: li.querySelector('video').videoWidth }))"""

WALL = """() => [...document.querySelectorAll('#wall-tiles .wall-tile')].map((li) => ({
  name: li.querySelector('figcaption').textContent,
  width: li.querySelector('video').videoWidth }))"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node() -> AsyncIterator[Node]:
    """Lobbies of two: a third viewer sits in another lobby."""
    async with serve(lobby_size=2) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def big_node() -> AsyncIterator[Node]:
    """Lobbies of eight: room for a seventh camera."""
    async with serve(lobby_size=8) as running:
        yield running


async def viewer(browser: Browser, show: dict[str, Any], name: str) -> Tab:
    """The Watch page seated in the show under ``name``, its cameras joined (the button shown
    while the lobby may show cameras)."""
    tab = await open_tab(
        browser, show["viewer_url"], init_script=f"localStorage.setItem('lampio.name', '{name}')"
    )
    try:
        await eventually(
            lambda: tab.eval("() => Boolean(window.lampio.cameras?.state.joined)"),
            20,
            f"{name}'s cameras joined",
            interval=PAGE_INTERVAL,
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\nconsole:\n{tab.console()}") from None
    return tab


async def member(
    node: Node, code: str, name: str, *, camera: bool = True, slots: int = 1
) -> Cameras:
    """A Python viewer in the show's cameras: a 320×240 test pattern for a camera (or none)."""
    session = await Session.connect(node.url)
    cameras = Cameras(session)
    joined = await session.request("watch.join", code=code, name=name)
    track = TestPatternTrack(320, 240, fps=15) if camera else None
    await cameras.join(track, slots=slots)
    cameras.joined = {**cameras.joined, "lobby": joined["lobby"], "me": joined["me"]}
    return cameras


async def tiles(tab: Tab) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = await tab.eval(TILES)
    return shown


async def others_decoded(tab: Tab, names: set[str]) -> bool:
    """Exactly the tiles of ``names`` show (besides the member's own), each a decoded picture."""
    shown = [t for t in await tiles(tab) if t["key"] != "self"]
    return {t["name"] for t in shown} == names and all(t["width"] > 0 for t in shown)


async def camera_button(tab: Tab, shown: bool) -> None:
    state = "visible" if shown else "hidden"
    await tab.page.locator("#camera-button").wait_for(state=state, timeout=20_000)


async def close_all(*closing: Tab | Cameras) -> None:
    for one in closing:
        if isinstance(one, Tab):
            await one.context.close()
        else:
            await one.close()
            await one.session.close()


async def test_two_viewers_see_each_other_another_lobby_sees_neither(
    browser: Browser, node: Node
) -> None:
    show = await node.create_show()
    ann = await viewer(browser, show, "Ann")
    bo = await viewer(browser, show, "Bo")
    cai = await member(node, show["code"], "Cai", slots=6)
    ann_lobby = await ann.eval("() => window.lampio.lobby.id")
    assert ann_lobby == await bo.eval("() => window.lampio.lobby.id")
    assert cai.joined["lobby"]["id"] != ann_lobby
    await camera_button(ann, True)
    # Off by default: seated with the cameras joined, and no camera asked of the browser.
    assert await ann.page.locator("#camera-button").get_attribute("aria-pressed") == "false"
    assert await ann.eval("() => window.lampio.cameras.track") is None
    await cai.set(True)

    for tab in (ann, bo):
        await tab.page.locator("#camera-button").click()
    for tab, other in ((ann, "Bo"), (bo, "Ann")):
        try:
            await eventually(
                lambda tab=tab, other=other: others_decoded(tab, {other}),
                20,
                interval=PAGE_INTERVAL,
            )
        except AssertionError:
            raise AssertionError(f"{await tiles(tab)}\n{tab.console()}") from None
    await wait_text(ann, "#camera-note", "Kamerasi on päällä – muut lämpiössä näkevät sinut.")
    assert await ann.page.locator("#camera-button").get_attribute("aria-pressed") == "true"
    # The browser's camera sends what a tile needs: at most 320×240.
    size = await ann.eval(
        "() => { const s = window.lampio.cameras.track.getSettings(); return [s.width, s.height] }"
    )
    assert size[0] <= 320 and size[1] <= 240, size
    assert cai.frames == {}, "a member of another lobby sees neither camera"

    await ann.page.set_viewport_size({"width": 1280, "height": 800})
    await ann.screenshot("cameras-foyer")
    if CHECK_AXE:  # the foyer with cameras on, in every language
        await accessible_in_every_language(ann, "Watch foyer with cameras on")
        await assert_targets_large(ann.page, "Watch foyer with cameras on")

    # Off: the camera itself is released, and Bo's tile of Ann goes.
    await ann.page.locator("#camera-button").click()
    assert await ann.eval("() => window.lampio.cameras.track") is None
    await eventually(lambda: others_decoded(bo, set()), 10, interval=PAGE_INTERVAL)
    await close_all(ann, bo, cai)


async def test_during_the_show_cameras_wait_for_the_intermission(
    browser: Browser, node: Node
) -> None:
    show = await node.create_show()
    ann = await viewer(browser, show, "Ann")
    await camera_button(ann, True)
    performer = await start_performer(node, show, "video/VP8")
    host = await Session.connect(node.url)
    try:
        # Live, no intermission: no Camera button, and the server says no.
        await camera_button(ann, False)
        refused = await ann.eval(
            """() => window.lampio.connection.request('camera.set', {on: true})
                 .then(() => 'ok', (error) => error.code)"""
        )
        assert refused == "camera_closed"
        await host.request("perform.host", show=show["id"], token=show["performer_token"])
        await host.request("voice.intermission", open=True)
        await camera_button(ann, True)
        await ann.page.locator("#camera-button").click()
        await wait_text(ann, "#camera-note", "Kamerasi on päällä")
        await ann.eval("() => { window.keptTrack = window.lampio.cameras.track }")
        assert await ann.eval("() => window.keptTrack.readyState") == "live"

        # The intermission ends: the server switches the camera off, the page lets it go.
        await host.request("voice.intermission", open=False)
        await eventually(
            lambda: ann.eval("() => window.keptTrack.readyState === 'ended'"),
            10,
            "the camera released",
            interval=PAGE_INTERVAL,
        )
        await camera_button(ann, False)
        await wait_text(ann, "#foyer-note", "kamerasi sammui")
        assert await ann.eval("() => window.lampio.cameras.state.on") is False
    finally:
        await close_all(ann)
        await host.close()
        await performer.stop()
        await performer.session.close()


async def test_the_seventh_camera_waits_its_turn_and_says_so(
    browser: Browser, big_node: Node
) -> None:
    show = await big_node.create_show()
    six = [await member(big_node, show["code"], f"Jäsen {n}", camera=False) for n in range(6)]
    for one in six:
        assert (await one.set(True))["slot"] is not None
    dan = await viewer(browser, show, "Dan")
    await camera_button(dan, True)
    await dan.page.locator("#camera-button").click()
    await wait_text(
        dan,
        "#camera-note",
        "Lämpiössä on jo kuusi kameraa päällä. Kamerasi tulee näkyviin, kun vuoro vapautuu.",
    )
    assert len([t for t in await tiles(dan) if t["key"] != "self"]) == 6
    await dan.page.set_viewport_size({"width": 1024, "height": 768})
    await dan.screenshot("cameras-waiting")
    # One of the six turns theirs off: Dan's camera takes the freed place.
    await six[0].set(False)
    await wait_text(dan, "#camera-note", "muut lämpiössä näkevät sinut")
    assert await dan.eval("() => window.lampio.cameras.state.slot") == 0
    await close_all(dan, *six)


async def test_the_wall_shows_only_who_chose_the_performer(browser: Browser, node: Node) -> None:
    show = await node.create_show()
    studio = await open_tab(browser, show["performer_url"])
    await eventually(
        lambda: studio.eval("() => window.lampio.host !== null"), 20, interval=PAGE_INTERVAL
    )
    wall = studio.page.get_by_role("button", name="Näytä yleisön kamerat")
    await wall.click()
    await wait_text(studio, "#wall-status", "Kukaan ei vielä näytä kameraansa sinulle.")
    ann = await viewer(browser, show, "Ann")
    bo = await member(node, show["code"], "Bo")
    await bo.set(True)  # the lobby only
    await camera_button(ann, True)
    await ann.page.locator("#camera-performer-button").click()
    await ann.page.locator("#camera-button").click()
    await wait_text(ann, "#camera-note", "muut lämpiössä ja esiintyjä näkevät sinut")

    async def ann_on_the_wall() -> list[dict[str, Any]] | None:
        shown: list[dict[str, Any]] = await studio.eval(WALL)
        return shown if shown and all(t["width"] > 0 for t in shown) else None

    try:
        shown = await eventually(ann_on_the_wall, 20, interval=PAGE_INTERVAL)
    except AssertionError:
        raise AssertionError(f"{await studio.eval(WALL)}\n{studio.console()}") from None
    assert len(shown) == 1 and shown[0]["name"].startswith("Ann"), shown
    await wait_text(studio, "#wall-status", "Kameroita näkyvissä: 1.")
    assert await wall.get_attribute("aria-pressed") == "true"

    await studio.page.set_viewport_size({"width": 1280, "height": 800})
    await studio.screenshot("cameras-wall")
    if CHECK_AXE:
        await accessible_in_every_language(studio, "studio with the audience wall")
        await assert_targets_large(studio.page, "studio with the audience wall")

    # Closing the wall lets its connection on the server go.
    await wall.click()
    await eventually(
        lambda: not [s for s in node.cameras.seats(show["id"]) if s.wall], 10, "wall released"
    )
    assert await studio.eval(WALL) == []
    await close_all(ann, studio, bo)


async def test_the_cameras_join_again_when_their_connection_is_lost(
    browser: Browser, node: Node
) -> None:
    show = await node.create_show()
    ann = await viewer(browser, show, "Ann")
    await ann.eval("() => { window.firstCameraPc = window.lampio.cameras.pc }")
    me = await ann.eval("() => window.lampio.cameras.member")
    # The server lets Ann's camera connection go (as when it failed on the way): camera.off lost.
    (seat,) = [s for s in node.cameras.seats(show["id"]) if s.key == me]
    await seat.pc.close()
    rejoined = """() => { const c = window.lampio.cameras;
      return c.state.joined && c.pc !== window.firstCameraPc }"""
    await eventually(lambda: ann.eval(rejoined), 30, "joined again", interval=PAGE_INTERVAL)
    # The camera starts off again (nobody is seen by surprise), and turning it on works.
    assert await ann.eval("() => window.lampio.cameras.state.on") is False
    await camera_button(ann, True)
    await ann.page.locator("#camera-button").click()
    await wait_text(ann, "#camera-note", "Kamerasi on päällä")
    await close_all(ann)
