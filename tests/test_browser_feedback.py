"""After the show, through the real pages in headless Chromium against the real server: a viewer
whose show ends answers the one question (a smiley and a few words) and the insight holds them; a
viewer who leaves early is asked first, skips in one tap, and is not asked again after a reload;
the phone of a paired care-home screen answers for the room, weighted by its head count; /organise
shows a show's audience as charts whose tables hold the insight's numbers, the CSV, and the
recordings whose captions are due until captions are uploaded. axe finds nothing in Finnish,
Swedish and English in each new view. One node and one browser for the whole file."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser

from clients.client import Session
from tests.a11y import (
    LAYOUT_PROBLEMS,
    accessible_in_every_language,
    assert_targets_large,
    needs_axe,
)
from tests.browser import (
    PAGE_INTERVAL,
    Tab,
    chromium,
    needs_chromium,
    open_tab,
    serve,
    text_of,
    wait_text,
)
from tests.helpers import eventually
from tests.nodes import ORGANISER_KEY, Node, start_performer

pytestmark = [
    pytest.mark.browser,
    needs_chromium,
    needs_axe,
    pytest.mark.asyncio(loop_scope="module"),
]

AUTH = {"Authorization": f"Bearer {ORGANISER_KEY}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    async with serve(data_dir=str(tmp_path_factory.mktemp("data"))) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


async def call(node: Node, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.url + path, json=body, headers=AUTH) as response,
    ):
        assert response.status < 300, await response.text()
        return await response.json()


async def host(node: Node, show: dict[str, Any]) -> Session:
    session = await Session.connect(node.url)
    await session.request("perform.host", show=show["id"], token=show["performer_token"])
    return session


async def seated(tab: Tab) -> None:
    await eventually(
        lambda: tab.eval("() => !!(window.lampio && window.lampio.lobby)"),
        15,
        "the viewer has a seat",
        interval=PAGE_INTERVAL,
    )


async def at_200_percent(tab: Tab, state: str) -> None:
    """A 1024×768 tablet at 200 % zoom (512×384 CSS pixels): no text overlaps, is cut or leaves
    the screen, and nothing scrolls sideways, with every table open; then back to the test's
    size. A wide table may scroll inside its own box, which must fit the screen (data tables are
    exempt from reflow, WCAG 1.4.10): the check leaves the boxes' insides out."""
    await tab.page.set_viewport_size({"width": 512, "height": 384})
    try:
        boxes = await tab.eval(
            "() => { document.querySelectorAll('details').forEach((d) => { d.open = true; });"
            " return [...document.querySelectorAll('.table-scroll')].map((box) => {"
            " box.setAttribute('aria-hidden', 'true');"
            " return box.getBoundingClientRect().right <= document.documentElement.clientWidth;"
            " }); }"
        )
        problems = await tab.eval(LAYOUT_PROBLEMS)
        await tab.eval(
            "() => document.querySelectorAll('.table-scroll')"
            ".forEach((box) => box.removeAttribute('aria-hidden'))"
        )
        assert not problems, f"{state}: {problems}"
        assert all(boxes), f"{state}: a table's box leaves the screen"
    finally:
        await tab.page.set_viewport_size({"width": 1024, "height": 900})


async def fits_the_screen(tab: Tab) -> None:
    """The question is on the screen whole, nothing to scroll to."""
    box = await tab.eval(
        "() => { const r = document.getElementById('feedback').getBoundingClientRect();"
        " return [r.top, r.bottom, innerHeight]; }"
    )
    assert box[0] >= 0 and box[1] <= box[2], box


