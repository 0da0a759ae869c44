"""The pages in headless Chromium through a real HAProxy in front of three node processes on a real
Redis, when a node goes: the studio publishes again by itself when its node is killed (a
performer on stage cannot press a button), and the Watch page moves to another node when its
node drains (without a pause in the picture), is killed or freezes (pictures again within 10 s),
with its chat as it was."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser

from clients.client import Session, Watcher
from tests import cluster_procs
from tests.a11y import assert_accessible, needs_axe
from tests.browser import (
    Tab,
    chromium,
    go_live,
    needs_chromium,
    open_tab,
    wait_media_flowing,
    wait_text,
)
from tests.cluster_procs import (
    HAPROXY,
    Deployment,
    NodeProcess,
    all_ready,
    create_show,
    metric,
    node_with,
)
from tests.helpers import eventually
from tests.redis_server import RedisServer

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.needs(HAPROXY, "HAProxy (Debian's haproxy package; `make test` installs it)"),
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest.fixture
def deployment(redis_server: RedisServer, tmp_path: Path) -> Iterator[Deployment]:
    with cluster_procs.deployment(redis_server, tmp_path) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@needs_axe
async def test_the_studio_publishes_again_by_itself_when_its_node_is_killed(
    deployment: Deployment, http: aiohttp.ClientSession, browser: Browser
) -> None:
    began = time.monotonic()
    await all_ready(http, deployment)
    show = await create_show(http, deployment.url, "Tuolijumppa")
    performer = await go_live(browser, show)  # through HAProxy: the performer link is its address
    origin = await eventually(lambda: node_with(http, deployment, "lampio_live_shows"), 10)
    edge = next(node for node in deployment.nodes if node is not origin)
    viewer = Watcher(await Session.connect(edge.url), decode=False)  # on a node that stays
    try:
        await viewer.join(show["code"])
        await viewer.start()
        await eventually(lambda: viewer.video.frames >= 10, 20, "the viewer receives frames")

        killed_at = time.monotonic()
        origin.kill()
        frames = viewer.video.frames
        # nobody presses anything: the studio publishes on another node, the viewer's node
        # follows the new origin, and frames come again
        await eventually(
            lambda: viewer.video.frames > frames + 20, 30, "frames reach the viewer again"
        )
        back = time.monotonic() - killed_at
        await wait_text(performer, "#perform-status", "Suorana", timeout=10)
        new_origin = await node_with(http, deployment, "lampio_live_shows")
        assert new_origin is not None and new_origin is not origin
        assert await performer.eval("() => window.lampio.connection !== null")
        print(f"\nstudio published again: frames at the viewer {back:.2f} s after the kill")
        await assert_accessible(performer.page, "studio, live again after its node was lost")
    finally:
        await viewer.close()
        await viewer.session.close()
        await performer.context.close()
    print(f"test run: {time.monotonic() - began:.1f} s")


async def test_the_studio_moves_when_its_node_drains(
    deployment: Deployment, http: aiohttp.ClientSession, browser: Browser
) -> None:
    began = time.monotonic()
    await all_ready(http, deployment)
    show = await create_show(http, deployment.url, "Lauluhetki")
    performer = await go_live(browser, show)
    origin = await eventually(lambda: node_with(http, deployment, "lampio_live_shows"), 10)
    edge = next(node for node in deployment.nodes if node is not origin)
    viewer = Watcher(await Session.connect(edge.url), decode=False)
    try:
        await viewer.join(show["code"])
        await viewer.start()
        await eventually(lambda: viewer.video.frames >= 10, 20, "the viewer receives frames")
        viewer.video.longest_gap = 0.0
        origin.terminate()
        await eventually(lambda: not origin.running, 10, "the drained node exits")
        assert origin.proc.returncode == 0
        frames = viewer.video.frames
        await eventually(lambda: viewer.video.frames > frames + 20, 10, "frames go on")
        assert await node_with(http, deployment, "lampio_live_shows") not in (None, origin)
        assert (
            await performer.eval("() => document.getElementById('perform-status').dataset.phase")
            == "live"
        )
        print(f"\nstudio moved: the viewer's longest gap {viewer.video.longest_gap:.2f} s")
        assert viewer.video.longest_gap <= 2.0
    finally:
        await viewer.close()
        await viewer.session.close()
        await performer.context.close()
    print(f"test run: {time.monotonic() - began:.1f} s")


async def chat_texts(tab: Tab) -> list[str]:
    """The texts of the chat messages the Watch page shows, oldest first."""
    texts: list[str] = await tab.page.locator("#chat li .text").all_text_contents()
    return texts


# Every picture the video element presents: the longest pause between two, from when it is reset.
FRAME_GAPS = """() => {
  const video = document.getElementById('video');
  window.gaps = {last: performance.now(), longest: 0};
  const tick = (now) => {
    window.gaps.longest = Math.max(window.gaps.longest, now - window.gaps.last);
    window.gaps.last = now;
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
}"""


async def watching_off_origin(
    browser: Browser,
    http: aiohttp.ClientSession,
    deployment: Deployment,
    url: str,
    origin: NodeProcess,
) -> tuple[Tab, NodeProcess]:
    """A Watch page through HAProxy at ``url``, watching on a node other than the show's origin
    (HAProxy picks the node: a page that lands on the origin is closed and opened again)."""
    for _ in range(6):
        viewer = await open_tab(browser, url)  # a friend's link: straight in, no name asked
        await wait_media_flowing(viewer)
        node = await eventually(lambda: node_with(http, deployment, "lampio_viewers"), 10)
        if node is not origin:
            return viewer, node
        await viewer.context.close()
        await eventually(
            lambda: _no_viewers(http, origin), 40, "the page's seat on the origin is let go"
        )
    raise AssertionError("HAProxy never sent the page to a node other than the origin")


async def _no_viewers(http: aiohttp.ClientSession, node: NodeProcess) -> bool:
    return not await metric(http, node, "lampio_viewers")


@pytest.mark.parametrize("how", ["drain", "kill", "freeze"])
async def test_the_watch_page_moves_when_its_node_goes(
    deployment: Deployment, http: aiohttp.ClientSession, browser: Browser, how: str
) -> None:
    """Drained (SIGTERM): no pause in the picture over 2 s. Killed (SIGKILL), or frozen (SIGSTOP:
    nothing closes, as when a host loses its power; the page's heartbeat notices): pictures again
    within 10 s. Each way the chat as it was, once each, with what was said meanwhile."""
    began = time.monotonic()
    await all_ready(http, deployment)
    show = await create_show(http, deployment.url, "Runotuokio")
    performer = await go_live(browser, show)
    origin = await eventually(lambda: node_with(http, deployment, "lampio_live_shows"), 10)
    friend = await Session.connect(origin.url)  # in the same lobby, on a node that stays
    joined = await friend.request("watch.join", code=show["code"], name="Eino")
    url = f"{deployment.url}/watch?code={show['code']}&lobby={joined['lobby']['code']}"
    viewer, node = await watching_off_origin(browser, http, deployment, url, origin)
    try:
        await viewer.page.get_by_label("Kirjoita viesti").fill("Hyvää iltaa")
        await viewer.page.get_by_label("Kirjoita viesti").press("Enter")
        await eventually(lambda: _shows(viewer, ["Hyvää iltaa"], acknowledged=True), 10)
        await friend.request("chat.send", text="Iltaa Aino", client_id="eino-1")
        await eventually(lambda: _shows(viewer, ["Hyvää iltaa", "Iltaa Aino"]), 10)
        first_pc = "() => { window.firstPc = window.lampio.pc; }"
        await viewer.eval(first_pc)
        await viewer.eval(FRAME_GAPS)

        went_at = time.monotonic()
        if how == "drain":
            node.terminate()
            await eventually(lambda: not node.running, 10, "the drained node exits")
            assert node.proc.returncode == 0
        else:
            node.kill() if how == "kill" else node.freeze()
            await friend.request("chat.send", text="Oletko siellä?", client_id="eino-kill")
        gone = time.monotonic() - went_at
        await eventually(
            lambda: viewer.eval("() => window.lampio.pc !== window.firstPc"), 10, interval=0.2
        )
        await wait_media_flowing(viewer)  # frames decoded again, on the new node's peer
        back = time.monotonic() - went_at
        longest = await viewer.eval("() => window.gaps.longest") / 1000
        print(
            f"\nwatch page after a {how}: node gone in {gone:.2f} s, pictures again after "
            f"{back:.2f} s, longest pause {longest:.2f} s"
        )
        if how == "drain":
            assert longest <= 2.0
        else:
            assert back <= 10.0
        assert await viewer.eval("() => document.getElementById('watch-status').dataset.state") == (
            "live"
        )
        # the chat as it was, once each, and what is said now still arrives
        said = ["Hyvää iltaa", "Iltaa Aino"] + (["Oletko siellä?"] if how != "drain" else [])
        await friend.request("chat.send", text="Siirryimme", client_id="eino-2")
        await eventually(lambda: _shows(viewer, [*said, "Siirryimme"]), 10)
    finally:
        await friend.close()
        await viewer.context.close()
        await performer.context.close()
    print(f"test run: {time.monotonic() - began:.1f} s")


async def _shows(viewer: Tab, texts: list[str], acknowledged: bool = False) -> list[str] | None:
    """The page's chat if it is ``texts`` (with ``acknowledged``: none of them still going)."""
    shown = await chat_texts(viewer)
    if acknowledged and await viewer.page.locator("#chat li.pending").count():
        return None
    return shown if shown == texts else None
