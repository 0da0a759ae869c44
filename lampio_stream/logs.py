"""Logging through structlog: JSON off a terminal, readable on one; stdlib routed through it."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    """Configure structlog and route the standard library's loggers (aiohttp, aiortc) through it."""
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if as_json else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aioice and aiortc are chatty at INFO about every candidate pair; keep them for debugging.
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # The access log repeats what the metrics count; keep it for debugging only.
    logging.getLogger("aiohttp.access").setLevel(max(logging.WARNING, root.level))
    server = logging.getLogger("aiohttp.server")
    if _NO_CLIENT_ADDRESS not in server.filters:
        server.addFilter(_NO_CLIENT_ADDRESS)


class _NoClientAddress(logging.Filter):
    """aiohttp names the client's address when it cannot read a request ("Error handling request
    from %s"); an address is personal data, so the line says what went wrong, not who sent it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Error handling request from %s":
            record.msg, record.args = "Error handling request", ()
        return True


_NO_CLIENT_ADDRESS = _NoClientAddress()


def _identity(_logger: Any, _name: str, event: Any) -> Any:
    return event
