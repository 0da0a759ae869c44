"""The picture on a weak link, in the Watch page (headless Chromium, the real server): a viewer
whose picture stops is offered the sound alone in plain words; choosing it tells the server
(`watch.quality`), the sound goes on, the page says the picture is off and why, and the choice is
kept on the device; "show the picture" brings it back; a sound made lighter is said; a viewer
told of a smaller picture can ask for the sharpest one always ("best picture", kept on the device
and asked for by the next connection) and back; axe finds nothing in fi, sv and en.

The weak link itself is stood in for on the server: the viewer's video stops being sent (what a
link too weak for the picture looks like to the page). The shaped links themselves, with a real
viewer in a network namespace, are tests/test_weak_links.py's."""

from __future__ import annotations

import pytest

from media.stage import ViewerSession
from tests.a11y import accessible_in_every_language, needs_axe
from tests.browser import (
    PAGE_INTERVAL,
    chromium,
    needs_chromium,
    open_tab,
    received,
    serve,
    text_of,
    wait_media_flowing,
    wait_text,
)
from tests.helpers import eventually
from tests.nodes import start_performer

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    needs_axe,
    pytest.mark.usefixtures("loopback_ice"),
]


async def test_a_stopping_picture_offers_the_sound_alone_and_back() -> None:
    async with serve() as node, chromium() as browser:
        show = await node.create_show()
        performer = await start_performer(node, show, "video/VP8")
        try:
            viewer = await open_tab(browser, f"{node.url}/watch?code={show['code']}")
            await wait_media_flowing(viewer)
            offer = viewer.page.get_by_role("button", name="Pelkkä ääni", exact=True)
            assert not await offer.is_visible()  # a flowing picture offers nothing

            # the link stops carrying the picture: the page notices by itself and offers the sound
            (session,) = [s for s in node.stage._viewers if s.show_id == show["id"]]
            session.send_video(False)
            await offer.wait_for(state="visible", timeout=15_000)
            assert "yhteys on heikko" in await text_of(viewer, "#picture-line")
            await accessible_in_every_language(viewer, "/watch, the sound alone offered")

            await offer.click()
            await eventually(lambda: "watch.quality" in viewer.sent, 5)
            await wait_text(viewer, "#picture-line", "Kuuntelet pelkkää ääntä.")
            assert await viewer.eval("() => localStorage.getItem('lampio.picture')") == "sound"
            assert not session.video
            before = await received(viewer)

            async def sound_goes_on() -> bool:
                return (await received(viewer))["audioPackets"] > before["audioPackets"] + 50

            await eventually(sound_goes_on, 10, interval=PAGE_INTERVAL)
            await accessible_in_every_language(viewer, "/watch, the sound alone")
            # even the sound is too much for the link: the node sends it lighter, the page says so
            assert session.on_sound is not None
            session.on_sound("low", "weak_link")
            await wait_text(viewer, "#picture-line", "ääni tulee kevyempänä")

            back = viewer.page.get_by_role("button", name="Näytä kuva", exact=True)
            await back.click()
            await eventually(lambda: session.video, 5)
            frames = (await received(viewer))["frames"]

            async def picture_again() -> bool:
                return (await received(viewer))["frames"] > frames + 10

            await eventually(picture_again, 10, interval=PAGE_INTERVAL)
            assert await viewer.page.locator("#picture-note").is_hidden()

            # the node steps this viewer down to a smaller picture (its choice stood in for here:
            # tests/test_renditions.py and the shaped link make it for real): the page says so
            assert session.on_picture is not None
            session.on_picture("180p", "weak_link")
            await wait_text(viewer, "#picture-line", "Heikko yhteys – kuva pienempänä.")
            session.on_picture("original", "link_recovered")
            await eventually(viewer.page.locator("#picture-note").is_hidden, 5)
            assert await viewer.eval("() => localStorage.getItem('lampio.picture')") == "best"

            # "best picture": a viewer told of a smaller picture may ask for the sharpest always
            session.on_picture("180p", "weak_link")
            sharpest = viewer.page.get_by_role("button", name="Näytä tarkin kuva", exact=True)
            await sharpest.click()
            await eventually(lambda: session.picture_mode == "best", 5)
            await wait_text(viewer, "#picture-line", "Näet tarkimman kuvan.")
            size = "() => localStorage.getItem('lampio.picture.size')"
            assert await viewer.eval(size) == "best"
            await accessible_in_every_language(viewer, "/watch, the sharpest picture")
            # kept on the device: a new connection's watch.start asks for it at once
            await viewer.page.reload()
            await wait_media_flowing(viewer)

            def new_session() -> ViewerSession | None:
                fresh = [s for s in node.stage._viewers if s.show_id == show["id"] and not s.closed]
                return fresh[0] if len(fresh) == 1 and fresh[0] is not session else None

            session = await eventually(new_session, 10, "the viewer's new session")
            assert session.picture_mode == "best"
            fitted = viewer.page.get_by_role("button", name="Sovita kuva yhteyteen", exact=True)
            await fitted.click()
            await eventually(lambda: session.picture_mode == "auto", 5)
            await eventually(viewer.page.locator("#picture-note").is_hidden, 5)
            assert await viewer.eval(size) is None

            # the same choices at any time, folded away: "Kuva ja ääni", by keyboard alone
            fold = viewer.page.locator("#picture-settings summary")
            await fold.focus()
            await viewer.page.keyboard.press("Enter")
            fitting = viewer.page.get_by_role("radio", name="Kuva yhteyden mukaan (suositus)")
            assert await fitting.is_checked()
            await accessible_in_every_language(viewer, "/watch, picture and sound settings")
            await fitting.focus()
            await viewer.page.keyboard.press("ArrowDown")  # "Aina tarkin kuva"
            await eventually(lambda: session.picture_mode == "best", 5)
            await viewer.page.keyboard.press("ArrowDown")  # "Pelkkä ääni"
            await eventually(lambda: not session.video, 5)
            await wait_text(viewer, "#picture-line", "Kuuntelet pelkkää ääntä.")
            assert session.picture_mode == "best"  # the sharpest picture is kept for later
            await viewer.page.keyboard.press("ArrowUp")  # the sharpest picture again
            await eventually(lambda: session.video, 5)
            assert await viewer.eval("() => localStorage.getItem('lampio.picture')") == "best"
            await viewer.page.get_by_role("radio", name="Kuva yhteyden mukaan (suositus)").check()
            await eventually(lambda: session.picture_mode == "auto", 5)
            assert await viewer.eval(size) is None
        finally:
            await performer.stop()
            await performer.session.close()
