"""The audience sound through the real server: clapping viewers make applause the performer hears,
louder with more clappers, encoded once per show."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from clients.client import Performer, Session
from media.hall import HallSynth, rms
from media.sources import TestPatternTrack, ToneTrack
from tests.audience import clap, level_since, silence_then_applause
from tests.helpers import eventually
from tests.nodes import Node, serve

pytestmark = pytest.mark.usefixtures("loopback_ice")


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    """One node on the in-process bus (the reaction path across engines: tests/test_foyer.py)."""
    async with serve(lobby_size=50) as running:
        yield running


def test_synth_level_rises_with_the_number_of_clappers() -> None:
    levels = []
    for clappers in (0, 5, 50):
        synth = HallSynth(seed=7)
        synth.set_rates(applause=clappers * 1.5, laughter=0, bravo=0)
        levels.append(rms(b"".join(synth.frame() for _ in range(150))))
    assert levels[0] == 0 and levels[0] < levels[1] < levels[2]
    assert levels[2] > 2 * levels[1]


async def test_performer_hears_applause_grow_with_clappers(node: Node) -> None:
    show = await node.create_show()
    performer = Performer(await Session.connect(node.url))
    await performer.start(
        show["id"], show["performer_token"], [TestPatternTrack(320, 240), ToneTrack()], hall=True
    )
    viewers = [await Session.connect(node.url) for _ in range(50)]
    try:
        for viewer in viewers:
            await viewer.request("watch.join", code=show["code"])
        await eventually(lambda: len(performer.hall_pcm) > 50, 20)  # the hall sound arrives
        silent, levels = await silence_then_applause(performer.hall_pcm, viewers, (5, 50))
        assert silent < 50, silent
        assert silent < levels[0] < levels[1], (silent, levels)
        # one encoder for the show, at 50 frames a second, however many clap or listen
        sound = node.stage.hall_sound(show["id"])
        assert sound is not None
        start, frames = time.monotonic(), sound.frames
        await asyncio.sleep(1.0)  # a rate: frames counted over a second
        rate = (sound.frames - frames) / (time.monotonic() - start)
        assert 40 <= rate <= 60, rate
        # the performer can mute it
        await performer.session.request("hall.mute", muted=True)
        clapping = asyncio.ensure_future(clap(viewers, 3))
        # As above, only time fills the window with claps, which unmuted would be loud by now.
        await asyncio.sleep(1.5)
        muted_from = time.monotonic()
        await clapping
        assert level_since(performer.hall_pcm, muted_from) < 50
    finally:
        for viewer in viewers:
            await viewer.close()
        await performer.stop()
        await performer.session.close()


async def test_viewers_who_ask_hear_the_audience_sound(node: Node) -> None:
    from clients.client import Watcher

    show = await node.create_show()
    performer = Performer(await Session.connect(node.url))
    await performer.start(
        show["id"], show["performer_token"], [TestPatternTrack(320, 240), ToneTrack()], hall=True
    )
    listener = Watcher(await Session.connect(node.url))
    plain = Watcher(await Session.connect(node.url))
    try:
        await listener.join(show["code"])
        await listener.start(hall=True)
        await plain.join(show["code"])
        await plain.start()
        await eventually(lambda: listener.hall.frames >= 20 and listener.video.frames >= 5, 20)
        await eventually(lambda: plain.video.frames >= 5 and plain.audio.frames >= 5, 20)
        assert plain.hall.frames == 0  # a setting: only who asks gets it
        sound = node.stage.hall_sound(show["id"])
        assert sound is not None  # one synthesiser and encoder for the performer and viewers
    finally:
        for watcher in (listener, plain):
            await watcher.close()
            await watcher.session.close()
        await performer.stop()
        await performer.session.close()


async def test_the_hall_makes_nothing_when_nobody_listens(node: Node) -> None:
    show = await node.create_show()
    performer = Performer(await Session.connect(node.url))
    await performer.start(
        show["id"], show["performer_token"], [TestPatternTrack(320, 240), ToneTrack()], hall=True
    )
    sound = node.stage.hall_sound(show["id"])
    assert sound is not None
    await eventually(lambda: sound.frames > 10, 10)
    await performer.stop()
    await performer.session.close()
    await eventually(lambda: node.stage.hall(show["id"]).viewers == 0, 10)
    frames = sound.frames
    # Making nothing has no event to wait for: the hall is given 25 frames' time (0.5 s) to
    # make any.
    await asyncio.sleep(0.5)
    assert sound.frames - frames <= 2  # at most what was under way
