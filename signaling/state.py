"""What the endpoints share, stored in typed application keys (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

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
    """Whether this node takes new work; set to draining as shutdown begins."""

    draining: bool = False


SITE = web.AppKey("site", Site)
BUS = web.AppKey("bus", Bus)
SHOWS = web.AppKey("shows", Shows)
CODE_LIMITER = web.AppKey("code_limiter", FailureLimiter)
METRICS = web.AppKey("metrics", Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
