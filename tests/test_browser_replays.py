"""Watch again in headless Chromium against the real server: the studio of a recorded show says so
before it goes live; the show, once ended, is in the
programme's "Katso uudelleen" part; its player plays the recording with the captions typed
during the show, its large buttons seek and step the volume; axe finds nothing in Finnish, Swedish
and English, in the list and in the player."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.a11y import accessible_in_every_language, assert_accessible, needs_axe
from tests.browser import PAGE_INTERVAL, chromium, needs_chromium, open_tab, serve, wait_text
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY, start_performer

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    needs_axe,
    pytest.mark.usefixtures("loopback_ice"),
]


async def test_a_recording_plays_with_its_captions_in_the_watch_page(tmp_path: Path) -> None:
    async with serve(data_dir=str(tmp_path)) as node, chromium() as browser:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{node.url}/api/shows",
                json={"title": "Laulutuokio", "record": True},
                headers={"Authorization": f"Bearer {ORGANISER_KEY}"},
            ) as response,
        ):
            show = await response.json()
        studio = await open_tab(browser, show["performer_url"])
        try:  # before going live, the studio says the show is recorded, and asks for consent
            await wait_text(studio, "#recorded-note", "tallennetaan")
            await wait_text(studio, "#recorded-note", "suostuvat")
            await assert_accessible(studio.page, "studio of a recorded show")
        finally:
            await studio.context.close()
        performer = await start_performer(node, show, "video/VP8")
        try:
            recorder = await eventually(lambda: node.recorder(show["id"]), 10)
            await eventually(lambda: recorder.position >= 0.3, 10)
            await performer.session.request("caption.send", text="Lauletaan yhdessä")
            await eventually(lambda: recorder.position >= 3.0, 10)
            await performer.session.request(
                "perform.end", show=show["id"], token=show["performer_token"]
            )
        finally:
            await performer.session.close()

        tab = await open_tab(browser, node.url + "/")
        try:
            await wait_text(tab, "#again", "Laulutuokio")
            await accessible_in_every_language(tab, "watch again, listed")
            await tab.page.get_by_role("button", name="Katso tallenne: Laulutuokio").click()

            async def playing() -> bool:
                return bool(
                    await tab.eval(
                        "() => { const v = document.getElementById('replay-video');"
                        " return v.readyState >= 2 && v.currentTime > 0.2; }"
                    )
                )

            await eventually(playing, 15, "the recording plays", interval=PAGE_INTERVAL)
            cues = await eventually(
                lambda: tab.eval(
                    "() => { const t = document.getElementById('replay-video').textTracks[0];"
                    " return t && t.mode === 'showing' && t.cues && t.cues.length"
                    " ? [...t.cues].map((c) => c.text) : null; }"
                ),
                10,
                "the captions track is loaded",
                interval=PAGE_INTERVAL,
            )
            assert cues == ["Lauletaan yhdessä"]
            assert not await tab.page.locator("#front").is_visible()

            await tab.page.get_by_role("button", name="Tauko").click()
            assert await tab.eval("() => document.getElementById('replay-video').paused")
            await tab.page.get_by_role("button", name="30 s eteenpäin").click()
            at_end = await tab.eval("() => document.getElementById('replay-video').currentTime")
            assert at_end >= 2.5  # 30 s forward goes to the end of a short recording
            await tab.page.get_by_role("button", name="30 s taaksepäin").click()
            assert await tab.eval("() => document.getElementById('replay-video').currentTime") == 0
            await tab.page.get_by_role("button", name="Hiljemmalle").click()
            await wait_text(tab, "#replay-volume", "80 %")
            await tab.page.get_by_role("button", name="Kovemmalle").click()
            await wait_text(tab, "#replay-volume", "100 %")
            await accessible_in_every_language(tab, "watch again, playing")

            await tab.page.get_by_role("button", name="Takaisin ohjelmaan").click()
            assert await tab.page.locator("#front").is_visible()
        finally:
            await tab.context.close()