async def test_a_viewer_whose_show_ends_answers_with_a_smiley_and_words(
    browser: Browser, node: Node
) -> None:
    show = await call(node, "POST", "/api/shows", {"title": "Iltakonsertti"})
    performer = await host(node, show)
    tab = await open_tab(browser, f"{node.url}/watch?code={show['code']}")
    try:
        await seated(tab)
        assert await tab.eval("() => document.getElementById('feedback').hidden")
        await performer.request("perform.end", show=show["id"], token=show["performer_token"])
        await wait_text(tab, "#feedback", "Miltä esitys ”Iltakonsertti” tuntui?")
        await fits_the_screen(tab)
        await tab.screenshot("feedback-after-the-show")
        await accessible_in_every_language(tab, "the question after the show")
        await assert_targets_large(tab.page, "the question after the show")
        await at_200_percent(tab, "the question after the show at 200 %")
        page = tab.page
        # the smileys are named in words; nothing is sent before "Lähetä"
        await page.get_by_role("button", name="Hyvä", exact=True).click()
        assert (
            await page.get_by_role("button", name="Hyvä", exact=True).get_attribute("aria-pressed")
            == "true"
        )
        comment = page.get_by_label("Haluatko sanoa muutaman sanan? (ei pakollinen)")
        await comment.fill("Kaunis ilta")
        await wait_text(tab, "#fb-left", "Merkkejä jäljellä: 289")
        assert await comment.get_attribute("maxlength") == "300"
        assert "feedback.send" not in tab.sent
        await page.locator("#feedback").get_by_role("button", name="Lähetä", exact=True).click()
        await wait_text(tab, "#feedback-thanks", "Kiitos palautteestasi!")
        await accessible_in_every_language(tab, "thanks after the feedback")
        report = await call(node, "GET", f"/api/shows/{show['id']}/insight")
        assert report["feedback"] == {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}
        assert report["comments"] == ["Kaunis ilta"]
        kept = f"() => localStorage.getItem('lampio.feedback.{show['id']}')"
        assert await tab.eval(kept) == "sent"
    finally:
        await tab.context.close()
        await performer.close()


@pytest.mark.usefixtures("loopback_ice")
async def test_leaving_early_asks_once_and_skipping_sends_nothing(
    browser: Browser, node: Node
) -> None:
    show = await call(node, "POST", "/api/shows", {"title": "Tuolijumppa"})
    performer = await start_performer(node, show, "video/VP8")
    url = f"{node.url}/watch?code={show['code']}"
    tab = await open_tab(browser, url)
    live = "() => window.lampio && window.lampio.state === 'live'"
    try:
        await eventually(lambda: tab.eval(live), 20, "watching live", interval=PAGE_INTERVAL)
        page = tab.page
        await page.get_by_role("button", name="Lopeta katselu").click()
        await wait_text(tab, "#feedback", "Miltä esitys ”Tuolijumppa” tuntui?")
        # by keyboard: the question has the focus, Tab reaches the first smiley, Space chooses
        assert await tab.eval("() => document.activeElement.id") == "fb-question"
        await page.keyboard.press("Tab")
        await page.keyboard.press("Space")
        chosen = "() => document.activeElement.getAttribute('aria-pressed')"
        assert await tab.eval(chosen) == "true"
        await fits_the_screen(tab)
        await tab.screenshot("feedback-leaving-early")
        await accessible_in_every_language(tab, "the question when leaving early")
        # a tap by mistake: back to the show, and asked again on leaving
        await page.get_by_role("button", name="Jatka katselua").click()
        assert await tab.eval("() => document.getElementById('feedback').hidden")
        await page.get_by_role("button", name="Lopeta katselu").click()
        skip = page.get_by_role("button", name="Ohita ja lopeta katselu")
        await skip.click()
        await page.locator("#front").wait_for(state="visible", timeout=10_000)
        assert "feedback.send" not in tab.sent
        kept = f"() => localStorage.getItem('lampio.feedback.{show['id']}')"
        assert await tab.eval(kept) == "skipped"

        # back again after a reload: leaving now goes straight to the programme
        await page.goto(url)
        await eventually(lambda: tab.eval(live), 20, "watching again", interval=PAGE_INTERVAL)
        await page.get_by_role("button", name="Lopeta katselu").click()
        await page.locator("#front").wait_for(state="visible", timeout=10_000)
        assert await tab.eval("() => document.getElementById('feedback').hidden")
        assert "feedback.send" not in tab.sent
        report = await call(node, "GET", f"/api/shows/{show['id']}/insight")
        assert sum(report["feedback"].values()) == 0
    finally:
        await tab.context.close()
        await performer.session.close()


