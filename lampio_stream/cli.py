"""The ``lampio-stream`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import structlog
from aiohttp import web

from lampio_stream import __version__
from lampio_stream.app import create_app
from lampio_stream.config import (
    WILDCARD_HOSTS,
    Config,
    add_arguments,
    advertised_url,
    load_config,
)
from lampio_stream.logs import configure_logging
from media.exceptions import UnsupportedVersionError
from media.ice import host_addresses, use_host_addresses
from media.seams import check_versions
from signaling import ws

log = structlog.get_logger("lampio_stream")


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``lampio-stream serve [options]``."""
    parser = argparse.ArgumentParser(
        prog="lampio-stream",
        description="Lämpiö Live: live shows for seniors, watched together in small foyers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the service",
        description="Run the service. Every option can also be set with the LAMPIO_* variable "
        "named in its help; options win over the environment.",
    )
    add_arguments(serve)
    return parser


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _bus_words(config: Config) -> str:
    """Which bus the node uses, for the start banner (never a password)."""
    if config.redis_sentinel:
        return f"Redis, the master Sentinel names {config.redis_master!r}"
    return "Redis" if config.uses_redis else "in this process (no Redis needed)"


# Young collections every 20,000 allocations (Python: 700) and the middle one every 50 of them:
# with a thousand connections a full collection walks every object for 100 ms or more and stalls
# chat; it comes when enough survivors were promoted, so promoting seldom makes it rare
# (docs/benchmarks.md, interaction).
GC_THRESHOLDS = (20_000, 50, 10)


def tune_garbage_collector() -> None:
    """Collect young objects in larger, rarer batches; leave what starting made to itself."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()  # modules, classes, the app: they live as long as the process


# asyncio reads every socket into a fresh 256 KiB buffer (the transports' max_size) and shrinks it
# to what arrived. glibc maps a block that big when its heap has no room for it, but raises that
# threshold (up to 32 MiB), and the one for trimming the heap's top with it, whenever a mapped
# block is freed; after that the buffers grow the heap, which fills with holes it does not give
# back: the soak's node grew by ~3 MB a minute while the memory in use stayed flat
# (docs/benchmarks.md). Setting the threshold fixes both where they started.
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value


def tune_allocator() -> bool:
    """Fix the C allocator's threshold for mapping large blocks (glibc); False where there is no
    ``mallopt`` or it refuses."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


# What is freed inside the heap stays resident until the allocator is asked to give it back: with
# connections coming and going all the time the heap's holes grow however little is in use.
TRIM_INTERVAL = 60.0


async def trim_memory(app: web.Application) -> AsyncIterator[None]:
    """Once a minute, give the C allocator's free pages back to the system (glibc's
    ``malloc_trim``; nothing where there is none). A cleanup context of the app."""
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        yield
        return

    async def trim() -> None:
        while True:
            await asyncio.sleep(TRIM_INTERVAL)
            malloc_trim(0)

    task = asyncio.get_running_loop().create_task(trim(), name="memory-trim")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # Before anything starts: media/seams.py reaches into these libraries' internals.
        check_versions()
    except UnsupportedVersionError as exc:
        print(f"lampio-stream: {exc}", file=sys.stderr)
        return 2
    try:
        config = load_config(args, os.environ)
    except ValueError as exc:
        parser.error(str(exc))
    configure_logging(config.log_format, config.log_level)
    if config.ice_host:
        use_host_addresses(config.ice_host)
    # A SIGTERM while starting is a clean stop too; serve() takes the signal over later.
    signal.signal(signal.SIGTERM, _exit_cleanly)

    # Bind first, so a taken port fails at once and port 0 can print the port it got.
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        print(
            f"lampio-stream: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr
        )
        return 2
    port = sock.getsockname()[1]
    sock.listen(128)  # listening before "is running" is printed: scripts may connect at once
    if config.rtmp_port and not config.rtmp_port_default:
        # Fail now, with a clear word, rather than with a traceback once the app starts. (The
        # default port, not asked for, gives way to a free one in the app instead.)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((config.host, config.rtmp_port))
            except OSError as exc:
                sock.close()
                print(
                    f"lampio-stream: cannot listen for RTMP on {config.host}:{config.rtmp_port}: "
                    f"{exc} (choose another with --rtmp-port, or --rtmp-port off)",
                    file=sys.stderr,
                )
                return 2
    if config.port == 0:
        config = replace(config, port=port)
        if config.public_url.endswith(":0"):
            config = replace(config, public_url=config.public_url[:-2] + f":{port}")
    # Other nodes need an address, not "every interface": the first ICE host, else the machine's.
    wildcard = config.host in WILDCARD_HOSTS and not config.ice_host
    config = replace(
        config, advertise_url=advertised_url(config, host_addresses() if wildcard else ())
    )
    public_url = config.public_url
    app = create_app(config)
    app.cleanup_ctx.append(trim_memory)

    lines = [
        f"Lämpiö Live {__version__} is running at {public_url}/",
        f"  programme and code entry: {public_url}/",
        f"  bus: {_bus_words(config)}",
        f"  health: {public_url}/healthz   metrics: {public_url}/metrics",
    ]
    if config.uses_redis:
        lines.append(f"  other nodes reach this one at {config.advertise_url}")
    if config.organiser_key_generated:
        lines.append(
            f"  organiser key (shown once; set LAMPIO_ORGANISER_KEY to keep one): "
            f"{config.organiser_key}"
        )
    print("\n".join(lines), flush=True)
    log.info(
        "serve.start",
        host=config.host,
        port=port,
        bus="redis" if config.uses_redis else "memory",
    )
    tune_garbage_collector()
    tune_allocator()
    if config.event_loop == "uvloop":
        import uvloop  # optional: only with --event-loop uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(app, sock, config.shutdown_timeout))
    log.info("serve.stopped")
    return 0


async def serve(app: web.Application, sock: socket.socket, shutdown_timeout: float) -> None:
    """Run ``app`` on ``sock`` until SIGTERM (or SIGINT), then stop in order: stop accepting
    (a load balancer's new connections are refused, so it sends them to another node), let
    clients move (:func:`signaling.ws.drain`, most of ``shutdown_timeout``), then aiohttp's
    shutdown (the rest closed with ``1001``, requests given what is left of the timeout)."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, access_log=None)
    await runner.setup()
    try:
        site = web.SockSite(runner, sock)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await site.stop()
        await ws.drain(app, ws.drain_window(shutdown_timeout))
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
