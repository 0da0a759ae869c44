"""Domain pieces on their own: codes, the token bucket, show records."""

from __future__ import annotations

from collections import Counter

import pytest

from rooms.codes import format_code, new_code, new_token, normalise_code
from rooms.errors import InvalidInput, ShowNotFound
from rooms.ratelimit import TokenBucket
from rooms.shows import Shows, ShowState


@pytest.mark.parametrize("typed", ["123456", "123 456", " 123-456 ", "123.456", "123\u00a0456"])
def test_codes_forgive_how_people_type_them(typed: str) -> None:
    assert normalise_code(typed) == "123456"


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "12345a", "١٢٣٤٥٦", "123 45"])
def test_codes_refuse_what_is_not_six_digits(typed: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_code(typed)


def test_new_codes_are_six_digits_and_spread_out() -> None:
    codes = [new_code() for _ in range(2000)]
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    first_digits = Counter(c[0] for c in codes)
    assert len(first_digits) == 10 and min(first_digits.values()) > 100
    assert format_code("012345") == "012 345"
    assert len({new_token() for _ in range(100)}) == 100


def test_token_bucket_allows_bursts_then_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take() == 0.0
    now[0] += 100
    assert [bucket.take() for _ in range(4)][-1] > 0  # refills to the burst, not beyond


async def test_ending_a_show_frees_its_code_and_hides_it(bus: object) -> None:
    shows = Shows(bus)  # type: ignore[arg-type]
    show = await shows.create("Bingo")
    assert (await shows.by_code(show.code)).id == show.id
    live = await shows.set_state(show.id, ShowState.LIVE)
    assert live.state is ShowState.LIVE
    assert [s.id for s in await shows.programme()] == [show.id]
    await shows.set_state(show.id, ShowState.ENDED)
    with pytest.raises(ShowNotFound):
        await shows.by_code(show.code)
    assert await shows.programme() == []
    assert (await shows.get(show.id)).state is ShowState.ENDED  # kept for reports
