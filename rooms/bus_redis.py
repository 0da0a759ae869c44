"""The Redis bus engine: the same contract as the in-process bus, shared by many nodes.

Live events use Redis pub/sub over one connection per node, re-subscribed whenever Redis comes back;
streams use Redis Streams (so acknowledged chat survives a node restart); keys and counters use
plain keys with expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as redis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rooms.bus import (
    STREAM_START,
    BusError,
    BusUnavailable,
    Message,
    StreamEntry,
    check_stream_id,
    decode,
    encode,
)
from rooms.bus_memory import QueueSubscription

log = structlog.get_logger(__name__)

T = TypeVar("T")

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
SUBSCRIBE_CONFIRM_TIMEOUT = 5.0
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisBus:
    """The bus on a Redis server."""

    name = "redis"

    def __init__(self, client: redis.Redis, *, namespace: str = "lampio:") -> None:
        self._client: Any = client  # redis-py's response types are unions of bytes, str and None
        self._ns = namespace
        self._subscribers: dict[str, set[QueueSubscription]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub: Any = None
        self._connected = False
        self._lost = False  # True from a lost connection until Redis answers again
        self._wake = asyncio.Event()
        self._closed = False
        self._listener = asyncio.create_task(self._listen(), name="bus-redis-listener")

    @classmethod
    async def connect(cls, url: str, *, namespace: str = "lampio:") -> RedisBus:
        """Open a bus on ``url``; it works once Redis answers and keeps trying while it does not."""
        client = redis.Redis.from_url(
            url,
            health_check_interval=10,
            socket_connect_timeout=2,
            socket_timeout=5,
            socket_keepalive=True,
        )
        bus = cls(client, namespace=namespace)
        try:
            await bus.ping()
        except BusUnavailable:
            bus._lost = True
            log.warning("bus.redis_unavailable", url=_safe_url(url), at="start")
        return bus

    # -- helpers --------------------------------------------------------------------------------

    def _k(self, name: str) -> str:
        return self._ns + name

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        if self._closed:
            raise BusError("bus is closed")
        try:
            return await op()
        except _UNAVAILABLE as exc:
            raise BusUnavailable(f"redis unavailable: {exc}") from exc
        except RedisError as exc:
            raise BusError(str(exc)) from exc

    # -- pub/sub --------------------------------------------------------------------------------

    async def publish(self, channel: str, message: Message) -> None:
        """PUBLISH the encoded message."""
        data = encode(message)
        await self._call(lambda: self._client.publish(self._k(channel), data))

    async def subscribe(self, channel: str) -> QueueSubscription:
        """Register a subscriber and wait until Redis confirms the channel (when reachable)."""
        if self._closed:
            raise BusError("bus is closed")
        sub = QueueSubscription(channel, on_close=self._unsubscribe)
        subs = self._subscribers.setdefault(channel, set())
        subs.add(sub)
        event = self._confirmed.setdefault(channel, asyncio.Event())
        if len(subs) == 1 and self._connected and self._pubsub is not None:
            with contextlib.suppress(*_UNAVAILABLE):
                await self._pubsub.subscribe(self._k(channel))
        self._wake.set()
        if self._lost:
            # Redis was away: if it answers now, wait for the listener's subscription like usual.
            try:
                await self.ping()
            except BusUnavailable:
                log.warning("bus.subscribe_while_unavailable", channel=channel)
                return sub
        try:
            await asyncio.wait_for(event.wait(), SUBSCRIBE_CONFIRM_TIMEOUT)
        except TimeoutError:
            # Redis went away meanwhile; the listener subscribes again when it is back.
            log.warning("bus.subscribe_unconfirmed", channel=channel)
        return sub

    def _unsubscribe(self, sub: QueueSubscription) -> None:
        subs = self._subscribers.get(sub.channel)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subscribers[sub.channel]
            self._confirmed.pop(sub.channel, None)
            if self._pubsub is not None and self._connected and not self._closed:
                task = asyncio.get_running_loop().create_task(self._drop_channel(sub.channel))
                task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _drop_channel(self, channel: str) -> None:
        if channel not in self._subscribers and self._pubsub is not None:
            with contextlib.suppress(*_UNAVAILABLE, RedisError):
                await self._pubsub.unsubscribe(self._k(channel))

    async def _listen(self) -> None:
        """Read pub/sub messages forever, reconnecting and re-subscribing when Redis returns."""
        attempt = 0
        lost_logged = False
        while not self._closed:
            if not self._subscribers:
                self._wake.clear()
                await self._wake.wait()
                continue
            pubsub = self._client.pubsub()
            self._pubsub = pubsub
            try:
                for event in self._confirmed.values():
                    event.clear()
                await pubsub.subscribe(*(self._k(c) for c in self._subscribers))
                self._connected = True
                self._lost = False
                if lost_logged:
                    log.info("bus.redis_back", channels=len(self._subscribers))
                    lost_logged = False
                attempt = 0
                while not self._closed and (self._subscribers or pubsub.subscribed):
                    raw = await pubsub.get_message(timeout=1.0)
                    if raw is not None:
                        self._dispatch(raw)
            except asyncio.CancelledError:
                raise
            except (*_UNAVAILABLE, RedisError) as exc:
                self._connected = False
                self._lost = True
                if not lost_logged:
                    log.warning(
                        "bus.redis_unavailable",
                        error=str(exc),
                        channels=len(self._subscribers),
                        hint="live events pause until Redis is back; retrying",
                    )
                    lost_logged = True
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                attempt += 1
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    # A new subscriber wakes the listener early, so it need not wait out the delay.
                    await asyncio.wait_for(self._wake.wait(), delay)
            finally:
                self._connected = False
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, raw: dict[str, Any]) -> None:
        kind = raw.get("type")
        channel_raw = raw.get("channel")
        if not isinstance(channel_raw, bytes):
            return
        channel = channel_raw.decode()[len(self._ns) :]
        if kind == "subscribe":
            event = self._confirmed.get(channel)
            if event is not None:
                event.set()
            return
        if kind != "message":
            return
        try:
            message = decode(raw["data"])
        except Exception:
            log.warning("bus.bad_message", channel=channel)
            return
        for sub in tuple(self._subscribers.get(channel, ())):
            sub.deliver(message)

    # -- streams --------------------------------------------------------------------------------

    async def append(
        self, stream: str, message: Message, *, maxlen: int, ttl: float | None = None
    ) -> str:
        """XADD with exact trimming, then the stream's expiry."""
        if maxlen < 1:
            raise BusError("maxlen must be at least 1")
        key = self._k(stream)
        data = encode(message)

        async def op() -> str:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xadd(key, {"d": data}, maxlen=maxlen, approximate=False)
                if ttl is not None:
                    pipe.pexpire(key, _ms(ttl))
                result = await pipe.execute()
            return str(result[0].decode())

        return await self._call(op)

    async def read(
        self, stream: str, after: str = STREAM_START, count: int = 100
    ) -> list[StreamEntry]:
        """XRANGE from just after ``after``."""
        check_stream_id(after)
        rows = await self._call(
            lambda: self._client.xrange(self._k(stream), min=f"({after}", max="+", count=count)
        )
        return [StreamEntry(_text(entry_id), decode(fields[b"d"])) for entry_id, fields in rows]

    # -- keys -----------------------------------------------------------------------------------

    async def set(
        self, key: str, value: Message, *, ttl: float | None = None, only_new: bool = False
    ) -> bool:
        """SET with PX and NX."""
        data = encode(value)
        px = None if ttl is None else _ms(ttl)
        result = await self._call(lambda: self._client.set(self._k(key), data, px=px, nx=only_new))
        return bool(result)

    async def get(self, key: str) -> Message | None:
        """GET and decode."""
        data = await self._call(lambda: self._client.get(self._k(key)))
        return None if data is None else decode(data)

    async def delete(self, key: str) -> bool:
        """DEL."""
        return bool(await self._call(lambda: self._client.delete(self._k(key))))

    async def keys(self, prefix: str) -> list[str]:
        """SCAN for the prefix."""
        pattern = _GLOB_SPECIAL.sub(r"\\\1", self._k(prefix)) + "*"

        async def op() -> list[str]:
            return [
                k.decode()[len(self._ns) :]
                async for k in self._client.scan_iter(match=pattern, count=1000)
            ]

        return sorted(await self._call(op))

    # -- counters -------------------------------------------------------------------------------

    async def incr(self, key: str, *, ttl: float) -> int:
        """INCR, and PEXPIRE NX so only the first count starts the clock."""
        full = self._k(key)

        async def op() -> int:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incr(full)
                pipe.pexpire(full, _ms(ttl), nx=True)
                result = await pipe.execute()
            return int(result[0])

        return await self._call(op)

    async def counter(self, key: str) -> tuple[int, float | None]:
        """GET and PTTL."""
        full = self._k(key)

        async def op() -> tuple[int, float | None]:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.get(full)
                pipe.pttl(full)
                value, pttl = await pipe.execute()
            if value is None:
                return 0, None
            return int(value), (None if pttl < 0 else pttl / 1000)

        return await self._call(op)

    async def ping(self) -> None:
        """PING with a short timeout."""
        try:
            await self._call(lambda: asyncio.wait_for(self._client.ping(), 2.0))
        except TimeoutError as exc:
            raise BusUnavailable("redis did not answer in time") from exc

    async def close(self) -> None:
        """Stop the listener, end subscriptions, close the pool."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._listener
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                sub.end()
        self._subscribers.clear()
        await self._client.aclose()


def _ms(seconds: float) -> int:
    if seconds <= 0:
        raise BusError("ttl must be positive")
    return max(1, math.ceil(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _safe_url(url: str) -> str:
    """The URL without a password, for logs."""
    return re.sub(r"//[^@/]*@", "//***@", url)
