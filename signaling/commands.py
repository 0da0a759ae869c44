"""The WebSocket's commands: a registry keyed by message ``type``, built once per app, each command
with its declared schema (fields, types, bounds), so no handler checks its input by hand.

Schemas are voluptuous schemas of the message's fields (the envelope's ``id`` and ``type`` aside);
fields not declared are dropped before the handler sees the message. Text fields take valid Unicode
only: a lone surrogate (which JSON can carry as an escape) is refused at the edge.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import voluptuous as vol

from rooms.bus import BusError, check_stream_id
from rooms.errors import InvalidInput

if TYPE_CHECKING:
    from signaling.connection import Connection
    from signaling.services import Services

Message = dict[str, Any]
Result = dict[str, Any] | None
Handler = Callable[["Connection", "Services", Message], Awaitable[Result]]

# The lane of commands that negotiate media (seconds, not milliseconds): they run in order among
# themselves, apart from the connection's other commands, so a ping or a chat message is answered
# while a peer connection is being set up.
MEDIA = "media"

Required = vol.Required
Optional = vol.Optional


def Text(max_len: int, *, min_len: int = 0) -> Callable[[object], str]:
    """A string of ``min_len``–``max_len`` characters, all valid Unicode scalar values."""

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise vol.Invalid("must be text")
        if not min_len <= len(value) <= max_len:
            raise vol.Invalid(
                f"must be at most {max_len} characters"
                if min_len == 0
                else f"must be {min_len}–{max_len} characters"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise vol.Invalid("must be valid Unicode text") from None
        return value

    return check


def Int(low: int, high: int) -> Callable[[object], int]:
    """A whole number from ``low`` to ``high`` (not a boolean)."""

    def check(value: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise vol.Invalid("must be a whole number")
        if not low <= value <= high:
            raise vol.Invalid(f"must be {low}–{high}")
        return value

    return check


def MessageId(value: object) -> str:
    """A chat message's id as the bus gives it (``ms-seq``)."""
    try:
        if isinstance(value, str):
            return check_stream_id(value)
    except BusError:
        pass
    raise vol.Invalid("must be a message id")


def Bool(value: object) -> bool:
    """True or false."""
    if not isinstance(value, bool):
        raise vol.Invalid("must be true or false")
    return value


def OneOf(*choices: str) -> Callable[[object], str]:
    """One of the named strings."""
    allowed = frozenset(choices)

    def check(value: object) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise vol.Invalid(f"must be one of {', '.join(sorted(allowed))}")
        return value

    return check


def Nullable(validator: Callable[[object], Any]) -> Callable[[object], Any]:
    """``validator``'s values, or null."""

    def check(value: object) -> Any:
        return None if value is None else validator(value)

    return check


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command: its handler, its schema and the lane it runs in."""

    handler: Handler
    schema: vol.Schema
    lane: str | None = None

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the fields it declares."""
        return tuple(str(key) for key in self.schema.schema)

    def validate(self, msg: Message) -> Message:
        """The message's declared fields, checked (defaults filled in); InvalidInput if not."""
        fields = {k: v for k, v in msg.items() if k not in ("id", "type")}
        try:
            checked: Message = self.schema(fields)
        except vol.MultipleInvalid as exc:
            first = exc.errors[0]
            where = ".".join(str(p) for p in first.path) or "message"
            raise InvalidInput(f"'{where}' {_plain(first)}") from None
        return checked


def _plain(error: vol.Invalid) -> str:
    if error.error_message == "required key not provided":
        return "is required"
    if error.error_message.startswith("must"):
        return error.error_message
    return f"is not valid: {error.error_message}"


class Commands:
    """Commands keyed by message ``type`` (one registry per app, filled by each module's
    ``register``)."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def add(
        self,
        message_type: str,
        handler: Handler,
        fields: Mapping[Any, Any] | None = None,
        *,
        lane: str | None = None,
    ) -> None:
        """Register ``handler`` for ``message_type`` with the schema of its ``fields``."""
        if message_type in self._commands:
            raise ValueError(f"{message_type!r} is registered twice")
        declared = fields or {}
        if {"id", "type"} & {str(key) for key in declared}:
            raise ValueError("'id' and 'type' belong to the envelope")
        schema = vol.Schema(dict(declared), extra=vol.REMOVE_EXTRA)
        self._commands[message_type] = Command(handler, schema, lane)

    def names(self) -> list[str]:
        """Every registered message type, sorted."""
        return sorted(self._commands)

    def get(self, name: str) -> Command | None:
        """The command for a type, if any."""
        return self._commands.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def __len__(self) -> int:
        return len(self._commands)
