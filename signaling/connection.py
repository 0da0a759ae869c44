"""One WebSocket connection: a bounded send queue drained by one writer task.

A client that cannot keep up is closed instead of growing memory or stalling others (a chat or
reaction storm stays cheap for everyone else).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog
from aiohttp import WSCloseCode, web

from rooms.tasks import cancel_and_wait

R = TypeVar("R", bound="Role")
Release = Callable[[], Awaitable[None]]

SEND_QUEUE = 256
LANE_DEPTH = 8  # media commands of one connection waiting or under way at once
CLOSE_TOO_SLOW = 4001  # application close code: the client did not read fast enough


class Connection:
    """A client's WebSocket with its own identity, logger and writer task."""

    def __init__(
        self, ws: web.WebSocketResponse, remote: str, queue_size: int = SEND_QUEUE
    ) -> None:
        self.ws = ws
        self.remote = remote
        self.id = secrets.token_urlsafe(9)
        self.log = structlog.get_logger("signaling.ws").bind(conn=self.id)
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(queue_size)
        self._writer: asyncio.Task[None] | None = None
        self.closing = False
        # What this connection is for (viewer, performer, screen, phone), each with what it holds;
        # released in reverse order when the connection ends, however it ends.
        self._roles: dict[type[Role], Role] = {}
        # Commands that run apart from the reader (see signaling.commands.MEDIA), one at a time.
        self._lanes: dict[str, asyncio.Lock] = {}
        self._commands: set[asyncio.Task[Any]] = set()

    def in_lane(self, lane: str, work: Callable[[], Awaitable[None]]) -> bool:
        """Run ``work`` after the earlier work of ``lane``, without holding up the reader; False
        (nothing queued) when :data:`LANE_DEPTH` commands are already waiting."""
        if len(self._commands) >= LANE_DEPTH:
            return False
        lock = self._lanes.setdefault(lane, asyncio.Lock())

        async def run() -> None:
            async with lock:
                await work()

        task = asyncio.get_running_loop().create_task(run(), name=f"{lane}-{self.id}")
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)
        return True

    def role(self, kind: type[R]) -> R | None:
        """This connection's role of ``kind``, if it has one."""
        found = self._roles.get(kind)
        return found if isinstance(found, kind) else None

    async def take(self, role: R) -> R:
        """Take ``role``, releasing the role of its kind that it replaces."""
        await self.drop(type(role))
        self._roles[type(role)] = role
        return role

    async def drop(self, kind: type[Role]) -> bool:
        """Give up the role of ``kind`` (releasing what it holds); False if there was none."""
        role = self._roles.pop(kind, None)
        if role is None:
            return False
        await role.close()
        return True

    @property
    def has_media(self) -> bool:
        """Whether a role of this connection sends or receives a show's media now (a viewer's
        broadcast, a performer's publication): what a drain waits for to move elsewhere."""
        return any(r.holds("broadcast") or r.holds("publication") for r in self._roles.values())

    async def release_all(self) -> None:
        """Stop commands under way, then release every role (the last taken first)."""
        await cancel_and_wait(*self._commands)
        for kind in reversed(list(self._roles)):
            await self.drop(kind)

    def deliver(self, event: dict[str, Any], text: str) -> None:
        """An event from the node's relay: its shared encoding goes out as it is."""
        self.send_text(text)

    def start(self) -> None:
        """Start the writer task."""
        self._writer = asyncio.create_task(self._write(), name=f"ws-writer-{self.id}")

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; never blocks. A full queue means the client is too slow: close it."""
        self.send_text(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    def send_text(self, text: str) -> None:
        """Queue an already encoded message (one encoding shared by many connections)."""
        if self.closing:
            return
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            self.log.warning("ws.too_slow", queued=self._queue.qsize())
            self.close_soon(CLOSE_TOO_SLOW, "too slow")

    def close_soon(self, code: int, reason: str) -> None:
        """Close after what is already queued (used from sync code)."""
        if self.closing:
            return
        self.closing = True
        task = asyncio.get_running_loop().create_task(self.close(code, reason, force=True))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _write(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            try:
                await self.ws.send_str(item)
            except (ConnectionError, RuntimeError):
                return

    async def close(
        self,
        code: int = WSCloseCode.OK,
        reason: str = "",
        *,
        force: bool = False,
    ) -> None:
        """Flush what is queued (briefly), then close the socket with ``code``."""
        self.closing = True
        if self._writer is not None and not self._writer.done():
            if force:
                self._writer.cancel()
            else:
                with contextlib.suppress(asyncio.QueueFull):
                    self._queue.put_nowait(None)
                with contextlib.suppress(asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(asyncio.shield(self._writer), 1.0)
                self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writer
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, message=reason.encode())


class Role:
    """What a connection is for, owning what it holds (sessions, subscriptions, tasks): closing
    the role releases all of it, the last held first."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._held: dict[str, Release] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    async def hold(self, name: str, release: Release) -> None:
        """Remember how to release ``name``, releasing first whatever held that name before.

        A role that has ended releases at once what it is handed (a command that finished after
        its role ended, e.g. an offer negotiated while the viewer left, leaves nothing behind)."""
        await self.release(name)
        if self.closed:
            await self._run(name, release)
            return
        self._held[name] = release

    def holds(self, name: str) -> bool:
        """Whether this role holds something under ``name`` now."""
        return name in self._held

    async def release(self, name: str) -> bool:
        """Release ``name`` now; False if nothing was held under it."""
        release = self._held.pop(name, None)
        if release is None:
            return False
        await self._run(name, release)
        return True

    async def _run(self, name: str, release: Release) -> None:
        try:
            await release()
        except Exception:
            self.conn.log.exception("ws.release_failed", what=name)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a task that belongs to this role and ends with it."""
        if self.closed:
            coro.close()
            raise RuntimeError("this role has ended")
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)
        task.set_name(f"{name}-{self.conn.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._report)
        return task

    def _report(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.conn.log.error("ws.task_failed", task=task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        """Stop this role's tasks, then release everything held (the last held first)."""
        self.closed = True
        await cancel_and_wait(*self._tasks)
        for name in reversed(list(self._held)):
            await self.release(name)
