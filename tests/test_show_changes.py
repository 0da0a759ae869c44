"""Changes to one show's record from several places at once (the performer connecting while the
organiser renews the stream key) never lose one another, on both bus engines."""

from __future__ import annotations

import asyncio

from rooms.bus import Bus
from rooms.shows import Shows, ShowState


async def test_state_changes_and_key_renewals_at_once_keep_the_key_working(bus: Bus) -> None:
    shows = Shows(bus)
    show = await shows.create("Kevätkonsertti")
    for n in range(15):
        state = ShowState.LIVE if n % 2 else ShowState.PAUSED
        _, renewed = await asyncio.gather(
            shows.set_state(show.id, state), shows.rotate_stream_key(show.id)
        )
        current = await shows.get(show.id)
        assert current.stream_key == renewed.stream_key  # the renewal was not written over
        assert (await shows.by_stream_key(renewed.stream_key)).id == show.id
    assert (await shows.get(show.id)).state in (ShowState.LIVE, ShowState.PAUSED)
    assert not [k for k in await bus.keys("showlock:")]  # no lock left behind
