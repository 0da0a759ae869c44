"""JSON from strangers: bounded nesting and numbers, valid Unicode only, one clear error.

Python's parser recurses (20,000 nested ``[`` raise ``RecursionError``), converts integers of any
length (over 4,300 digits raise a bare ``ValueError``) and accepts ``NaN`` and lone surrogates
(``"\\ud800"``), none of which any of our messages needs. Every JSON body and WebSocket message is
read through :func:`loads`, which refuses all of these with :class:`BadJson`.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 16  # our deepest message is three levels; a little room for clients' own fields
MAX_DIGITS = 20  # any id or count fits in 64 bits


class BadJson(ValueError):
    """Not JSON we accept; the message says why."""


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise BadJson(f"numbers have at most {MAX_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    if len(text) > 2 * MAX_DIGITS:
        raise BadJson("numbers this long are refused")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadJson("numbers this large are refused")
    return value


def _constant(name: str) -> Any:
    raise BadJson(f"{name} is not a number we accept")


def loads(text: str | bytes) -> Any:
    """The JSON value of ``text``; :class:`BadJson` for anything malformed, too deep, with a
    number too long or with text that is not valid Unicode."""
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except BadJson:
        raise
    except RecursionError:
        raise BadJson(f"nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise BadJson("not valid JSON") from exc
    _check(value)
    return value


def _check(value: Any) -> None:
    """Depth and strings of a parsed value, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise BadJson(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, inner in item.items():
                    _text(key)
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)


def _text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadJson("text must be valid Unicode (no lone surrogates)") from None