async def test_the_phone_of_a_paired_screen_answers_for_the_room(
    browser: Browser, node: Node
) -> None:
    show = await call(node, "POST", "/api/shows", {"title": "Yhteislaulu"})
    staff = await call(node, "POST", "/api/staff-keys", {"label": "Hoivakoti Kuusela"})
    performer = await host(node, show)
    screen, pairer = await Session.connect(node.url), await Session.connect(node.url)
    init = f"localStorage.setItem('lampio.staff.key', {staff['key']!r});"
    phone: Tab | None = None
    try:
        hello = await screen.request("screen.hello")
        await pairer.request("remote.open", key=staff["key"])
        paired = (await pairer.request("screen.pair", code=hello["code"], name="Olohuone"))[
            "screen"
        ]
        await pairer.request("remote.control", screen=paired["id"], head_count=12, show=show["id"])
        await screen.request("screen.hello", token=hello["token"])
        await screen.request(
            "watch.join", code=show["code"], screen=True, head_count=12, name="Olohuone"
        )
        phone = await open_tab(browser, node.url + "/screen/pair", init_script=init)
        await wait_text(phone, "#screens", "Olohuone")
        await performer.request("perform.end", show=show["id"], token=show["performer_token"])
        await screen.request("screen.status", state="ended", show=show["id"])
        question = "Miltä esitys ”Yhteislaulu” tuntui katsojista huoneessa Olohuone?"
        await wait_text(phone, ".remote-feedback", question)
        await phone.screenshot("feedback-phone")
        await at_200_percent(phone, "the phone's question at 200 %")
        await accessible_in_every_language(phone, "the phone's question after the show")
        await phone.page.get_by_role("button", name="Erinomainen", exact=True).click()
        await phone.page.get_by_role("button", name="Lähetä", exact=True).click()
        thanks = "Kiitos! Palaute tallennettiin koko huoneen puolesta."
        await wait_text(phone, ".remote-note", thanks)
        report = await call(node, "GET", f"/api/shows/{show['id']}/insight")
        assert report["feedback"]["5"] == 12  # the room's head count
        # once per show: the screen still says it ended, the phone does not ask again
        await phone.page.reload()
        await wait_text(phone, "#screens", "Olohuone")
        await screen.request("screen.status", state="ended", show=show["id"])
        await wait_text(phone, ".remote-status", "Yhteislaulu")
        assert await phone.eval("() => document.querySelector('.remote-feedback').hidden")
    finally:
        if phone is not None:
            await phone.context.close()
        for session in (performer, screen, pairer):
            await session.close()


VTT = "WEBVTT\n\n00:00.000 --> 00:02.500\nTervetuloa konserttiin!\n"


