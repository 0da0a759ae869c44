"""A real redis-server on a free loopback port, started and stopped by the tests (and, for the
outage tests, frozen, thawed, killed and restarted)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_answering(
    proc: subprocess.Popen[bytes], port: int, ask: bytes = b"PING\r\n", answer: bytes = b"+PONG"
) -> None:
    """Wait until the server ``proc`` started answers ``ask`` on ``port`` with a reply that starts
    with ``answer``; RuntimeError if it exits, answers otherwise or does not within 10 s."""
    # A blocking wait, not tests.helpers.eventually: servers are started from (synchronous)
    # session fixtures as well as from async tests, and have no event loop of their own to use.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(ask)
                reply = s.recv(64)
                if reply.startswith(answer):
                    return
                if reply.startswith(b"-ERR"):  # not -LOADING: that one passes
                    raise RuntimeError(f"redis-server answered {reply!r}")
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {proc.returncode}")
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start within 10 s")


class RedisServer:
    """One redis-server process: no persistence, loopback only; with ``replica_of``, a replica of
    the server on that port; with ``password``, clients and replicas must give it."""

    def __init__(
        self,
        port: int | None = None,
        *,
        replica_of: int | None = None,
        password: str | None = None,
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test` (it installs it)")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lampio-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.replica_of = replica_of
        self.password = password
        self._auth = f"AUTH {password}\r\n".encode() if password else b""

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--protected-mode",
                "yes",
                "--repl-diskless-sync-delay",  # a replica gets its first copy at once, not in 5 s
                "0",
                *(
                    ()
                    if self.replica_of is None
                    else ("--replicaof", "127.0.0.1", str(self.replica_of))
                ),
                *(() if not self.password else ("--requirepass", self.password)),
                *(() if not self.password else ("--masterauth", self.password)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if self.password:
            wait_answering(self.proc, self.port, self._auth, b"+OK")
        else:
            wait_answering(self.proc, self.port)

    def freeze(self) -> None:
        """Stop the process (SIGSTOP), as a stalled host: its connections stay open, the kernel
        still accepts new ones, and nothing answers until :meth:`thaw`."""
        assert self.proc is not None and self.proc.poll() is None, "redis-server is not running"
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        """Let a frozen process go on (SIGCONT), with everything it held."""
        if self.proc is not None and self.frozen:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def kill(self) -> None:
        """End the process at once (SIGKILL): its connections are reset and, without persistence,
        its data is gone. :meth:`restart` brings up an empty one on the same port."""
        assert self.proc is not None, "redis-server is not running"
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.frozen = False

    def restart(self) -> None:
        """A new, empty redis-server on the same port."""
        self.stop()
        self.start()

    def stop(self) -> None:
        self.thaw()  # a stopped process would only see SIGTERM once continued
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(self._auth + b"FLUSHALL\r\n")
            s.recv(16)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
