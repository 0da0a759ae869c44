"""Redis Sentinel for the tests: a master, its replica and three sentinels on free loopback ports,
started and stopped by the tests (the master killed, to watch the sentinels fail over)."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from tests.helpers import eventually, in_ci
from tests.redis_server import RedisServer, free_port, wait_answering

MASTER = "lampio"  # the master's name in Sentinel
QUORUM = 2
DOWN_AFTER_MS = 1000  # a master silent this long is down for a sentinel
FAILOVER_TIMEOUT_MS = 5000
PASSWORD = "sentinel-tests-password"  # Redis's, in the session's deployment (tests/conftest.py)


class SentinelServer:
    """One redis-server in Sentinel mode, watching the master on ``master_port`` (none: nothing)."""

    def __init__(self, master_port: int | None, *, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test` (it installs it)")
        self.binary = binary
        self.master_port = master_port
        self.password = password
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="lampio-sentinel-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.dir / "sentinel.log"

    def start(self) -> None:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.dir}",
            f"logfile {self.log}",
            "sentinel announce-ip 127.0.0.1",
        ]
        if self.master_port is not None:
            lines += [
                f"sentinel monitor {MASTER} 127.0.0.1 {self.master_port} {QUORUM}",
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {MASTER} 1",
            ]
            if self.password:
                lines.append(f"sentinel auth-pass {MASTER} {self.password}")
        config = self.dir / "sentinel.conf"  # a sentinel rewrites its file as it learns
        config.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [self.binary, str(config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # A sentinel answers SENTINEL MASTERS with a list; a plain server refuses the command.
            wait_answering(self.proc, self.port, b"SENTINEL MASTERS\r\n", b"*")
        except RuntimeError as exc:
            said = self.log.read_text(errors="replace")[-500:] if self.log.exists() else ""
            self.stop()
            raise RuntimeError(f"{exc}; its log: {said.strip() or '(empty)'}") from exc

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Sentinels:
    """A master, one replica of it and three sentinels watching them (quorum 2), as a deployment
    without a single point of failure runs Redis; with ``password``, Redis asks for it (the
    sentinels themselves do not)."""

    def __init__(self, *, password: str | None = None) -> None:
        self.password = password
        self.master = RedisServer(password=password)
        self.replica = RedisServer(replica_of=self.master.port, password=password)
        self.sentinels = [SentinelServer(self.master.port, password=password) for _ in range(3)]

    @property
    def url(self) -> str | None:
        """What ``--redis-url`` gives beside the sentinels: the password, and database 1."""
        return f"redis://:{self.password}@/1" if self.password else None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The sentinels, as ``--redis-sentinel`` names them."""
        return [("127.0.0.1", s.port) for s in self.sentinels]

    def start(self) -> None:
        self.master.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()

    async def ready(self, timeout: float = 15.0) -> None:
        """Wait until the replica is in sync and every sentinel knows the master, its replica and
        the two other sentinels (only then can they agree on a failover)."""

        async def everyone_knows() -> bool:
            role = await self._ask(self.replica.port, "ROLE", password=self.password)
            if role[0] != b"slave" or role[3] != b"connected":
                return False
            for sentinel in self.sentinels:
                state = await self._sentinel_state(sentinel.port)
                if state["num-slaves"] != "1" or state["flags"] != "master":
                    return False
                if state["num-other-sentinels"] != str(len(self.sentinels) - 1):
                    return False
            return True

        await eventually(everyone_knows, timeout, "the sentinels know everyone", interval=0.1)

    async def master_port(self) -> set[int]:
        """The master's port as each sentinel names it now (one, when they agree)."""
        ports = set()
        for sentinel in self.sentinels:
            reply = await self._ask(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
            if reply:
                ports.add(int(reply[1]))
        return ports

    async def replicated(self) -> None:
        """Wait until the replica holds everything the master acknowledged so far (replication is
        asynchronous: what it had not received when the master died would be lost)."""
        acked = await self._ask(self.master.port, "WAIT", 1, 5000, password=self.password)
        assert acked == 1, "the replica did not catch up within 5 s"

    def flush(self) -> None:
        self.master.flush()  # the replica follows

    def close(self) -> None:
        for sentinel in self.sentinels:
            sentinel.close()
        self.replica.close()
        self.master.close()

    async def _sentinel_state(self, port: int) -> dict[str, str]:
        """What the sentinel on ``port`` says of the master (``num-slaves``, ``flags``, ...)."""
        reply = await self._ask(port, "SENTINEL", "MASTER", MASTER)
        return {key.decode(): value.decode() for key, value in reply.items()}

    @staticmethod
    async def _ask(port: int, *command: object, password: str | None = None) -> Any:
        client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=2)
        async with client:
            return await client.execute_command(*command)


@functools.cache
def sentinel_missing() -> str | None:
    """Why redis-server cannot run as a sentinel on this machine, or None when it can."""
    try:
        probe = SentinelServer(master_port=None)
    except RuntimeError as exc:
        return str(exc)
    try:
        probe.start()
    except RuntimeError as exc:
        return f"{probe.binary} does not run as a sentinel ({exc})"
    finally:
        probe.close()
    return None


def check_sentinel(item: pytest.Item) -> None:
    """A test marked ``sentinel`` skips where redis-server has no Sentinel mode, and fails so in
    CI, where the failover must be tested (tests/conftest.py calls this before every test)."""
    if item.get_closest_marker("sentinel") is None:
        return
    missing = sentinel_missing()
    if missing is None:
        return
    if in_ci():
        pytest.fail(f"needs redis-server's Sentinel mode, in CI too: {missing}", pytrace=False)
    pytest.skip(f"needs redis-server's Sentinel mode: {missing}")
