"""Logs: JSON lines off a terminal, with the standard library's loggers routed through structlog."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from lampio_stream.logs import configure_logging


def test_json_logs_include_stdlib_loggers(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    try:
        structlog.get_logger("lampio_stream.test").info("show.created", show="abc")
        logging.getLogger("aiohttp.server").warning("bad request line")
        logging.getLogger("aioice.ice").info("candidate chatter")  # kept at WARNING
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    finally:
        configure_logging("console", "info")
    events = {line["event"]: line for line in lines}
    assert events["show.created"]["show"] == "abc" and events["show.created"]["level"] == "info"
    assert events["bad request line"]["logger"] == "aiohttp.server"
    assert events["bad request line"]["level"] == "warning"
    assert "candidate chatter" not in events
    assert all("timestamp" in line for line in lines)
