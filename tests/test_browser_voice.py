"""Lobby voice in headless Chromium: the browser's voice module (clients/web/voice.js) with the fake
microphone (a beep) — two members of one lobby hear each other, a member of another lobby hears
nobody; the microphone is asked for only when the member turns it on.

The module is driven directly in the page (the Watch page builds its button on it), so the check
is the sound itself: audio packets and energy arriving on the voice connection's slots.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser

from tests.browser import PAGE_INTERVAL, Tab, chromium, needs_chromium, open_tab, serve
from tests.helpers import eventually
from tests.nodes import Node

pytestmark = [pytest.mark.browser, needs_chromium]

JOIN = """async ([code, name]) => {
  const { Connection } = await import('/static/protocol.js');
  const { LobbyVoice } = await import('/static/voice.js');
  const conn = await Connection.open();
  const joined = await conn.request('watch.join', { code, name });
  const states = [];
  const voice = new LobbyVoice(conn, {
    lobby: joined.lobby.id, member: joined.me.id, showState: joined.show.state,
    onChange: (state) => states.push(state),
  });
  await voice.start();
  window.lampioVoice = { conn, voice, states };
  return { lobby: joined.lobby.id, me: joined.me.id, state: voice.state };
}"""

# What arrived on the voice connection's slots: packets and audio energy per slot with sound.
HEARD = """async () => {
  const stats = await window.lampioVoice.voice.pc.getStats();
  const heard = [];
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.packetsReceived > 0) {
      heard.push({ mid: s.mid, packets: s.packetsReceived, energy: s.totalAudioEnergy || 0 });
    }
  });
  return heard;
}"""


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    async with serve(lobby_size=2) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


async def member(browser: Browser, node: Node, code: str, name: str) -> tuple[Tab, dict[str, Any]]:
    tab = await open_tab(browser, node.url + "/")
    joined: dict[str, Any] = await tab.eval(JOIN, [code, name])
    return tab, joined


async def heard(tab: Tab) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await tab.eval(HEARD)
    return result


async def test_two_members_hear_each_other_another_lobby_hears_nobody(
    browser: Browser, node: Node
) -> None:
    show = await node.create_show()
    (ann, ann_joined), (bo, bo_joined) = [
        await member(browser, node, show["code"], name) for name in ("Ann", "Bo")
    ]
    cai, cai_joined = await member(browser, node, show["code"], "Cai")
    assert ann_joined["lobby"] == bo_joined["lobby"] != cai_joined["lobby"]
    assert ann_joined["state"]["open"] is True and ann_joined["state"]["mic"] is False
    # Nobody was asked for a microphone just by joining: no track leaves the page yet.
    assert await ann.eval("() => window.lampioVoice.voice.micTrack === null")

    for tab in (ann, bo, cai):
        await tab.eval("() => window.lampioVoice.voice.setMic(true)")
    # Each hears the other's beep on one slot; the energy shows it is sound, not silence.
    for tab in (ann, bo):
        slots = await eventually(lambda tab=tab: _sounding(tab), 20, interval=PAGE_INTERVAL)
        assert len(slots) == 1, (slots, tab.console())
    # Bo's page knows Ann is talking: the show's sound would duck.
    state = await eventually(
        lambda: bo.eval(
            "() => { const s = window.lampioVoice.voice.state; return s.talking.length ? s : null }"
        ),
        10,
        interval=PAGE_INTERVAL,
    )
    assert state["talking"] == [ann_joined["me"]] and state["duck"] is True
    assert await heard(cai) == [], "a member alone in another lobby hears nobody"

    # Ann turns the microphone off: Bo's lobby is told, Bo's page stops ducking.
    await ann.eval("() => window.lampioVoice.voice.setMic(false)")
    await eventually(
        lambda: bo.eval("() => !window.lampioVoice.voice.state.duck"), 10, interval=PAGE_INTERVAL
    )
    for tab in (ann, bo, cai):
        await tab.eval("() => window.lampioVoice.voice.close()")
        await tab.context.close()


async def _sounding(tab: Tab) -> list[dict[str, Any]] | None:
    slots = [s for s in await heard(tab) if s["energy"] > 0]
    return slots or None


async def test_the_voice_joins_again_when_its_connection_is_lost(
    browser: Browser, node: Node
) -> None:
    show = await node.create_show()
    ann, ann_joined = await member(browser, node, show["code"], "Ann")
    bo, _ = await member(browser, node, show["code"], "Bo")
    await ann.eval("() => window.lampioVoice.voice.setMic(true)")
    await eventually(lambda: _sounding(bo), 20, interval=PAGE_INTERVAL)
    await ann.eval("() => { window.firstVoicePc = window.lampioVoice.voice.pc; }")
    # The server lets Ann's voice go (as when it never connected or failed on the way).
    (seat,) = [s for s in node.voices.seats(show["id"]) if s.key == ann_joined["me"]]
    await seat.pc.close()
    rejoined = """() => { const v = window.lampioVoice.voice;
      return v.state.joined && v.pc !== window.firstVoicePc }"""
    await eventually(lambda: ann.eval(rejoined), 30, interval=PAGE_INTERVAL)
    # The microphone starts off again (nobody is heard by surprise), and turning it on works.
    assert await ann.eval("() => window.lampioVoice.voice.state.mic") is False
    await ann.eval("() => window.lampioVoice.voice.setMic(true)")
    assert await ann.eval("() => window.lampioVoice.voice.micTrack.readyState") == "live"
    await ann.eval("() => window.lampioVoice.voice.setMic(false)")
    # Off means the microphone itself is released, not only muted.
    assert await ann.eval("() => window.lampioVoice.voice.micTrack") is None
    for tab in (ann, bo):
        await tab.eval("() => window.lampioVoice.voice.close()")
        await tab.context.close()
