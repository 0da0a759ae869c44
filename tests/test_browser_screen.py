"""The care-home screen through the real pages in headless Chromium: staff pair a `/screen` from
their phone (`/screen/pair`), it joins the show and plays it by itself, the phone steers it (head
count, reactions) and the performer notices; the screen comes back by itself after the server
restarts; every page and state passes axe in Finnish, Swedish and English.

The performer is the Python client (a small synthetic picture and tone), which spares a browser.
The node runs on a Redis bus so that a restarted node on the same port finds the same state.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from clients.client import Cameras, Performer, Session
from lampio_stream.app import create_app
from rooms.bus_redis import RedisBus
from rooms.events import screen_channel
from tests.a11y import accessible_in_every_language, assert_accessible, needs_axe
from tests.browser import PAGE_INTERVAL, Tab, chromium, needs_chromium, open_tab, text_of, wait_text
from tests.helpers import eventually
from tests.media.helpers import MovingPatternTrack, ToneTrack
from tests.nodes import ORGANISER_KEY, Node, make_config
from tests.redis_server import RedisServer, free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.redis,
    needs_chromium,
    pytest.mark.usefixtures("loopback_ice"),
    pytest.mark.asyncio(loop_scope="module"),
]

# What the screen's peer connection has decoded (window.lampio: the page's test hook).
DECODED = """async () => {
  const pc = window.lampio.pc;
  const video = document.getElementById('tv-video');
  const out = {frames: 0, width: video.videoWidth, muted: video.muted};
  if (!pc) return out;
  (await pc.getStats()).forEach((report) => {
    if (report.type === 'inbound-rtp' && report.kind === 'video') {
      out.frames = report.framesDecoded ?? 0;
    }
  });
  return out;
}"""


class Site(Node):
    """The node on a fixed loopback port and a Redis bus: it can be stopped and started again."""

    def __init__(self, redis: RedisServer) -> None:
        port = free_port()
        super().__init__(None, f"http://127.0.0.1:{port}")
        self.redis = redis
        self.port = port

    async def start(self) -> None:
        bus = await RedisBus.connect(self.redis.url)
        app = create_app(make_config(public_url=self.url), bus=bus)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                self.url + path, json=body, headers={"Authorization": f"Bearer {ORGANISER_KEY}"}
            ) as response,
        ):
            assert response.status == 201, await response.text()
            answer: dict[str, Any] = await response.json()
            return answer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def site(redis_server: RedisServer) -> AsyncIterator[Site]:
    redis_server.flush()
    running = Site(redis_server)
    await running.start()
    yield running
    await running.stop()


@asynccontextmanager
async def performing(site: Site, show: dict[str, Any]) -> AsyncIterator[Performer]:
    """The show live from the Python client, until the block ends."""
    performer = Performer(await Session.connect(site.url))
    try:
        await performer.start(
            show["id"], show["performer_token"], [MovingPatternTrack(), ToneTrack()]
        )
        yield performer
    finally:
        await performer.stop()
        await performer.session.close()


async def open_screen(
    browser: Browser, site: Site, sent: list[dict[str, Any]] | None = None
) -> tuple[Tab, list[dict[str, Any]]]:
    """A fresh TV on `/screen`, and what its WebSocket received (read without touching the page,
    which would count as someone pressing it and unlock the sound); what it sends goes to
    ``sent``, if given."""
    tab = await open_tab(browser, "about:blank")
    received: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        ws.on("framereceived", lambda payload: received.append(json.loads(payload)))
        if sent is not None:
            ws.on("framesent", lambda payload: sent.append(json.loads(payload)))

    tab.page.on("websocket", on_socket)
    await tab.page.goto(site.url + "/screen")
    return tab, received


async def pairing_code(received: list[dict[str, Any]]) -> str:
    async def code() -> str:
        for message in reversed(received):
            result = message.get("result") or {}
            if result.get("state") == "pairing":
                return str(result["code"])
        return ""

    return await eventually(code, 20, interval=PAGE_INTERVAL)


async def decoded(tab: Tab) -> dict[str, Any]:
    result: dict[str, Any] = await tab.eval(DECODED)
    return result


async def wait_playing(tab: Tab, timeout: float = 30) -> dict[str, Any]:
    """Frames decoded, a picture shown, and more frames after."""

    async def frames_after(n: int) -> dict[str, Any]:
        now = await decoded(tab)
        return now if now["frames"] > n and now["width"] > 0 else {}

    try:
        first = await eventually(lambda: frames_after(0), timeout, interval=0.2)
        return await eventually(lambda: frames_after(first["frames"] + 10), timeout, interval=0.2)
    except AssertionError as error:
        raise AssertionError(f"{error}\nconsole:\n{tab.console()}") from None


async def next_event(session: Session, kind: str, check: Any, timeout: float = 20) -> None:
    """Wait for an event of ``kind`` for which ``check(event)`` holds."""

    async def seen() -> bool:
        event = await session.next_event(kind, timeout)
        return bool(check(event))

    await eventually(seen, timeout)


def viewer_camera_gone(site: Site, show_id: str) -> Callable[[], bool]:
    """Whether no viewer of the show has a camera connection any more (the TV closed its own)."""
    return lambda: not [s for s in site.services.cameras.seats(show_id) if not s.wall]


@needs_axe
async def test_staff_pair_a_screen_it_plays_and_the_phone_steers_it(
    browser: Browser, site: Site
) -> None:
    show = await site.post("/api/shows", {"title": "Kevätkonsertti", "performer": "Kuoro"})
    staff = await site.post("/api/staff-keys", {"label": "Hoivakoti Kuusela"})
    host = await Session.connect(site.url)  # the performer's view of the audience
    await host.request("perform.host", show=show["id"], token=show["performer_token"])
    async with performing(site, show):
        screen, received = await open_screen(browser, site)
        code = await pairing_code(received)

        phone = await open_tab(browser, site.url + "/screen/pair")
        key = phone.page.get_by_label("Kirjoita avain, jonka sait järjestäjältä")
        await key.wait_for(state="visible", timeout=10_000)
        await accessible_in_every_language(phone, "/screen/pair key entry")
        await key.fill(staff["key"])
        await key.press("Enter")
        await wait_text(phone, "#signed-in", "Hoivakoti Kuusela")
        await phone.page.get_by_label("Näytön koodi").fill(f"{code[:3]} {code[3:]}")
        await phone.page.get_by_label("Näytön nimi").fill("Olohuone")
        await phone.page.get_by_role("button", name="Yhdistä näyttö").click()
        await wait_text(phone, "#pair-status", "Näyttö Olohuone on yhdistetty.")

        # nobody touched the TV: it joins by itself and plays silently, with one button for sound
        await eventually(lambda: "watch.answer" in screen.sent, 30)
        sound = screen.page.get_by_role("button", name="Laita ääni päälle")
        await sound.wait_for(state="visible", timeout=10_000)
        assert (await decoded(screen))["muted"] is True
        await wait_playing(screen)
        await wait_text(screen, "#tv-status", "Nyt suorana.")
        assert await text_of(screen, "#tv-title") == "Kevätkonsertti"
        # the node steps the room's picture down on a weak link (its decision stood in for here:
        # tests/test_renditions.py, tests/test_weak_links.py make it): the TV says so, calmly
        (watched,) = [v for v in site.stage._viewers if v.show_id == show["id"]]
        assert watched.on_picture is not None
        watched.on_picture("180p", "weak_link")
        await wait_text(screen, "#tv-status", "Heikko yhteys – kuva pienempänä.")
        watched.on_picture("original", "link_recovered")

        async def plain_again() -> bool:
            return "Heikko" not in await text_of(screen, "#tv-status")

        await eventually(plain_again, 5)
        await wait_text(phone, ".remote-sound", "paina näytöltä painiketta")
        await assert_accessible(screen.page, "/screen playing, sound blocked (fi)")
        await sound.click()
        await sound.wait_for(state="hidden", timeout=5_000)
        assert (await decoded(screen))["muted"] is False
        await wait_text(phone, ".remote-status", "Näyttää nyt: Kevätkonsertti.")
        await wait_text(phone, ".remote-sound", "Ääni on päällä.")
        await screen.screenshot("screen-playing")

        # the room has twelve residents: the performer counts them, the TV shows it
        await screen.eval("() => { window.firstPc = window.lampio.pc; }")
        heads = phone.page.get_by_role("spinbutton", name="Katsojia huoneessa")
        await heads.fill("12")
        await heads.press("Tab")
        await next_event(host, "audience", lambda e: e["viewers"] == 12)
        await wait_text(screen, "#tv-heads", "Katsojia: 12")
        await phone.page.get_by_role("button", name="Yksi katsoja lisää").click()
        await next_event(host, "audience", lambda e: e["viewers"] == 13)
        # staff applaud for the room: the performer's meter moves, the TV says so
        await phone.page.get_by_role("button", name="Taputa").click()
        await wait_text(phone, ".remote-note", "Lähetetty: taputus.")
        await next_event(host, "reactions", lambda e: e["counts"].get("applause"))
        await wait_text(screen, "#tv-note", "Huoneesta lähetetty: taputus")
        await wait_playing(screen, 5)  # the picture never stopped: the same connection plays on
        assert await screen.eval("() => window.lampio.pc === window.firstPc")
        await phone.page.get_by_role("button", name="Hiljemmälle").click()
        await eventually(
            lambda: screen.eval("() => document.getElementById('tv-video').volume < .75"),
            10,
            interval=PAGE_INTERVAL,
        )
        await phone.screenshot("screen-remote")

        # staff show the room to the performer: the TV says who sees it, the wall shows the room
        wall = Cameras(host)
        await wall.join_wall(slots=2)
        assert await text_of(screen, "#tv-camera") == ""
        await phone.page.get_by_label("Näytä huone lämpiölle ja esiintyjälle").check()
        await wait_text(screen, "#tv-camera", "esiintyjä näkee huoneen")
        shown: list[dict[str, Any]] = []
        await next_event(host, "wall.state", lambda e: shown.append(e) or e["cameras"])
        assert [c["name"] for c in shown[-1]["cameras"]] == ["Olohuone"]
        await eventually(lambda: wall.frames.get(0, 0) >= 10, 15)
        await accessible_in_every_language(screen, "/screen playing, the room's camera on")
        # off again: nobody sees the room, and the TV lets its camera go
        await phone.page.get_by_label("Pois", exact=True).check()
        await next_event(host, "wall.state", lambda e: not e["cameras"])
        await eventually(viewer_camera_gone(site, show["id"]), 10)
        assert await screen.page.locator("#tv-camera").is_hidden()
        await wall.close()

        # staff choose another show for the room, then leave it to the programme again
        other = await site.post("/api/shows", {"title": "Tuolijumppa"})
        await phone.page.reload()  # the list of shows is read when the remote opens
        choice = phone.page.get_by_label("Esitys", exact=True)
        await choice.wait_for(state="visible", timeout=10_000)
        await choice.select_option(other["id"])
        await wait_text(screen, "#tv-title", "Tuolijumppa")
        await wait_text(screen, "#tv-status", "Esitys ei ole vielä alkanut.")
        await wait_text(phone, ".remote-status", "Odottaa esityksen alkua: Tuolijumppa.")
        await choice.select_option("")
        await wait_text(screen, "#tv-title", "Kevätkonsertti")
        await wait_playing(screen)

        # a ticketed show: staff type the room's ticket once, the TV takes part with it
        ticketed = await site.post("/api/shows", {"title": "Lippukonsertti", "access": "ticket"})
        minted = await site.post(f"/api/shows/{ticketed['id']}/tickets", {"count": 1})
        ticket = phone.page.get_by_label("Lippu (jos esitykseen tarvitaan lippu)")
        await ticket.fill("1234")
        await phone.page.get_by_role("button", name="Tallenna lippu").click()
        await wait_text(phone, ".remote-note", "Lipussa on 16 numeroa.")
        await ticket.fill(minted["tickets"][0]["code_display"])
        await phone.page.get_by_role("button", name="Tallenna lippu").click()
        await wait_text(screen, "#tv-title", "Lippukonsertti")
        await wait_text(screen, "#tv-status", "Esitys ei ole vielä alkanut.")
        await wait_text(phone, ".remote-status", "Odottaa esityksen alkua: Lippukonsertti.")
        # the organiser renames it: the TV shows it as it is now
        async with (
            aiohttp.ClientSession() as http,
            http.patch(
                f"{site.url}/api/shows/{ticketed['id']}",
                json={"title": "Joulun lippukonsertti"},
                headers={"Authorization": f"Bearer {ORGANISER_KEY}"},
            ) as renamed,
        ):
            assert renamed.status == 200
        await wait_text(screen, "#tv-title", "Joulun lippukonsertti")

        await accessible_in_every_language(phone, "/screen/pair remote")
        await accessible_in_every_language(screen, "/screen playing")
    await host.close()


async def test_the_screen_comes_back_by_itself_after_the_server_restarts(
    browser: Browser, site: Site
) -> None:
    show = await site.post("/api/shows", {"title": "Yhteislaulu"})
    staff = await site.post("/api/staff-keys", {"label": "Palvelutalo Koivu"})
    sent: list[dict[str, Any]] = []
    screen, received = await open_screen(browser, site, sent)
    phone = await Session.connect(site.url)
    await phone.request("remote.open", key=staff["key"])
    await phone.request("screen.pair", code=await pairing_code(received))
    await phone.close()
    async with performing(site, show):
        await wait_playing(screen)
        await screen.eval("() => { window.firstPc = window.lampio.pc; }")

    sent_before, received_before = len(sent), len(received)
    await site.stop()
    await wait_text(screen, "#tv-status", "Yhteys katkesi.")
    await site.start()  # the same port, the same Redis: the same shows, screens and tokens
    async with performing(site, show):
        await wait_playing(screen, timeout=60)
        assert await screen.eval("() => window.lampio.pc !== window.firstPc")
        await wait_text(screen, "#tv-status", "Nyt suorana.")
        assert await text_of(screen, "#tv-title") == "Yhteislaulu"
        assert "screen.hello" in screen.sent and screen.sent.count("watch.join") >= 2
    # it came back as the same member of the same lobby (not a second member in any lobby, its
    # old presence counting the room twice until it fades)
    [*_, seated] = [m for m in sent[:sent_before] if m.get("type") == "watch.join"]
    [*_, seat] = [
        m["result"]
        for m in received[:received_before]
        if m.get("id") == seated["id"] and "result" in m
    ]
    back = next(m for m in sent[sent_before:] if m.get("type") == "watch.join")
    assert back["lobby"] == seat["lobby"]["code"] and back["session"] == seat["session"]


@needs_axe
async def test_the_pairing_code_is_large_and_accessible_on_tablets_and_tvs(
    browser: Browser, site: Site
) -> None:
    screen, received = await open_screen(browser, site)
    code = await pairing_code(received)
    await wait_text(screen, "#pair-code", f"{code[:3]} {code[3:]}")
    await wait_text(screen, "#pair-url", f"{site.url}/screen/pair")
    for width, height in [(1024, 768), (1920, 1080)]:
        await screen.page.set_viewport_size({"width": width, "height": height})
        box = await screen.page.locator("#pair-code").bounding_box()
        assert box is not None and box["y"] + box["height"] <= height and box["height"] >= 80
    await accessible_in_every_language(screen, "/screen pairing code")
    await wait_text(screen, "#pairing-title", "Yhdistä tämä näyttö")
    # the code survives a reload (the screen remembers its pending token)
    await screen.page.reload()
    await wait_text(screen, "#pair-code", f"{code[:3]} {code[3:]}")


async def test_the_code_renews_by_itself_and_the_phone_says_to_read_the_new_one(
    browser: Browser, site: Site
) -> None:
    """The code has a time limit (10 minutes): the screen shows a new one by itself, and a phone
    that types the old one is told to read the new one on the screen."""
    staff = await site.post("/api/staff-keys", {"label": "Hoivakoti Kuusela"})
    site.screens.pairing_lifetime = 2
    screen, received = await open_screen(browser, site)
    old = await pairing_code(received)
    site.screens.pairing_lifetime = 600  # the next code lasts
    await wait_text(screen, "#pair-code", f"{old[:3]} {old[3:]}")

    async def new_code() -> str:
        shown = (await text_of(screen, "#pair-code")).replace(" ", "")
        return shown if shown and shown != old else ""

    fresh = await eventually(new_code, 10, interval=PAGE_INTERVAL)  # nobody touched anything
    phone = await open_tab(browser, site.url + "/screen/pair")
    key = phone.page.get_by_label("Kirjoita avain, jonka sait järjestäjältä")
    await key.fill(staff["key"])
    await key.press("Enter")
    await wait_text(phone, "#signed-in", "Hoivakoti Kuusela")
    await phone.page.get_by_label("Näytön koodi").fill(old)
    await phone.page.get_by_role("button", name="Yhdistä näyttö").click()
    await wait_text(phone, "#pair-status", "Näytöllä on nyt uusi koodi: katso se näytöltä")
    await phone.page.get_by_label("Näytön koodi").fill(fresh)
    await phone.page.get_by_role("button", name="Yhdistä näyttö").click()
    await wait_text(phone, "#pair-status", "on yhdistetty")
    await wait_text(screen, "#tv-status", "Ohjelmassa ei ole nyt esityksiä.")


async def test_a_screen_that_cannot_carry_on_starts_over_by_itself(
    browser: Browser, site: Site
) -> None:
    """Whatever fails, the screen never stays stuck: a failed hello starts the connection over, and
    a screen forgotten behind its back shows a new code."""
    limiter = site.new_pairing_limiter
    site.screens.pairing_lifetime = 2
    screen, received = await open_screen(browser, site)
    old = await pairing_code(received)
    site.screens.pairing_lifetime = 600

    # the code expires and no new one can be had right now: not the old code forever, but over
    limiter.limit = 0
    await wait_text(screen, "#tv-status", "Yhteys katkesi.")
    assert await screen.eval("() => document.getElementById('pairing').hidden")
    limiter.limit = 30
    await wait_text(screen, "#pairing-title", "Yhdistä tämä näyttö")

    async def new_code() -> str:
        shown = (await text_of(screen, "#pair-code")).replace(" ", "")
        return (
            shown
            if shown
            and shown != old
            and not await screen.eval("() => document.getElementById('pairing').hidden")
            else ""
        )

    code = await eventually(new_code, 30, interval=PAGE_INTERVAL)

    # paired, then forgotten without a word to the screen: its next report finds that out
    staff = await site.post("/api/staff-keys", {"label": "Hoivakoti Kuusela"})
    phone = await Session.connect(site.url)
    try:
        await phone.request("remote.open", key=staff["key"])
        paired = (await phone.request("screen.pair", code=code))["screen"]
        await wait_text(screen, "#tv-status", "Ohjelmassa ei ole nyt esityksiä.")
        await site.screens.forget(paired["id"])
        await site.bus.publish(
            screen_channel(paired["id"]), {"type": "screen.control", "screen": paired}
        )
        await wait_text(screen, "#tv-status", "Odottaa, että henkilökunta yhdistää näytön.")
        code = await eventually(new_code, 10, interval=PAGE_INTERVAL)

        # unpaired while no new code can be had: it does not carry on as if still paired
        paired = (await phone.request("screen.pair", code=code))["screen"]
        await wait_text(screen, "#tv-status", "Ohjelmassa ei ole nyt esityksiä.")
        limiter.limit = 0
        await phone.request("remote.forget", screen=paired["id"])
        await wait_text(screen, "#tv-status", "Yhteys katkesi.")
        limiter.limit = 30
        await wait_text(screen, "#tv-status", "Odottaa, että henkilökunta yhdistää näytön.", 30)
    finally:
        await phone.close()


async def test_the_phone_keeps_its_key_and_is_never_blank(
    browser: Browser, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A care home's phones share an address: too many wrong keys from it make the remote wait,
    they do not wipe the saved key; any other failure shows the key view and tries again."""
    staff = await site.post("/api/staff-keys", {"label": "Hoivakoti Kuusela"})
    phone = await open_tab(browser, site.url + "/screen/pair")
    key = phone.page.get_by_label("Kirjoita avain, jonka sait järjestäjältä")
    await key.fill(staff["key"])
    await key.press("Enter")
    await wait_text(phone, "#signed-in", "Hoivakoti Kuusela")
    saved = "() => localStorage.getItem('lampio.staff.key')"

    limiter = site.staff_key_limiter
    limiter.limit, limiter.window = 0, 1  # as after ten wrong keys: "wait a second"
    await phone.page.reload()
    await wait_text(phone, "#key-status", "Odota hetki: avain on tallessa")
    assert await phone.eval(saved) == staff["key"]
    limiter.limit = 10
    await phone.page.locator("#remote-view").wait_for(state="visible", timeout=20_000)

    async def broken(secret: str) -> None:
        raise RuntimeError("the bus is down")

    monkeypatch.setattr(site.screens, "staff_key", broken)
    await phone.page.reload()
    await wait_text(phone, "#key-status", "Kaukosäädin ei vielä auennut.")
    assert await phone.eval("() => !document.getElementById('key-view').hidden")
    assert await phone.eval(saved) == staff["key"]
    monkeypatch.undo()
    await phone.page.locator("#remote-view").wait_for(state="visible", timeout=30_000)
    await wait_text(phone, "#signed-in", "Hoivakoti Kuusela")
