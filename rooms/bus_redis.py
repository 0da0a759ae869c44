"""The Redis bus engine: the same contract as the in-process bus, shared by many nodes.

Live events use Redis pub/sub over one connection per node, re-subscribed whenever Redis comes back;
streams use Redis Streams (so acknowledged chat survives a node restart); keys and counters use
plain keys with expiry. A group is a hash of values beside a sorted set of expiry times (Redis's
clock), both changed by small Lua scripts, so that a group is read or changed in one round trip and
a seat limit holds however many nodes seat viewers at once.

Redis is one server (a URL) or the master a Redis Sentinel deployment names, followed through
failovers: every command and the pub/sub connection go to the master (never to a replica), and a
connection made after a failover asks the sentinels where the master is now.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as redis
import structlog
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rooms.bus import (
    STREAM_LAST,
    STREAM_START,
    BusError,
    BusUnavailable,
    Message,
    Opening,
    StreamEntry,
    check_stream_id,
    decode,
    encode,
)
from rooms.bus_memory import QueueSubscription
from rooms.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

T = TypeVar("T")

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
SUBSCRIBE_CONFIRM_TIMEOUT = 5.0
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
POOL_CONNECTIONS = 50  # per node, the pub/sub listener's included
POOL_WAIT = 5.0  # seconds a command waits for a free connection before the bus is "unavailable"
SENTINEL_TIMEOUT = 1.0  # seconds a sentinel has to answer before the next one is asked
# Every connection to Redis, to a server named by URL or to the master a sentinel names.
_CONNECTION: Mapping[str, Any] = {
    "health_check_interval": 10,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "socket_keepalive": True,
}
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)


# Milliseconds on Redis's clock, so that every node's members expire by one clock.
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""
# Expired members leave the hash too (HDEL in slices: Lua's unpack is bounded).
_PRUNE = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', now))
for i = 1, #gone, 1000 do
  redis.call('HDEL', KEYS[1], unpack(gone, i, math.min(i + 999, #gone)))
end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', now)) end
"""
# KEYS: values, expiry; ARGV: member, value, ttl ms or '', limit or ''.
_GROUP_PUT = (
    _NOW
    + _PRUNE
    + """
if ARGV[4] ~= '' and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4])
    and not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return 0
end
local deadline = '+inf'
if ARGV[3] ~= '' then deadline = string.format('%d', now + tonumber(ARGV[3])) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], deadline, ARGV[1])
-- The group's keys live as long as its longest-lived member.
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if last[2] == 'inf' then
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
else
  redis.call('PEXPIREAT', KEYS[1], last[2])
  redis.call('PEXPIREAT', KEYS[2], last[2])
end
return redis.call('ZCARD', KEYS[2])
"""
)
# KEYS: values, expiry; ARGV: member.
_GROUP_REMOVE = (
    _NOW
    + _PRUNE
    + """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('ZCARD', KEYS[2])
"""
)
# KEYS: values, expiry of each group in turn; ARGV: '1' for members and values, '' for sizes. A
# group's members come back as one msgpack map {member: value} (the values are msgpack already),
# one bulk string per group: redis-py's parser costs per element, msgpack's C decoder does not.
_GROUP_READ = (
    _NOW
    + """
local function u32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
                     math.floor(n / 256) % 256, n % 256)
end
local alive = '(' .. string.format('%d', now)
local out = {}
for i = 1, #KEYS, 2 do
  if ARGV[1] == '1' then
    local names = redis.call('ZRANGEBYSCORE', KEYS[i + 1], alive, '+inf')
    local parts = {}
    local n = 0
    for j = 1, #names, 1000 do
      local last = math.min(j + 999, #names)
      local values = redis.call('HMGET', KEYS[i], unpack(names, j, last))
      for k = j, last do
        local value = values[k - j + 1]
        if value then
          n = n + 1
          parts[#parts + 1] = string.char(0xdb) .. u32(#names[k]) .. names[k] .. value
        end
      end
    end
    out[#out + 1] = string.char(0xdf) .. u32(n) .. table.concat(parts)
  else
    out[#out + 1] = redis.call('ZCOUNT', KEYS[i + 1], alive, '+inf')
  end
end
return out
"""
)
# Seating in one step: the groups to choose from are named by the directory's entries, so their
# keys are built here from the prefixes in ARGV (standalone Redis and Sentinel allow it; Redis
# Cluster would need every key of one directory under one hash tag). KEYS: the directory's values
# and expiry, the opening's claim key, the opening group's values and expiry. ARGV: values prefix,
# expiry prefix, member, value, ttl ms, limit field, opening name, opening value, opening ttl ms.
_GROUP_SEAT = (
    _NOW
    + """
local function prune(values, expiry)
  local gone = redis.call('ZRANGEBYSCORE', expiry, '-inf', string.format('%d', now))
  for i = 1, #gone, 1000 do
    redis.call('HDEL', values, unpack(gone, i, math.min(i + 999, #gone)))
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', expiry, '-inf', string.format('%d', now)) end
end
local function put(values, expiry, member, value, ttl)
  prune(values, expiry)
  redis.call('HSET', values, member, value)
  redis.call('ZADD', expiry, string.format('%d', now + tonumber(ttl)), member)
  local last = redis.call('ZRANGE', expiry, -1, -1, 'WITHSCORES')
  if last[2] == 'inf' then
    redis.call('PERSIST', values)
    redis.call('PERSIST', expiry)
  else
    redis.call('PEXPIREAT', values, last[2])
    redis.call('PEXPIREAT', expiry, last[2])
  end
  return redis.call('ZCARD', expiry)
end
local alive = '(' .. string.format('%d', now)
local names = redis.call('ZRANGEBYSCORE', KEYS[2], alive, '+inf')
local chosen, chosen_seats = nil, -1
for _, name in ipairs(names) do
  local expiry = ARGV[2] .. name
  local mine = redis.call('ZSCORE', expiry, ARGV[3])
  if mine and tonumber(mine) > now then
    chosen = name
    break
  end
  local ok, record = pcall(cmsgpack.unpack, redis.call('HGET', KEYS[1], name) or '')
  local limit = ok and type(record) == 'table' and record[ARGV[6]]
  if type(limit) == 'number' then
    local seats = redis.call('ZCOUNT', expiry, alive, '+inf')
    if seats > 0 and seats < limit
        and (seats > chosen_seats or (seats == chosen_seats and name < chosen)) then
      chosen, chosen_seats = name, seats
    end
  end
end
if chosen then
  local seats = put(ARGV[1] .. chosen, ARGV[2] .. chosen, ARGV[3], ARGV[4], ARGV[5])
  return {chosen, redis.call('HGET', KEYS[1], chosen), seats}
end
if not redis.call('SET', KEYS[3], ARGV[8], 'PX', ARGV[9], 'NX') then return {'', '', 0} end
local seats = put(KEYS[4], KEYS[5], ARGV[3], ARGV[4], ARGV[5])
put(KEYS[1], KEYS[2], ARGV[7], ARGV[8], ARGV[9])
return {ARGV[7], ARGV[8], seats}
"""
)
# KEYS: stream, once; ARGV: encoded message, maxlen, stream ttl ms or '', remember ms. The once
# key holds {"id": <entry id>} in msgpack (a map of one str), like any other value on this bus.
_APPEND_ONCE = """
local earlier = redis.call('GET', KEYS[2])
if earlier then return {earlier, 1} end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'd', ARGV[1])
if ARGV[3] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
redis.call('SET', KEYS[2], string.char(0x81, 0xa2) .. 'id' .. string.char(0xd9, #id) .. id,
           'PX', ARGV[4])
return {id, 0}
"""


