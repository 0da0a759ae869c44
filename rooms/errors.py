"""Errors of the domain, named after what went wrong; signaling/ maps each to a status and code."""

from __future__ import annotations


class RoomsError(Exception):
    """Base of the domain's errors; ``code`` is the stable, machine-readable name."""

    code = "error"


class InvalidInput(RoomsError):
    """A value from a client is missing, of the wrong type or out of range."""

    code = "invalid_input"


class Forbidden(RoomsError):
    """The client may not do this (a wrong performer token, a viewer sending a performer's
    command)."""

    code = "forbidden"


class ShowNotFound(RoomsError):
    """No show has that id or code (or it has ended)."""

    code = "show_not_found"


class ShowCancelled(ShowNotFound):
    """The show this code led to was called off (its code says so for a week)."""

    code = "show_cancelled"


class CodeSpaceExhausted(RoomsError):
    """No free audience code could be found; too many shows are open at once."""

    code = "no_free_code"


class RateLimited(RoomsError):
    """Too many attempts; try again after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
