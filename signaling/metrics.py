"""Prometheus metrics of one app, in their own registry (so tests can run several apps at once)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric


class Metrics:
    """The service's metrics, all named ``lampio_*``."""

    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge(
            "lampio_build_info", "Version of this node", ["version"], registry=r
        )
        self.build_info.labels(version=version).set(1)
        self.http_requests = Counter(
            "lampio_http_requests", "HTTP requests answered", ["route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "lampio_http_request_duration_seconds",
            "Time to answer HTTP requests",
            ["route"],
            registry=r,
        )
        self.code_lookups = Counter(
            "lampio_code_lookups", "Audience code look-ups by result", ["result"], registry=r
        )
        self.shows_created = Counter("lampio_shows_created", "Shows created", registry=r)
        self.websockets = Gauge(
            "lampio_websocket_connections", "Open WebSocket connections", registry=r
        )
        self.ws_messages = Counter(
            "lampio_websocket_messages",
            "WebSocket messages received by result",
            ["result"],
            registry=r,
        )
        self.peers = Gauge(
            "lampio_peer_connections", "Open WebRTC peer connections on this node", registry=r
        )
        self.viewers = Gauge("lampio_viewers", "Viewers receiving media on this node", registry=r)
        self.live_shows = Gauge(
            "lampio_live_shows", "Shows with a performer connected to this node", registry=r
        )
        self.feeds_out = Gauge(
            "lampio_feeds_out",
            "Streams this node sends to other nodes that pull its shows (one per node and show)",
            registry=r,
        )
        self.feeds_in = Gauge(
            "lampio_feeds_in", "Shows this node pulls from their origin node", registry=r
        )
        self.bus_up = Gauge(
            "lampio_bus_up", "1 when the bus answered the last readiness check", registry=r
        )
        self.tasks = Gauge(
            "lampio_asyncio_tasks", "Tasks of the node's event loop not yet done", registry=r
        )
        self.tasks.set_function(_task_count)

    def count_bus_keys(self, count: Callable[[], Mapping[str, int]]) -> None:
        """Publish ``lampio_bus_keys{family}``: what ``count`` says the bus holds, by family (the
        name up to its first colon), read at every scrape (the in-process bus; Redis's keys are
        Redis's own to count)."""
        self.registry.register(_BusKeys(count))

    def render(self) -> bytes:
        """The exposition text format."""
        return generate_latest(self.registry)


def _task_count() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # rendered outside the node's loop
        return 0


class _BusKeys:
    """The bus's keys by family, collected when scraped."""

    def __init__(self, count: Callable[[], Mapping[str, int]]) -> None:
        self._count = count

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "lampio_bus_keys", "Keys the in-process bus holds, by family", labels=["family"]
        )

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for name, count in sorted(self._count().items()):
            family.add_metric([name], count)
        yield family
