"""The in-process bus engine: the default, so one command runs everything on one machine."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import structlog

from rooms.bus import (
    STREAM_START,
    BusError,
    Message,
    Opening,
    StreamEntry,
    check_stream_id,
    decode,
    encode,
    stream_id_key,
)

log = structlog.get_logger(__name__)

SUBSCRIPTION_QUEUE = 1024
# Seconds between sweeps of what has expired: a key or member nobody reads again (a closed
# lobby's chat, an old session, a dedupe id) would otherwise stay in memory for good.
SWEEP_INTERVAL = 30.0


class QueueSubscription:
    """A subscription fed through a bounded queue; the oldest message is dropped when it is full."""

    def __init__(self, channel: str, on_close: object = None, maxsize: int = SUBSCRIPTION_QUEUE):
        self.channel = channel
        self.dropped = 0
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(maxsize)
        self._closed = False
        self._on_close = on_close

    def deliver(self, message: Message) -> None:
        """Queue a message; a reader that is far behind loses its oldest, never others' memory."""
        if self._closed:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 10_000 == 0:
                log.warning("bus.subscriber_behind", channel=self.channel, dropped=self.dropped)
        self._queue.put_nowait(message)

    async def get(self, timeout: float | None = None) -> Message:
        """Wait for the next message."""
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is None:
            raise StopAsyncIteration
        return item

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.get()
            except StopAsyncIteration:
                return

    def end(self) -> None:
        """Wake the reader and end iteration."""
        if self._closed:
            return
        self._closed = True
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def close(self) -> None:
        """Stop receiving."""
        if self._closed:
            return
        self.end()
        if callable(self._on_close):
            self._on_close(self)


@dataclass
class _Stream:
    entries: deque[tuple[str, bytes]] = field(default_factory=deque)  # (id, encoded message)
    last_id: tuple[int, int] = (0, 0)


