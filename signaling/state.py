"""The node's settings for the endpoints and its lifecycle (both part of its Services)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Site:
    """The settings the endpoints need, filled in by the app factory from the configuration."""

    public_url: str
    organiser_key: str = field(repr=False)  # the node's own organiser (rooms.organisers)
    origins: frozenset[str]
    version: str = "dev"
    ice_servers: tuple[str, ...] = ()
    turn_secret: str | None = field(default=None, repr=False)
    cluster_secret: str | None = field(default=None, repr=False)  # node-to-node requests
    admin_key: str | None = field(default=None, repr=False)  # creates organisers; sees all


@dataclass(slots=True)
class Lifecycle:
    """Whether this node takes new work, and the app's own background tasks."""

    draining: bool = False
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    latest: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a task the app keeps a reference to until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(_report)
        return task

    def spawn_latest(
        self, key: str, coro: Coroutine[Any, Any, Any], name: str
    ) -> asyncio.Task[Any]:
        """:meth:`spawn`, cancelling the task spawned under ``key`` before if it still runs (a
        show's state being retried while the bus is away must not overwrite a later one)."""
        previous = self.latest.get(key)
        if previous is not None:
            previous.cancel()
        task = self.latest[key] = self.spawn(coro, name)

        def forget(done: asyncio.Task[Any]) -> None:
            if self.latest.get(key) is done:
                del self.latest[key]

        task.add_done_callback(forget)
        return task


def _report(task: asyncio.Task[Any]) -> None:
    """A background task that failed says so (none dies silently)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("task.failed", task=task.get_name(), exc_info=task.exception())
