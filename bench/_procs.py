"""Child processes that talk JSON lines, and CPU accounting from /proc (no psutil needed)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Bench viewers sharing one loopback address, as a care home's tablets share one; the node allows
# 64 WebSockets per address (signaling.ws.MAX_SOCKETS_PER_ADDRESS), so 8 leave room for
# reconnects.
VIEWERS_PER_ADDRESS = 8
BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


def loopback_address(viewer: int, per_address: int = VIEWERS_PER_ADDRESS) -> str:
    """The loopback address bench viewer ``viewer`` connects from: 127.0.0.2 for the first
    ``per_address`` viewers, 127.0.0.3 for the next, and on into 127.0.1.x after 127.0.0.251.
    The node's limits are per client address, and every address in 127.0.0.0/8 is this machine."""
    group = viewer // per_address
    return f"127.0.{group // 250}.{2 + group % 250}"


def _die_with_parent() -> None:
    # Runs in the child before exec: if the bench dies (even by SIGKILL), the child gets SIGTERM.
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all its threads (utime, stime of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    # The command name (field 2) may contain spaces; everything after its ")" is fixed fields.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def pin(pid: int, cpus: set[int]) -> bool:
    """Keep every thread of a process on these CPUs (threads started later inherit it); False if
    the system refused for any of them."""
    done = True
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            done = False
    return done


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from the first line of /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


@dataclass
class CpuSample:
    """CPU seconds of named processes and the machine's ticks at one instant."""

    at: float
    per_process: dict[str, float]  # user + system
    system: dict[str, float]
    machine: tuple[int, int]


def sample_cpu(pids: dict[str, int]) -> CpuSample:
    per_process, system = {}, {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            user, system[name] = cpu_seconds(pid)
            per_process[name] = user + system[name]
    return CpuSample(time.monotonic(), per_process, system, machine_ticks())


@dataclass
class CpuUse:
    """CPU used between two samples, in percent of one core (100 = one core busy)."""

    seconds: float
    per_process: dict[str, float]
    system: dict[str, float]  # the kernel's part of per_process
    machine_busy_pct: float  # of all cores together: 100 × cores when saturated

    def pct(self, prefix: str) -> float:
        """Sum over processes whose name starts with prefix."""
        return sum(v for k, v in self.per_process.items() if k.startswith(prefix))


def cpu_between(before: CpuSample, after: CpuSample) -> CpuUse:
    seconds = after.at - before.at
    per_process = {
        name: 100.0 * (after.per_process[name] - before.per_process[name]) / seconds
        for name in before.per_process
        if name in after.per_process
    }
    system = {
        name: 100.0 * (after.system[name] - before.system[name]) / seconds
        for name in before.system
        if name in after.system
    }
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    cores = os.cpu_count() or 1
    return CpuUse(seconds, per_process, system, 100.0 * cores * busy / max(1, total))


def _open_log(path: Path) -> TextIO:
    return open(path, "w")  # closed in Child.stop()


@dataclass
class Child:
    """A child process whose stdout carries JSON lines (events); other lines are kept as text."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    text: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    _log: TextIO | None = None

    @classmethod
    async def start(
        cls, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
    ) -> Child:
        """Start argv with stdin/stdout pipes; stderr goes to LOG_DIR/NAME.log; env is added to
        this process's environment."""
        log_path = log_dir / f"{name}.log"
        log = _open_log(log_path)
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_DIR), env.get("PYTHONPATH", "")) if p
        )
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=REPO_DIR,
            env=env,
            limit=64 * 1024 * 1024,
            start_new_session=True,  # a Ctrl-C reaches only the bench, which stops its children
            preexec_fn=_die_with_parent,
        )
        child = cls(name, process, log_path, _log=log)
        child.reader = asyncio.get_running_loop().create_task(child._read())
        return child

    @property
    def pid(self) -> int:
        return self.process.pid

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            text = line.decode(errors="replace").strip()
            if text.startswith("{"):
                try:
                    self.events.put_nowait(json.loads(text))
                    continue
                except ValueError:
                    pass
            self.text.append(text)
        self.events.put_nowait({"event": "exit"})

    async def event(self, kind: str, timeout: float) -> dict[str, Any]:
        """The next event of this kind (others are skipped); RuntimeError if the child exits."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if event.get("event") == kind:
                    return event
                if event.get("event") == "exit":
                    raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
                if event.get("event") == "error":
                    raise RuntimeError(f"{self.name}: {event.get('message')}")

    async def wait_text(self, predicate: Any, timeout: float) -> str:
        """The first non-JSON stdout line that satisfies predicate."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.text:
                if predicate(line):
                    return line
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start; see {self.log_path}")

    def send(self, command: str) -> None:
        """Write one line to the child's stdin (ignored if it has gone)."""
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            with contextlib.suppress(Exception):
                self.process.stdin.write(command.encode() + b"\n")

    async def stop(self, timeout: float = 10.0, *, terminate: bool = False) -> int | None:
        """Ask the child to stop ("stop" on stdin, or SIGTERM), then kill it if it lingers."""
        if self.process.returncode is None:
            if terminate:
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signal.SIGTERM)
            else:
                self.send("stop")
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 5)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def kill(self) -> None:
        """Last resort, e.g. from a finally block after an error."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()


def python_argv(script: str, *args: str) -> list[str]:
    """Run a bench helper with this interpreter."""
    return [sys.executable, str(BENCH_DIR / script), *args]


def emit(event: str, **fields: Any) -> None:
    """A child's JSON line to the bench (stdout)."""
    print(json.dumps({"event": event, **fields}, separators=(",", ":")), flush=True)


async def stdin_lines() -> asyncio.StreamReader:
    """The process's stdin as an asyncio stream (the bench sends "stop")."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def until_stopped(max_seconds: float, reader: asyncio.StreamReader | None = None) -> None:
    """Return when the bench says "stop", closes our stdin, or max_seconds pass."""
    if reader is None:
        reader = await stdin_lines()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max_seconds):
            while line := await reader.readline():
                if line.strip() == b"stop":
                    return
