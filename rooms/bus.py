"""The bus: the one small interface the domain uses to share state between connections and nodes.

Two engines implement it: :mod:`rooms.bus_memory` (in process, the default, one node) and
:mod:`rooms.bus_redis` (a real Redis, many nodes). Both carry msgpack-encoded messages and are held
to the same contract by ``tests/test_bus_contract.py``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

Message = dict[str, Any]

# Stream ids look like Redis stream ids ("<milliseconds>-<sequence>", each part a 64-bit unsigned
# number in ASCII digits) on both engines, so a client that resumes with an id it saw never needs
# to know which engine served it.
_STREAM_ID = re.compile(r"(\d{1,20})-(\d{1,20})", re.ASCII)
STREAM_PART_MAX = 2**64 - 1
STREAM_START = "0-0"
STREAM_LAST = f"{STREAM_PART_MAX}-{STREAM_PART_MAX}"  # nothing can come after it


class BusError(Exception):
    """The bus could not do what was asked (engine unreachable, bad argument)."""


class BusUnavailable(BusError):
    """The bus engine cannot be reached right now."""


@dataclass(frozen=True, slots=True)
class Opening:
    """What :meth:`Bus.group_seat` opens when no listed group has room: the new group's ``name``
    in the directory, its directory ``value`` and ``ttl``, and a key ``claim``-ed for it (only if
    nobody holds it; with ``value`` for ``ttl``: a lobby's friends' code)."""

    name: str
    value: Message
    ttl: float
    claim: str


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry of an append-only stream: its id and its message."""

    id: str
    message: Message


def encode(message: Message) -> bytes:
    """Encode a message for the wire (msgpack)."""
    return msgpack.packb(message, use_bin_type=True)


def decode(data: bytes) -> Message:
    """Decode a message from the wire; anything that is not a msgpack map is an error."""
    value = msgpack.unpackb(data, raw=False)
    if not isinstance(value, dict):
        raise BusError("bus message is not a map")
    return value


def check_stream_id(stream_id: str) -> str:
    """Return a valid stream id or raise :class:`BusError` (other digits than ASCII, a line break
    after it or a part beyond 64 bits, which Redis refuses, included)."""
    match = _STREAM_ID.fullmatch(stream_id) if isinstance(stream_id, str) else None
    if match is None or any(int(part) > STREAM_PART_MAX for part in match.groups()):
        raise BusError(f"invalid stream id: {stream_id!r:.80}")
    return stream_id


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """Sort key of a stream id."""
    ms, seq = check_stream_id(stream_id).split("-")
    return int(ms), int(seq)


class Subscription(Protocol):
    """Live messages on one channel, in order, until closed."""

    channel: str

    def __aiter__(self) -> AsyncIterator[Message]: ...

    async def get(self, timeout: float | None = None) -> Message:
        """Wait for the next message (``TimeoutError`` after ``timeout`` seconds)."""
        ...

    async def close(self) -> None:
        """Stop receiving; safe to call twice."""
        ...


