"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web

from rooms.bus import BusError
from signaling.services import services

routes = web.RouteTableDef()

READY_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process answers; never asks the bus: a Redis outage must not fail every node."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready for new work: not draining and the bus answers; else 503."""
    metrics = services(request).metrics
    if services(request).lifecycle.draining:
        return web.json_response(
            {"status": "draining", "error": {"code": "draining", "message": "shutting down"}},
            status=503,
        )
    try:
        await asyncio.wait_for(services(request).bus.ping(), READY_TIMEOUT)
    except (BusError, TimeoutError) as exc:
        metrics.bus_up.set(0)
        return web.json_response(
            {"status": "unavailable", "error": {"code": "bus_unavailable", "message": str(exc)}},
            status=503,
        )
    metrics.bus_up.set(1)
    return web.json_response({"status": "ready", "bus": services(request).bus.name})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    body = services(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})
