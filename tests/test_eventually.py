"""``eventually``, the one way tests wait: for a sync or an async check, with a clear failure."""

from __future__ import annotations

import pytest

from tests.helpers import eventually


async def test_a_sync_check_gives_its_first_truthy_value() -> None:
    calls: list[int] = []

    def grows() -> list[int]:
        calls.append(len(calls))
        return calls if len(calls) >= 3 else []

    assert await eventually(grows, 1) == [0, 1, 2]


async def test_an_async_check_is_awaited() -> None:
    answers = iter([None, 0, "here"])

    async def answer() -> str | int | None:
        return next(answers)

    assert await eventually(answer, 1, interval=0.001) == "here"


async def test_a_failure_says_what_was_awaited_and_the_last_value() -> None:
    with pytest.raises(
        AssertionError, match=r"not within 0.05 s: the door opens \(last value: 0\)"
    ):
        await eventually(lambda: 0, 0.05, "the door opens")
    with pytest.raises(AssertionError, match=r"lambda: \[\] == \[1\].*last value: False"):
        await eventually(lambda: [] == [1], 0.05)