class Bus(Protocol):
    """Publish/subscribe, append-only streams, keys with expiry, groups and counters."""

    name: str

    # Live events: delivered to the subscribers present at the time, never stored.
    async def publish(self, channel: str, message: Message) -> None:
        """Send ``message`` to everyone subscribed to ``channel`` right now."""
        ...

    async def subscribe(self, channel: str) -> Subscription:
        """Start receiving messages published on ``channel`` from now on."""
        ...

    # Append-only streams (chat): stored, bounded, read from an id so clients can resume.
    async def append(
        self, stream: str, message: Message, *, maxlen: int, ttl: float | None = None
    ) -> str:
        """Store ``message`` at the end of ``stream``, keep the ``maxlen`` newest; return its id."""
        ...

    async def append_once(
        self,
        stream: str,
        message: Message,
        *,
        once: str,
        remember: float,
        maxlen: int,
        ttl: float | None = None,
    ) -> tuple[str, bool]:
        """:meth:`append`, unless an append with the same ``once`` key was made in the last
        ``remember`` seconds: then that entry's id. True when it was such a repeat."""
        ...

    async def read(
        self, stream: str, after: str = STREAM_START, count: int = 100, *, newest: bool = False
    ) -> list[StreamEntry]:
        """Entries of ``stream`` with ids after ``after``, oldest first, at most ``count``: the
        first ``count`` of them, or with ``newest`` the last ``count``."""
        ...

    # Groups whose members expire one by one (who is in a lobby, a show's lobbies): one structure
    # per group, so counting or listing a group is one call, however many it holds.
    async def group_put(
        self,
        group: str,
        member: str,
        value: Message,
        *,
        ttl: float | None = None,
        limit: int | None = None,
    ) -> int:
        """Put ``member`` in ``group`` (or refresh it) for ``ttl`` seconds (for good without);
        with ``limit``, a newcomer only while fewer are in. How many are in now; 0 if refused."""
        ...

    async def group_remove(self, group: str, member: str) -> int:
        """Take ``member`` out of ``group``; how many are still in."""
        ...

    async def group_members(self, groups: Sequence[str]) -> list[dict[str, Message]]:
        """Each group's live members and their values, in one call for many groups."""
        ...

    async def group_sizes(self, groups: Sequence[str]) -> list[int]:
        """How many live members each group has, in one call for many groups."""
        ...

    async def group_seat(
        self,
        directory: str,
        prefix: str,
        member: str,
        value: Message,
        *,
        ttl: float,
        limit_field: str,
        opening: Opening,
    ) -> tuple[str, Message, int]:
        """Seat ``member`` in one step: where it already is, else in the fullest group with room
        among those ``directory`` lists (the group of entry ``X`` is ``prefix + X``; its limit
        is the ``limit_field`` of X's directory value; empty groups are passed over, ties go to
        the smaller name), else in ``opening``, claimed, listed and opened for it. The entry's
        name, its directory value and how many are in it now; ``("", {}, 0)`` when
        ``opening.claim`` is taken."""
        ...

    # Keys with expiry (presence, registry).
    async def set(
        self, key: str, value: Message, *, ttl: float | None = None, only_new: bool = False
    ) -> bool:
        """Store ``value`` at ``key``; with ``only_new`` only if absent. True if it was stored."""
        ...

    async def get(self, key: str) -> Message | None:
        """The value at ``key``, or None if absent or expired."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        ...

    async def keys(self, prefix: str) -> list[str]:
        """All live keys that start with ``prefix`` (for small registries, not hot paths)."""
        ...

    # Atomic counters with expiry (rate limits).
    async def incr(self, key: str, *, ttl: float, by: int = 1) -> int:
        """Add ``by`` (1, or -1 to take one back) to the counter at ``key``, atomically; a new
        counter expires ``ttl`` s after creation."""
        ...

    async def counter(self, key: str) -> tuple[int, float | None]:
        """The counter's value and seconds until it expires (0 and None when absent)."""
        ...

    async def ping(self) -> None:
        """Raise :class:`BusUnavailable` unless the engine answers."""
        ...

    async def close(self) -> None:
        """Release connections and end every subscription."""
        ...


async def open_bus(
    redis_url: str | None,
    *,
    sentinels: Sequence[tuple[str, int]] = (),
    master: str | None = None,
) -> Bus:
    """The in-process bus without Redis; a Redis bus on ``redis_url``; or, with ``sentinels``, a
    Redis bus on the master they name ``master`` (``redis_url`` then gives only password and db)."""
    if sentinels:
        from rooms.bus_redis import RedisBus

        if not master:
            raise BusError("a master name is needed with sentinels")
        return await RedisBus.connect_sentinel(sentinels, master, url=redis_url)
    if not redis_url:
        from rooms.bus_memory import MemoryBus

        return MemoryBus()
    from rooms.bus_redis import RedisBus

    return await RedisBus.connect(redis_url)
