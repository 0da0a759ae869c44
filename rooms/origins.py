"""Where each live show's media enters the deployment: its origin node, kept on the bus.

A node whose performer is connected *hosts* the show: it claims ``origin:{show}`` with its id,
the address other nodes reach it at and the performer's codecs, and renews the claim while it
hosts (the key expires :data:`ORIGIN_TTL` s after the last renewal, so a node that died stops
being the origin by itself). Other nodes read the claim to pull the show's media from there once
for all their viewers (``signaling/cluster.py``). The latest claim wins: when the performer comes
back on another node, that node claims the show and the old one stops renewing a claim that no
longer names it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rooms.bus import Bus

ORIGIN_TTL = 15.0  # seconds a claim outlives its last renewal
RENEW_EVERY = 5.0  # seconds between renewals


def origin_key(show_id: str) -> str:
    return f"origin:{show_id}"


@dataclass(frozen=True, slots=True)
class Origin:
    """The node a show's media enters, as its claim says."""

    node: str
    url: str  # the base URL other nodes reach it at
    codecs: dict[str, str]  # what the performer sends, per kind
    since: float  # when the node claimed it (seconds since the epoch)


class Origins:
    """This node's claims on the shows it hosts, and everyone's claims to read."""

    def __init__(self, bus: Bus, node: str, url: str) -> None:
        self.bus = bus
        self._bus = bus
        self.node = node
        self.url = url
        self._hosted: dict[str, Origin] = {}

    @property
    def hosted(self) -> list[str]:
        """Shows this node hosts now."""
        return list(self._hosted)

    async def claim(self, show_id: str, codecs: dict[str, str]) -> None:
        """This node hosts the show now (its performer's media connected here)."""
        origin = Origin(self.node, self.url, dict(codecs), time.time())
        self._hosted[show_id] = origin
        await self._store(show_id, origin)

    async def release(self, show_id: str) -> None:
        """This node no longer hosts the show; its claim goes if it still names this node."""
        if self._hosted.pop(show_id, None) is None:
            return
        current = await self.find(show_id)
        if current is not None and current.node == self.node:
            await self._bus.delete(origin_key(show_id))

    async def renew(self) -> None:
        """Renew every claim of this node that still stands; give up those another node took."""
        for show_id, origin in list(self._hosted.items()):
            current = await self.find(show_id)
            if current is not None and current.node != self.node and current.since > origin.since:
                self._hosted.pop(show_id, None)  # the performer went on to another node
                continue
            await self._store(show_id, origin)

    async def find(self, show_id: str) -> Origin | None:
        """The show's origin, if some node hosts it."""
        record = await self._bus.get(origin_key(show_id))
        if record is None:
            return None
        try:
            return Origin(
                str(record["node"]),
                str(record["url"]),
                {str(k): str(v) for k, v in dict(record["codecs"]).items()},
                float(record["since"]),
            )
        except (KeyError, TypeError, ValueError):
            return None  # not a claim this version wrote: as good as none

    async def _store(self, show_id: str, origin: Origin) -> None:
        record = {
            "node": origin.node,
            "url": origin.url,
            "codecs": origin.codecs,
            "since": origin.since,
        }
        await self._bus.set(origin_key(show_id), record, ttl=ORIGIN_TTL)