class _SentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """Connections to the master the sentinels name, waiting for a free one like the plain pool."""


class RedisBus:
    """The bus on a Redis server, or on the master of a Redis Sentinel deployment."""

    name = "redis"

    def __init__(
        self, client: redis.Redis, *, namespace: str = "lampio:", sentinel: Sentinel | None = None
    ) -> None:
        self._client: Any = client  # redis-py's response types are unions of bytes, str and None
        self._sentinel = sentinel
        self._ns = namespace
        self._subscribers: dict[str, set[QueueSubscription]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}
        self._pubsub: Any = None
        self._connected = False
        self._lost = False  # True from a lost connection until Redis answers again
        self._wake = asyncio.Event()
        self._closed = False
        self._listener = asyncio.create_task(self._listen(), name="bus-redis-listener")
        # redis-py sends EVALSHA and loads a script again when Redis answers NOSCRIPT (a restart).
        self._group_put = self._client.register_script(_GROUP_PUT)
        self._group_remove = self._client.register_script(_GROUP_REMOVE)
        self._group_read = self._client.register_script(_GROUP_READ)
        self._append_once = self._client.register_script(_APPEND_ONCE)
        self._group_seat = self._client.register_script(_GROUP_SEAT)

    @classmethod
    async def connect(cls, url: str, *, namespace: str = "lampio:") -> RedisBus:
        """Open a bus on ``url``; it works once Redis answers and keeps trying while it does not."""
        # A pool that waits for a free connection: the default one raises "Too many connections"
        # as soon as 100 commands are in flight, which a burst of joins or a short stall reaches.
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_CONNECTIONS, timeout=POOL_WAIT, **_CONNECTION
        )
        bus = cls(redis.Redis.from_pool(pool), namespace=namespace)
        await bus._first_ping(url=_safe_url(url))
        return bus

    @classmethod
    async def connect_sentinel(
        cls,
        sentinels: Sequence[tuple[str, int]],
        master: str,
        *,
        url: str | None = None,
        namespace: str = "lampio:",
    ) -> RedisBus:
        """Open a bus on the master that ``sentinels`` know as ``master``, following it through
        failovers; ``url`` (without a host) gives the password and database."""
        known = parse_url(url) if url else {}
        auth: dict[str, Any] = {
            k: v for k, v in known.items() if k in ("username", "password", "db")
        }
        sentinel = Sentinel(
            list(sentinels),
            sentinel_kwargs={
                "socket_connect_timeout": SENTINEL_TIMEOUT,
                "socket_timeout": SENTINEL_TIMEOUT,
                "socket_keepalive": True,
            },
        )
        client = sentinel.master_for(
            master,
            connection_pool_class=_SentinelPool,
            max_connections=POOL_CONNECTIONS,
            timeout=POOL_WAIT,
            **_CONNECTION,
            **auth,
        )
        bus = cls(client, namespace=namespace, sentinel=sentinel)
        await bus._first_ping(sentinels=",".join(f"{h}:{p}" for h, p in sentinels), master=master)
        return bus

    async def _first_ping(self, **where: str) -> None:
        try:
            await self.ping()
        except BusUnavailable:
            self._lost = True
            log.warning("bus.redis_unavailable", **where, at="start")

    # -- helpers --------------------------------------------------------------------------------

    def _k(self, name: str) -> str:
        return self._ns + name

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        if self._closed:
            raise BusError("bus is closed")
        task = asyncio.current_task()
        cancels = 0 if task is None else task.cancelling()
        try:
            result = await op()
        except _UNAVAILABLE as exc:
            raise BusUnavailable(f"redis unavailable: {exc}") from exc
        except RedisError as exc:
            if "NOREPLICAS" in str(exc):
                # A master with min-replicas-to-write that lost its replicas (cut off from them
                # and the sentinels, say) refuses writes that a failover would drop: an outage.
                raise BusUnavailable(f"redis refuses writes: {exc}") from exc
            raise BusError(str(exc)) from exc
        # redis-py writes under asyncio.wait_for (its socket timeout), which on Python 3.11
        # returns the result of a write that finished as the task was cancelled and drops the
        # cancellation (CPython gh-86296, fixed in 3.12): a seat's presence loop cancelled so
        # ran on for good, holding the seat and its connection. A cancellation requested during
        # the call that did not end it is raised here.
        if task is not None and task.cancelling() > cancels:
            raise asyncio.CancelledError
        return result

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
            except Exception as exc:
                # Redis away, or anything else: a listener that ended would end live events for
                # good, so it reconnects whatever went wrong.
                self._connected = False
                self._lost = True
                if not lost_logged:
                    if isinstance(exc, (*_UNAVAILABLE, RedisError)):
                        log.warning(
                            "bus.redis_unavailable",
                            error=str(exc),
                            channels=len(self._subscribers),
                            hint="live events pause until Redis is back; retrying",
                        )
                    else:
                        log.error("bus.listener_failed", exc_info=exc, hint="reconnecting")
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
        """GET the once key, else XADD, PEXPIRE and SET it: one script, one round trip."""
        if maxlen < 1:
            raise BusError("maxlen must be at least 1")
        keys = [self._k(stream), self._k(once)]
        args: list[bytes | str | int] = [
            encode(message),
            maxlen,
            "" if ttl is None else _ms(ttl),
            _ms(remember),
        ]
        found, repeat = await self._call(lambda: self._append_once(keys=keys, args=args))
        if repeat:
            return str(decode(found).get("id", "")), True
        return _text(found), False

    async def read(
        self, stream: str, after: str = STREAM_START, count: int = 100, *, newest: bool = False
    ) -> list[StreamEntry]:
        """XRANGE from just after ``after`` (XREVRANGE down to it, with ``newest``)."""
        if check_stream_id(after) == STREAM_LAST or count <= 0:
            return []  # Redis refuses an interval starting after the last possible id
        key = self._k(stream)
        if newest:
            rows = await self._call(
                lambda: self._client.xrevrange(key, max="+", min=f"({after}", count=count)
            )
            rows.reverse()
        else:
            rows = await self._call(
                lambda: self._client.xrange(key, min=f"({after}", max="+", count=count)
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

    # -- groups ---------------------------------------------------------------------------------

    def _group_keys(self, group: str) -> list[str]:
        return [self._k(f"group:{group}"), self._k(f"group-expiry:{group}")]

    async def group_put(
        self,
        group: str,
        member: str,
        value: Message,
        *,
        ttl: float | None = None,
        limit: int | None = None,
    ) -> int:
        """HSET and ZADD (score: expiry) after dropping the expired, within the limit."""
        args = [
            member,
            encode(value),
            "" if ttl is None else _ms(ttl),
            "" if limit is None else limit,
        ]
        keys = self._group_keys(group)
        return int(await self._call(lambda: self._group_put(keys=keys, args=args)))

    async def group_remove(self, group: str, member: str) -> int:
        """ZREM and HDEL."""
        keys = self._group_keys(group)
        return int(await self._call(lambda: self._group_remove(keys=keys, args=[member])))

    async def group_members(self, groups: Sequence[str]) -> list[dict[str, Message]]:
        """ZRANGEBYSCORE of the unexpired and HMGET of their values, for every group at once."""
        if not groups:
            return []
        keys = [k for g in groups for k in self._group_keys(g)]
        rows = await self._call(lambda: self._group_read(keys=keys, args=["1"]))
        return [decode(row) for row in rows]

    async def group_sizes(self, groups: Sequence[str]) -> list[int]:
        """ZCOUNT of the unexpired, for every group at once."""
        if not groups:
            return []
        keys = [k for g in groups for k in self._group_keys(g)]
        return [int(n) for n in await self._call(lambda: self._group_read(keys=keys, args=[""]))]

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
        """Choose the group and seat the member in one script (the capacity check included)."""
        keys = [
            *self._group_keys(directory),
            self._k(opening.claim),
            *self._group_keys(prefix + opening.name),
        ]
        args: list[bytes | str | int] = [
            self._k(f"group:{prefix}"),
            self._k(f"group-expiry:{prefix}"),
            member,
            encode(value),
            _ms(ttl),
            limit_field,
            opening.name,
            encode(opening.value),
            _ms(opening.ttl),
        ]
        name, record, seats = await self._call(lambda: self._group_seat(keys=keys, args=args))
        return _text(name), (decode(record) if record else {}), int(seats)

    # -- counters -------------------------------------------------------------------------------

    async def incr(self, key: str, *, ttl: float, by: int = 1) -> int:
        """INCRBY, and PEXPIRE NX so only the first count starts the clock."""
        full = self._k(key)

        async def op() -> int:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incrby(full, by)
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
        await cancel_and_wait(self._listener)
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                sub.end()
        self._subscribers.clear()
        await self._client.aclose()
        if self._sentinel is not None:
            await self._sentinel.aclose()


def _ms(seconds: float) -> int:
    if seconds <= 0:
        raise BusError("ttl must be positive")
    return max(1, math.ceil(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _safe_url(url: str) -> str:
    """The URL without a password, for logs."""
    return re.sub(r"//[^@/]*@", "//***@", url)
