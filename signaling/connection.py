"""One WebSocket connection: a bounded send queue drained by one writer task.

A client that cannot keep up is closed instead of growing memory or stalling others (a chat or
reaction storm stays cheap for everyone else).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import WSCloseCode, web

if TYPE_CHECKING:
    from media.stage import ViewerSession
    from media.voice import VoiceSeat
    from rooms.lobbies import Lobby, Member
    from rooms.ratelimit import TokenBucket

SEND_QUEUE = 256
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
        # What this connection holds (a performer session, a viewer session, subscriptions),
        # released in reverse order when it ends, however it ends.
        self._cleanups: dict[str, Callable[[], Awaitable[None]]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.watching: str | None = None  # the show this client follows as a viewer
        self.viewer_session: ViewerSession | None = None
        self.lobby: Lobby | None = None  # the foyer this client sits in
        self.member: Member | None = None
        self.chat_bucket: TokenBucket | None = None
        self.reaction_bucket: TokenBucket | None = None
        self.caption_bucket: TokenBucket | None = None
        self.performing: str | None = None  # the show this client performs or hosts
        self.voice_seat: VoiceSeat | None = None  # this client's lobby voice, if it joined it

    def hold(self, name: str, release: Callable[[], Awaitable[None]]) -> None:
        """Remember how to release ``name`` when the connection ends (replacing an earlier one)."""
        self._cleanups[name] = release

    async def release(self, name: str) -> bool:
        """Release ``name`` now; False if nothing was held under it."""
        release = self._cleanups.pop(name, None)
        if release is None:
            return False
        try:
            await release()
        except Exception:
            self.log.exception("ws.release_failed", what=name)
        return True

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Run a task that belongs to this connection and ends with it."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(f"{name}-{self.id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def release_all(self) -> None:
        """Release everything held and stop this connection's tasks."""
        for name in reversed(list(self._cleanups)):
            await self.release(name)
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

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
