"""The node registry: every node of a deployment on the bus, with the address other nodes reach
it at and its load, so that nodes find each other with nothing configured but the bus.

Each node is a member of one bus group (``nodes``) that expires on its own: the node writes its
record again every heartbeat, so a node that dies vanishes from every list within the record's
lifetime, and a node that stops takes its record out at once. Node-to-node requests are
authenticated with a token made from the deployment's cluster secret (:func:`cluster_token`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog

from rooms.bus import Bus, BusError, Message
from rooms.supervise import FIRST_PAUSE, every
from rooms.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

NODES = "nodes"  # the bus group of live nodes
HEARTBEAT = 5.0  # seconds between a node's writes of its record
TTL = 15.0  # seconds a record lives unless written again: three heartbeats
CLUSTER_SECRET_MIN = 32
# What the cluster token is an HMAC of: a fixed label, versioned so that a later scheme (one
# bound to a time or a request) can be told apart from this one.
_TOKEN_LABEL = b"lampio-cluster-v1"


@dataclass(frozen=True)
class NodeInfo:
    """One live node as its record says: its id, the base URL other nodes reach it at, its
    viewers and CPU (percent of one core), when it started and last wrote (Unix seconds, its own
    clock), and whether it is shutting down."""

    id: str
    url: str
    viewers: int
    cpu_pct: float
    started: float
    seen: float
    draining: bool = False


def new_node_id() -> str:
    """A node id, new for every process (a restarted node is a new node)."""
    return secrets.token_hex(6)


def cluster_token(secret: str) -> str:
    """The token a node shows other nodes of its deployment (``Authorization: Cluster …``): an
    HMAC-SHA256 of a fixed label under the cluster secret, so the secret never travels."""
    return hmac.new(secret.encode(), _TOKEN_LABEL, hashlib.sha256).hexdigest()


def check_cluster_token(secret: str | None, header_value: str | None) -> bool:
    """Whether ``header_value`` (``Cluster <token>``, ``Bearer <token>`` or the bare token) is
    this deployment's cluster token, compared in constant time; never without a secret, never
    for a header that is not text (bytes that were not UTF-8 arrive as lone surrogates)."""
    if not secret or not header_value:
        return False
    scheme, _, rest = header_value.strip().partition(" ")
    token = rest.strip() if scheme.lower() in ("cluster", "bearer") else header_value.strip()
    try:
        given = token.encode()
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given, cluster_token(secret).encode())


class CpuMeter:
    """This process's CPU time since the last reading, in percent of one core (threads count
    too, so it may pass 100)."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def percent(self) -> float:
        """Percent of one core used since the last call (or since this meter was made)."""
        cpu, wall = time.process_time(), time.monotonic()
        used, elapsed = cpu - self._cpu, wall - self._wall
        self._cpu, self._wall = cpu, wall
        return round(100.0 * used / elapsed, 1) if elapsed > 0 else 0.0


class NodeRegistry:
    """This node's record on the bus, kept fresh by a heartbeat, and the records of the others.

    ``load``, when given, is asked for (viewers, CPU percent) before every heartbeat; otherwise
    the figures are whatever :meth:`set_load` was last told."""

    def __init__(
        self,
        bus: Bus,
        node_id: str,
        url: str,
        *,
        heartbeat: float = HEARTBEAT,
        ttl: float = TTL,
        load: Callable[[], tuple[int, float]] | None = None,
    ) -> None:
        if not node_id:
            raise ValueError("a node needs an id")
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"a node's URL must be an http(s) URL, not {url!r}")
        if not 0 < heartbeat < ttl:
            raise ValueError("the heartbeat must be positive and shorter than the record's ttl")
        self._bus = bus
        self.node_id = node_id
        self.url = url.rstrip("/")
        self.heartbeat = heartbeat
        self.ttl = ttl
        self._load = load
        self._viewers = 0
        self._cpu_pct = 0.0
        self._started = time.time()
        self._draining = False
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    def set_load(self, viewers: int, cpu_pct: float) -> None:
        """The load the next heartbeat reports."""
        self._viewers, self._cpu_pct = int(viewers), float(cpu_pct)

    async def start(self) -> None:
        """Register now and keep the record fresh every heartbeat. With the bus away the node
        starts anyway: the heartbeat registers it once the bus answers."""
        if self._task is not None or self._stopped:
            return
        try:
            await self._beat()
        except BusError as exc:
            log.warning("nodes.register_failed", node=self.node_id, error=str(exc))
        else:
            log.info("nodes.registered", node=self.node_id, url=self.url)
        self._task = asyncio.get_running_loop().create_task(
            every(
                self.heartbeat,
                self._beat,
                "nodes.heartbeat",
                first=min(FIRST_PAUSE, self.heartbeat),
                longest=self.heartbeat,
                node=self.node_id,
            ),
            name="nodes-heartbeat",
        )

    async def _beat(self) -> None:
        if self._stopped:
            return
        if self._load is not None:
            self.set_load(*self._load())
        await self._bus.group_put(NODES, self.node_id, self._record(), ttl=self.ttl)

    def _record(self) -> Message:
        return {
            "url": self.url,
            "viewers": self._viewers,
            "cpu_pct": self._cpu_pct,
            "started": self._started,
            "seen": time.time(),
            "draining": self._draining,
        }

    async def drain(self) -> None:
        """Mark this node as shutting down (other nodes stop sending it new work)."""
        self._draining = True
        try:
            await self._beat()
        except BusError as exc:  # the next heartbeat says it
            log.warning("nodes.drain_unsaid", node=self.node_id, error=str(exc))
        log.info("nodes.draining", node=self.node_id)

    async def stop(self) -> None:
        """Deregister: the heartbeat ends and the record goes at once (with the bus away it
        expires within the ttl)."""
        self._stopped = True
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        try:
            await self._bus.group_remove(NODES, self.node_id)
        except BusError as exc:
            log.warning("nodes.deregister_failed", node=self.node_id, error=str(exc))
            return
        log.info("nodes.deregistered", node=self.node_id)

    async def get(self, node_id: str) -> NodeInfo | None:
        """The live node with this id, or None."""
        value = (await self._bus.group_members([NODES]))[0].get(node_id)
        return None if value is None else _info(node_id, value)

    async def all(self) -> list[NodeInfo]:
        """Every live node (this one included once registered), by id."""
        listed = (await self._bus.group_members([NODES]))[0]
        found = (_info(node_id, value) for node_id, value in sorted(listed.items()))
        return [info for info in found if info is not None]


def _info(node_id: str, value: dict[str, Any]) -> NodeInfo | None:
    """A node's record read back; None for one this version cannot read (logged)."""
    try:
        return NodeInfo(
            id=node_id,
            url=str(value["url"]),
            viewers=int(value["viewers"]),
            cpu_pct=float(value["cpu_pct"]),
            started=float(value["started"]),
            seen=float(value["seen"]),
            draining=bool(value.get("draining", False)),
        )
    except (KeyError, TypeError, ValueError):
        log.warning("nodes.unreadable_record", node=node_id)
        return None
