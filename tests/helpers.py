"""Test helpers: wait for conditions, never for fixed times; post a body as it is."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import aiohttp
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
