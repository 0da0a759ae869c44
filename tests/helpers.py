"""Test helpers: wait for conditions, never for fixed times; post a body as it is; what a test
needs from the machine."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, overload

import aiohttp
import pytest
from multidict import CIMultiDict

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout: float = ...,
    message: str = ...,
    *,
    interval: float = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    timeout: float = ...,
    message: str = ...,
    *,
    interval: float = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    timeout: float = 5.0,
    message: str = "",
    *,
    interval: float = 0.02,
) -> Any:
    """Call ``check`` (awaiting what it returns, if awaitable) until it gives a truthy value, and
    return that value; after ``timeout`` seconds fail, saying what was awaited (``message``, or
    else the check's own source) and the last value the check gave."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            what = message or _describe(check)
            raise AssertionError(
                f"not within {timeout} s: {what} (last value: {_short(repr(value))})"
            )
        await asyncio.sleep(interval)


def _describe(check: Callable[..., object]) -> str:
    """The check's source (a lambda's whole line), or its name."""
    try:
        return _short(" ".join(inspect.getsource(check).split()))
    except (OSError, TypeError):
        return getattr(check, "__qualname__", repr(check))


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def post(url: str, body: str, **headers: str) -> tuple[int, CIMultiDict[str], str]:
    """POST ``body`` as it is (an SDP offer, say): status, headers and text of the answer."""
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        return r.status, CIMultiDict(r.headers), await r.text()


def in_ci() -> bool:
    """Whether this run is CI's (``CI`` set, as CI services set it: ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def check_needs(item: pytest.Item) -> None:
    """For each ``@pytest.mark.needs(path, what)`` of the test whose ``path`` is missing: skip
    on a developer's machine; fail in CI, where a missing browser or axe-core must not pass as
    green (tests/conftest.py calls this before every test)."""
    for mark in item.iter_markers("needs"):
        path, what = Path(mark.args[0]), mark.args[1]
        if path.exists():
            continue
        if in_ci():
            pytest.fail(
                f"needs {what} at {path}, which is missing: in CI (CI={os.environ['CI']!r}) "
                "browser and accessibility tests fail instead of skipping",
                pytrace=False,
            )
        pytest.skip(f"needs {what} at {path}")
