"""Every use of aiohttp's (and asyncio's) private names, in one place (as ``media/seams.py`` holds
aiortc's and aioice's), pinned by ``tests/test_ws.py``.

What a closed WebSocket leaves behind: with a heartbeat, ``WebSocketResponse`` hands its protocol
its own ``_on_data_received`` (``RequestHandler._data_received_cb``), which the protocol keeps
after the connection is lost, so the protocol, the response, the request, the transport, the
socket and the buffers stay in one reference cycle; and a socket that ended under the response
leaves ``ws.exception()`` (and the exception it was raised while handling) with tracebacks whose
frames hold the response itself. Under both, Python 3.11's socket transport keeps
``_read_ready_cb``, a bound method of itself, after it is closed (CPython gh-100348, cleared on
close from 3.12 on). Only the cyclic collector frees them then, and the node runs full
collections seldom (``lampio_stream/cli.py``): ``bench/soak.py`` saw the node grow by every
WebSocket that closed (aiohttp 3.14, Python 3.11).
"""

from __future__ import annotations

import traceback

from aiohttp import web


def release_websocket(request: web.Request, ws: web.WebSocketResponse) -> None:
    """After ``ws`` has closed and its handler is done with it: break the cycles it is left in,
    so that reference counting frees it at once (safe to call twice)."""
    protocol = request.protocol
    if getattr(protocol, "_data_received_cb", None) is not None:
        protocol._data_received_cb = None
    exc: BaseException | None = ws.exception()
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if exc.__traceback__ is not None:
            traceback.clear_frames(exc.__traceback__)
        exc = exc.__context__
    transport = getattr(getattr(ws, "_writer", None), "transport", None)
    # Only once closed: its reader is off the loop then, so _read_ready is never called again.
    if transport is not None and transport.is_closing():
        if getattr(transport, "_read_ready_cb", None) is not None:
            transport._read_ready_cb = None
