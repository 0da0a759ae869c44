"""Audience codes: six random digits a senior can type on a big keypad, shown as ``123 456``."""

from __future__ import annotations

import re
import secrets

from rooms.errors import InvalidInput

CODE_DIGITS = 6
_SEPARATORS = re.compile(r"[\s\-\u00a0\u202f.]+")


def new_code() -> str:
    """A cryptographically random six-digit code (leading zeros allowed)."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def format_code(code: str) -> str:
    """The code as people read it: ``123456`` → ``123 456``."""
    return f"{code[:3]} {code[3:]}"


def digits_of(text: str) -> str:
    """What someone typed, without the spaces, dashes and dots people put between digits."""
    return _SEPARATORS.sub("", text)


def normalise_code(text: str) -> str:
    """The six digits someone typed, forgiving spaces, dashes and dots; else InvalidInput."""
    digits = _SEPARATORS.sub("", text)
    if len(digits) != CODE_DIGITS or not digits.isascii() or not digits.isdigit():
        raise InvalidInput("a code is six digits, like 123 456")
    return digits


def new_token() -> str:
    """An unguessable secret for performers, stream keys and sessions (256 bits)."""
    return secrets.token_urlsafe(32)