class MemoryBus:
    """All of the bus in this process's memory; data is gone when the process ends."""

    name = "memory"

    def __init__(self, *, sweep_interval: float = SWEEP_INTERVAL) -> None:
        self._subscribers: dict[str, set[QueueSubscription]] = {}
        self._streams: dict[str, _Stream] = {}
        self._values: dict[str, bytes] = {}
        self._expires: dict[str, float] = {}
        # group → member → (encoded value, monotonic deadline or None for good)
        self._groups: dict[str, dict[str, tuple[bytes, float | None]]] = {}
        self._closed = False
        self._sweep_interval = sweep_interval
        self._next_sweep = time.monotonic() + sweep_interval

    # -- expiry ---------------------------------------------------------------------------------

    def _alive(self, key: str) -> bool:
        deadline = self._expires.get(key)
        if deadline is not None and time.monotonic() >= deadline:
            self._values.pop(key, None)
            self._streams.pop(key, None)
            self._expires.pop(key, None)
            return False
        return key in self._values or key in self._streams

    def _expire(self, key: str, ttl: float | None) -> None:
        if ttl is None:
            self._expires.pop(key, None)
        else:
            if ttl <= 0:
                raise BusError("ttl must be positive")
            self._expires[key] = time.monotonic() + ttl

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("bus is closed")

    def _sweep(self) -> None:
        """Drop every expired key, stream and group member, at most once a sweep interval
        (called by the writes)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_interval
        for key in [key for key, deadline in self._expires.items() if now >= deadline]:
            self._alive(key)
        for group in list(self._groups):
            self._group(group)

    # -- pub/sub --------------------------------------------------------------------------------

    async def publish(self, channel: str, message: Message) -> None:
        """Deliver to the channel's current subscribers."""
        self._check_open()
        data = encode(message)  # the same wire form as Redis, so both engines reject the same input
        for sub in tuple(self._subscribers.get(channel, ())):
            sub.deliver(decode(data))

    async def subscribe(self, channel: str) -> QueueSubscription:
        """Receive the channel's messages from now on."""
        self._check_open()
        sub = QueueSubscription(channel, on_close=self._unsubscribe)
        self._subscribers.setdefault(channel, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: QueueSubscription) -> None:
        subs = self._subscribers.get(sub.channel)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.channel]

    # -- streams --------------------------------------------------------------------------------

    async def append(
        self, stream: str, message: Message, *, maxlen: int, ttl: float | None = None
    ) -> str:
        """Append and trim to ``maxlen``."""
        self._check_open()
        self._sweep()
        if maxlen < 1:
            raise BusError("maxlen must be at least 1")
        if stream in self._values:
            raise BusError(f"{stream!r} holds a value, not a stream")
        self._alive(stream)
        entry_stream = self._streams.setdefault(stream, _Stream())
        now_ms = int(time.time() * 1000)
        last_ms, last_seq = entry_stream.last_id
        new_id = (now_ms, 0) if now_ms > last_ms else (last_ms, last_seq + 1)
        entry_stream.last_id = new_id
        data = encode(message)
        entry_id = f"{new_id[0]}-{new_id[1]}"
        entry_stream.entries.append((entry_id, data))  # encoded: half the memory of a decoded one
        while len(entry_stream.entries) > maxlen:
            entry_stream.entries.popleft()
        if ttl is not None:
            self._expire(stream, ttl)
        return entry_id

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
        """Append unless ``once`` was seen within ``remember`` seconds."""
        self._check_open()
        if remember <= 0:
            raise BusError("remember must be positive")
        if self._alive(once) and once in self._values:
            return str(decode(self._values[once]).get("id", "")), True
        entry_id = await self.append(stream, message, maxlen=maxlen, ttl=ttl)
        self._values[once] = encode({"id": entry_id})
        self._expire(once, remember)
        return entry_id, False

    async def read(
        self, stream: str, after: str = STREAM_START, count: int = 100, *, newest: bool = False
    ) -> list[StreamEntry]:
        """Entries after ``after``."""
        self._check_open()
        after_key = stream_id_key(check_stream_id(after))
        if not self._alive(stream) or stream not in self._streams or count <= 0:
            return []
        entries = self._streams[stream].entries
        out: list[StreamEntry] = []
        for entry_id, data in reversed(entries) if newest else entries:
            if stream_id_key(entry_id) <= after_key:
                if newest:
                    break
                continue
            out.append(StreamEntry(entry_id, decode(data)))
            if len(out) >= count:
                break
        return out[::-1] if newest else out

    # -- keys -----------------------------------------------------------------------------------

    async def set(
        self, key: str, value: Message, *, ttl: float | None = None, only_new: bool = False
    ) -> bool:
        """Store a value."""
        self._check_open()
        self._sweep()
        exists = self._alive(key)
        if only_new and exists:
            return False
        if key in self._streams:
            raise BusError(f"{key!r} holds a stream, not a value")
        self._values[key] = encode(value)
        self._expire(key, ttl)
        return True

    async def get(self, key: str) -> Message | None:
        """Read a value."""
        self._check_open()
        if not self._alive(key) or key not in self._values:
            return None
        return decode(self._values[key])

    async def delete(self, key: str) -> bool:
        """Remove a key."""
        self._check_open()
        existed = self._alive(key)
        self._values.pop(key, None)
        self._streams.pop(key, None)
        self._expires.pop(key, None)
        return existed

    async def keys(self, prefix: str) -> list[str]:
        """Live keys with a prefix."""
        self._check_open()
        return sorted(
            k
            for k in list(self._values) + list(self._streams)
            if k.startswith(prefix) and self._alive(k)
        )

    # -- groups ---------------------------------------------------------------------------------

    def _group(self, group: str) -> dict[str, tuple[bytes, float | None]]:
        """The group's live members (the expired ones dropped)."""
        members = self._groups.get(group)
        if members is None:
            return {}
        now = time.monotonic()
        for name in [n for n, (_, dl) in members.items() if dl is not None and now >= dl]:
            del members[name]
        if not members:
            del self._groups[group]
        return members

    async def group_put(
        self,
        group: str,
        member: str,
        value: Message,
        *,
        ttl: float | None = None,
        limit: int | None = None,
    ) -> int:
        """Put or refresh a member, within the limit."""
        self._check_open()
        self._sweep()
        if ttl is not None and ttl <= 0:
            raise BusError("ttl must be positive")
        members = self._group(group)
        if limit is not None and member not in members and len(members) >= limit:
            return 0
        deadline = None if ttl is None else time.monotonic() + ttl
        members[member] = (encode(value), deadline)
        self._groups[group] = members
        return len(members)

    async def group_remove(self, group: str, member: str) -> int:
        """Remove a member."""
        self._check_open()
        members = self._group(group)
        members.pop(member, None)
        if not members:
            self._groups.pop(group, None)
        return len(members)

    async def group_members(self, groups: Sequence[str]) -> list[dict[str, Message]]:
        """Live members with their values."""
        self._check_open()
        return [{m: decode(v) for m, (v, _) in self._group(g).items()} for g in groups]

    async def group_sizes(self, groups: Sequence[str]) -> list[int]:
        """Live member counts."""
        self._check_open()
        return [len(self._group(g)) for g in groups]

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
        """Choose and seat without awaiting anything in between: nothing else runs meanwhile, so
        this is one step, as the Redis script is."""
        self._check_open()
        self._sweep()
        if ttl <= 0 or opening.ttl <= 0:
            raise BusError("ttl must be positive")
        data = encode(value)
        listed = self._group(directory)
        chosen, chosen_seats = "", -1
        for name in sorted(listed):
            members = self._group(prefix + name)
            if member in members:
                chosen = name
                break
            limit = decode(listed[name][0]).get(limit_field)
            if not isinstance(limit, int) or isinstance(limit, bool):
                continue  # not a group this call can fill
            if 0 < len(members) < limit and len(members) > chosen_seats:
                chosen, chosen_seats = name, len(members)
        now = time.monotonic()
        if not chosen:
            if self._alive(opening.claim):
                return "", {}, 0
            if opening.claim in self._streams:
                raise BusError(f"{opening.claim!r} holds a stream, not a value")
            chosen = opening.name
            self._values[opening.claim] = encode(opening.value)
            self._expire(opening.claim, opening.ttl)
            listed[chosen] = (encode(opening.value), now + opening.ttl)
            self._groups[directory] = listed
        members = self._group(prefix + chosen)
        members[member] = (data, now + ttl)
        self._groups[prefix + chosen] = members
        return chosen, decode(listed[chosen][0]), len(members)

    # -- counters -------------------------------------------------------------------------------

    async def incr(self, key: str, *, ttl: float, by: int = 1) -> int:
        """Count ``by`` up; the first count starts the expiry."""
        self._check_open()
        self._sweep()
        current = await self.get(key) if self._alive(key) else None
        if current is None:
            value = by
            self._values[key] = encode({"n": value})
            self._expire(key, ttl)
        else:
            value = int(current["n"]) + by
            self._values[key] = encode({"n": value})
        return value

    async def counter(self, key: str) -> tuple[int, float | None]:
        """Value and remaining lifetime."""
        self._check_open()
        current = await self.get(key)
        if current is None:
            return 0, None
        deadline = self._expires.get(key)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return int(current["n"]), (
            None if remaining is None else math.ceil(remaining * 1000) / 1000
        )

    def families(self) -> dict[str, int]:
        """The keys, streams and groups this bus holds now, by family (the name up to its first
        colon), for metrics and leak checks."""
        held: dict[str, int] = {}
        for name in (*self._values, *self._streams, *self._groups):
            family = name.partition(":")[0]
            held[family] = held.get(family, 0) + 1
        return held

    async def ping(self) -> None:
        """Always reachable while open."""
        self._check_open()

    async def close(self) -> None:
        """End every subscription."""
        self._closed = True
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                sub.end()
        self._subscribers.clear()
