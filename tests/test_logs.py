"""Logs: JSON lines off a terminal, with the standard library's loggers routed through structlog,
and no client's address from aiohttp's own lines (tests/test_privacy.py: a whole show's logs)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from lampio_stream.logs import configure_logging
from tests.nodes import serve


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """The root logger's handlers and level and structlog's configuration as they were before the
    test. configure_logging makes a handler on the sys.stderr of the moment, here the test's
    captured one, which closes with the test: left in place, every later test's log line became
    a "Logging error" with a stack (slow enough to make timing tests fail)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)


def test_json_logs_include_stdlib_loggers(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    structlog.get_logger("lampio_stream.test").info("show.created", show="abc")
    logging.getLogger("aiohttp.server").warning("bad request line")
    logging.getLogger("aioice.ice").info("candidate chatter")  # kept at WARNING
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    events = {line["event"]: line for line in lines}
    assert events["show.created"]["show"] == "abc" and events["show.created"]["level"] == "info"
    assert events["bad request line"]["logger"] == "aiohttp.server"
    assert events["bad request line"]["level"] == "warning"
    assert "candidate chatter" not in events
    assert all("timestamp" in line for line in lines)


async def test_a_request_that_cannot_be_read_is_logged_without_the_clients_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "info")
    async with serve() as node:
        port = int(node.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=("127.0.0.7", 0)
        )
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n")
        assert b" 400 " in await asyncio.wait_for(reader.readline(), 5)
        writer.close()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    [refused] = [line for line in lines if line["logger"] == "aiohttp.server"]
    assert refused["event"] == "Error handling request"
    assert "127.0.0.7" not in json.dumps(lines)
