"""A live show through the real pages in headless Chromium: the studio with the fake camera and
microphone publishes, the viewer page (code typed on the keyboard) shows and plays it.

The node runs in-process on the in-process bus (MemoryBus): these tests are about the pages, and one
node needs no Redis; the bus engines are covered by the other tests. Performer and viewer are two
browser contexts of one Chromium process, to spare CPU.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from tests.browser import (
    Tab,
    chromium,
    flowing,
    go_live,
    needs_chromium,
    open_tab,
    received,
    serve,
    text_of,
    wait_media_flowing,
    wait_text,
)
from tests.helpers import eventually
from tests.nodes import Node
from tests.rtmp_push import push

# One Chromium for the module (each test has its own contexts): starting it is the slow part.
pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.asyncio(loop_scope="module"),
]

# The codec the performer page's browser actually sends.
SENT_CODEC = """async () => {
  const pc = window.lampio.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let codec = null;
  stats.forEach((report) => {
    if (report.type === 'outbound-rtp' && report.kind === 'video' && report.codecId) {
      codec = stats.get(report.codecId)?.mimeType ?? null;
    }
  });
  return codec;
}"""


@pytest_asyncio.fixture(loop_scope="module")
async def node() -> AsyncIterator[Node]:
    async with serve() as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


async def watch_by_code(browser: Browser, node: Node, code: str, name: str = "") -> Tab:
    """The front page; the code typed like a person would (with a space), then Enter; then the
    name step (a name, or none), Enter again."""
    viewer = await open_tab(browser, node.url + "/")
    await viewer.page.get_by_label("Esityksen koodi").click()
    await viewer.page.keyboard.type(f"{code[:3]} {code[3:]}", delay=30)
    await viewer.page.keyboard.press("Enter")
    name_field = viewer.page.get_by_label("Nimesi muille katsojille")
    await name_field.wait_for(state="visible", timeout=10_000)
    if name:
        await name_field.fill(name)
    await name_field.press("Enter")
    return viewer


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_performer_page_to_viewer_page(node: Node, browser: Browser, codec: str) -> None:
    show = await node.create_show()
    performer = await go_live(browser, show, codec)
    viewer = await watch_by_code(browser, node, show["code"])

    await wait_text(viewer, "#watch-status", "Nyt suorana.")
    assert await viewer.page.get_by_role("status").filter(has_text="Nyt suorana.").count() == 1
    assert await text_of(viewer, "#watch-title") == "Kevätkonsertti"
    now = await wait_media_flowing(viewer)
    assert now["videoCodec"] == f"video/{codec}"
    assert await performer.eval(SENT_CODEC) == f"video/{codec}"
    await wait_text(viewer, "#watch-status", "Nyt suorana.")  # the picture came: no "coming" note
    assert "hetken" not in await text_of(viewer, "#watch-status")
    assert viewer.page.url.endswith(f"/watch?code={show['code']}")  # a reload keeps watching
    # the viewer pressed Enter on the page: the sound plays without asking
    assert await viewer.eval("() => document.getElementById('video').muted") is False
    assert await viewer.page.locator("#sound-button").is_hidden()

    await performer.screenshot(f"performer-live-{codec}")
    await viewer.screenshot(f"viewer-live-{codec}")


async def test_viewer_by_link_sound_pause_and_network_cut(node: Node, browser: Browser) -> None:
    show = await node.create_show("Yhteislaulu")
    performer = await go_live(browser, show)
    # the link from the organiser opens the show straight away; nobody has touched the page (so
    # no evaluate or locator before the page has answered the offer, see tests.browser.Tab), and
    # the picture plays silently with one big button for sound
    viewer = await open_tab(browser, show["viewer_url"])
    await eventually(lambda: "watch.answer" in viewer.sent, 20)
    sound = viewer.page.get_by_role("button", name="Laita ääni päälle")
    await sound.wait_for(state="visible", timeout=5_000)
    assert await viewer.eval("() => document.getElementById('video').muted") is True
    await viewer.screenshot("viewer-sound-button")
    await sound.click()
    await sound.wait_for(state="hidden", timeout=5_000)
    assert await viewer.eval("() => document.getElementById('video').muted") is False
    await wait_media_flowing(viewer)
    await wait_text(performer, "#audience", "Katsojia nyt: 1")

    await viewer.eval("() => { window.firstPc = window.lampio.pc; }")
    await performer.page.get_by_role("button", name="Pidä tauko").click()  # the show pauses
    await wait_text(viewer, "#watch-status", "Esitys on tauolla.")
    await wait_text(performer, "#perform-status", "Tauolla")
    await viewer.screenshot("viewer-paused")

    before = await received(viewer)
    await performer.page.get_by_role("button", name="Jatka lähetystä").click()  # and goes on
    await wait_text(performer, "#perform-status", "Suorana")
    await wait_text(viewer, "#watch-status", "Nyt suorana.")
    await eventually(
        lambda: flowing(viewer, before["frames"] + 10, before["audioPackets"] + 10),
        20,
        interval=0.2,
    )
    assert await viewer.eval("() => window.lampio.pc === window.firstPc")  # same peer connection
    await wait_text(performer, "#audience", "Katsojia nyt: 1")

    # a network cut: the page comes back by itself, with a new peer connection
    await viewer.eval("() => window.lampio.connection.socket.close()")
    await eventually(lambda: viewer.sent.count("watch.answer") >= 2, 20)
    await wait_media_flowing(viewer)
    await wait_text(viewer, "#watch-status", "Nyt suorana.")
    await wait_text(performer, "#audience", "Katsojia nyt: 1")


async def test_wrong_code_is_explained_in_finnish(node: Node, browser: Browser) -> None:
    show = await node.create_show()
    wrong = "111111" if show["code"] != "111111" else "222222"
    viewer = await open_tab(browser, node.url + "/")
    await viewer.page.get_by_label("Esityksen koodi").fill(wrong)
    await viewer.page.keyboard.press("Enter")
    await wait_text(
        viewer, "#code-status", "Tällä koodilla ei löytynyt esitystä. Tarkista numerot."
    )
    field = viewer.page.get_by_label("Esityksen koodi")
    assert await field.get_attribute("aria-invalid") == "true"
    assert await viewer.page.locator("#watch").is_hidden()

    await field.fill("12 34")
    assert await field.input_value() == "123 4"  # shown as the posters print codes
    await viewer.page.keyboard.press("Enter")
    await wait_text(
        viewer, "#code-status", "Koodissa on kuusi numeroa ja lipussa 16. Tarkista numerot."
    )
    assert await viewer.page.locator("#name-step").is_hidden()


async def test_performer_page_shows_encoder_settings_and_renews_the_key(
    node: Node, browser: Browser
) -> None:
    show = await node.create_show()
    performer = await open_tab(browser, show["performer_url"])
    await wait_text(performer, "#stream-key", show["stream_key"])
    assert await text_of(performer, "#whip-url") == show["whip_url"]
    assert await text_of(performer, "#rtmp-url") == (show["rtmp_url"] or "–")
    await performer.page.get_by_text("Näytä esityksen tiedot").click()  # the keys are behind it
    await performer.page.get_by_role("button", name="Vaihda avain").click()
    await wait_text(performer, "#key-status", "Uusi avain on käytössä.")
    new_key = await text_of(performer, "#stream-key")
    assert new_key and new_key != show["stream_key"]


async def test_performer_page_warns_about_b_frames_from_obs(browser: Browser) -> None:
    async with serve(rtmp_port=0) as node:
        show = await node.create_show()
        performer = await open_tab(browser, show["performer_url"])
        await wait_text(performer, "#stream-key", show["stream_key"])
        url = f"rtmp://127.0.0.1:{node.rtmp_port}/live/{show['stream_key']}"
        pusher = await push(url, 4, "--bframes")
        try:
            await wait_text(performer, "#warning", "B-frames-asetukseksi 0")
            assert await performer.page.locator("#warning").get_attribute("role") == "alert"
        finally:
            if pusher.returncode is None:
                pusher.kill()
            await pusher.wait()
