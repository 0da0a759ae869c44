"""Prometheus metrics of one app, in their own registry (so tests can run several apps at once)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
        self.bus_up = Gauge(
            "lampio_bus_up", "1 when the bus answered the last readiness check", registry=r
        )

    def render(self) -> bytes:
        """The exposition text format."""
        return generate_latest(self.registry)