async def test_organise_shows_the_audience_and_the_captions_due(
    browser: Browser, node: Node
) -> None:
    show = await call(node, "POST", "/api/shows", {"title": "Kevätkonsertti", "record": True})
    performer = await host(node, show)
    viewers = [await Session.connect(node.url) for _ in range(2)]
    try:
        for n, viewer in enumerate(viewers):
            await viewer.request("watch.join", code=show["code"], name=f"Katsoja {n}")
        for _ in range(3):
            await viewers[0].request("react", kind="applause")
        await viewers[1].request("react", kind="heart")
        await viewers[0].request("chat.send", text="Hienoa!", client_id="a-1")
        await viewers[1].request("chat.send", text="Kiitos", client_id="b-1")
        await viewers[0].request("feedback.send", score=5, comment="Ihana ilta!")
        await viewers[1].request("feedback.send", score=3)
        insight = node.services.insight

        async def counted() -> bool:
            await insight.flush()
            report = await insight.report(show["id"])
            slots = report["timeline"]
            return (
                sum(sum(m["reactions"].values()) for m in slots) == 4
                and sum(m["chat_messages"] for m in slots) == 2
                and any(m["viewers"] for m in slots)
            )

        await eventually(counted, 15, "the reactions, the chat and the audience counted")
        for viewer in viewers:
            await viewer.close()
        await performer.request("perform.end", show=show["id"], token=show["performer_token"])
    finally:
        await performer.close()
        for viewer in viewers:
            await viewer.close()
    # its recording, ended two days ago, has no captions yet (12 of the 14 days left)
    recordings = node.services.recordings
    recordings.directory(show["id"]).mkdir(parents=True)
    ended = await node.services.shows.get(show["id"])
    await recordings.add(
        {**ended.public(), "state": "ended"}, ended.organiser, "show.webm", "video/webm", 3.0, 0,
        now=time.time() - 2 * 86400,
    )  # fmt: skip
    report = await call(node, "GET", f"/api/shows/{show['id']}/insight")
    assert report["feedback"]["5"] == 1 and report["comments"] == ["Ihana ilta!"]

    desk = await open_tab(browser, node.url + "/organise")
    try:
        page = desk.page
        key = page.get_by_label("Järjestäjän avain")
        await key.fill(ORGANISER_KEY)
        await key.press("Enter")
        await wait_text(desk, "#org-ended", "Kevätkonsertti")
        await wait_text(desk, "#captions-list", "Kevätkonsertti")
        await wait_text(desk, "#captions-list", "12 päivää jäljellä")
        await page.get_by_role("button", name="Yleisö: Kevätkonsertti").click()
        await wait_text(desk, ".org-insight", "Palautteen arviot 1–5")
        for chart in ("viewers", "reactions", "chat", "feedback"):
            image = page.locator(f"[data-chart='{chart}'] svg[role='img']")
            assert (await image.get_attribute("aria-label") or "").strip()
        tables = await desk.eval(
            "() => Object.fromEntries([...document.querySelectorAll('table[data-table]')]"
            ".map((t) => [t.dataset.table, [...t.tBodies[0].rows].map((r) =>"
            " [...r.cells].map((c) => c.textContent))]))"
        )
        timeline = report["timeline"]
        kinds = ["applause", "laughter", "heart", "bravo"]
        assert tables["viewers"] == [[str(m["minute"]), str(m["viewers"])] for m in timeline]
        assert tables["reactions"] == [
            [str(m["minute"])]
            + [str(m["reactions"].get(k, 0)) for k in kinds]
            + [str(sum(m["reactions"].get(k, 0) for k in kinds))]
            for m in timeline
        ]
        assert tables["chat"] == [[str(m["minute"]), str(m["chat_messages"])] for m in timeline]
        assert [row[1] for row in tables["feedback"]] == [
            str(report["feedback"][s]) for s in "12345"
        ]
        assert "voice" not in tables  # nobody talked: no chart of microphones
        await page.locator("[data-chart='reactions'] summary").click()
        await desk.screenshot("organise-insight")
        await at_200_percent(desk, "/organise, a show's audience at 200 %")
        assert "Ihana ilta!" in await text_of(desk, ".insight-comments")
        async with page.expect_download() as downloading:
            await page.get_by_role("link", name="Lataa luvut taulukkona (CSV)").click()
        download = await downloading.value
        assert download.suggested_filename == "yleiso.csv"
        csv_text = await asyncio.to_thread(Path(await download.path()).read_text, "utf-8")
        rows = list(csv.reader(io.StringIO(csv_text)))
        assert ["peak_viewers", str(report["peak_viewers"])] in rows and ["Ihana ilta!"] in rows
        await accessible_in_every_language(desk, "/organise, a show's audience and captions due")

        # the captions, pasted: the recording leaves the list
        await page.get_by_label("Tai liitä tekstitys tähän").fill(VTT)
        await page.get_by_role("button", name="Tallenna tekstitys").click()
        await wait_text(desk, "#captions-status", "Tekstitys tallennettu: Kevätkonsertti.")
        await page.locator("#captions-empty").wait_for(state="visible", timeout=10_000)
        assert "Kevätkonsertti" not in await text_of(desk, "#captions-list")
        saved = (await recordings.get(show["id"])).cues
        assert saved == 1
        written = recordings.directory(show["id"]) / "captions.vtt"
        assert await asyncio.to_thread(written.read_text, "utf-8") == VTT
    finally:
        await desk.context.close()
