"""What the endpoints share, stored in typed application keys (no module-level state)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from media.stage import Stage
from rooms.bus import Bus
from rooms.ratelimit import FailureLimiter
from rooms.shows import Shows
from signaling.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Site:
    """The settings the endpoints need, filled in by the app factory from the configuration."""

    public_url: str
    organiser_key: str = field(repr=False)
    origins: frozenset[str]
    version: str = "dev"
    ice_servers: tuple[str, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)


@dataclass(slots=True)
class Lifecycle:
    """Whether this node takes new work, and the app's own background tasks."""

    draining: bool = False
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a task the app keeps a reference to until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


SITE = web.AppKey("site", Site)
BUS = web.AppKey("bus", Bus)
SHOWS = web.AppKey("shows", Shows)
CODE_LIMITER = web.AppKey("code_limiter", FailureLimiter)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
STAGE = web.AppKey("stage", Stage)
