"""A viewer on a weak link: a network namespace joined to the host by a veth pair, its link shaped
(``tc``'s tbf for the rate, an nftables rule dropping datagrams at random for loss), and a Python
viewer running inside it as a subprocess that reports what it receives.

The node stays on the host and listens on the host's end of the pair; both ends have addresses on
a private /30 (10.200.0.0/16), the namespace has no other interface but its loopback and no route
beyond the pair, so nothing a test sends can leave the machine. Everything made is removed again
when the context ends, whatever happened inside it.

Needs root, iproute2 (``ip``, ``tc``) and nftables (``nft``): :func:`check_netns` skips a test
without them on a developer's machine and fails it in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import eventually, in_ci

IP = shutil.which("ip") or "/usr/sbin/ip"
TC = shutil.which("tc") or "/usr/sbin/tc"
NFT = shutil.which("nft") or "/usr/sbin/nft"
LOSS_TABLE = "lampio_weak"
VIEWER = Path(__file__).with_name("netns_viewer.py")
_names = itertools.count()


def check_netns() -> None:
    """Skip (fail in CI) unless namespaces can be made here: root, ``ip``, ``tc`` and ``nft``."""
    tools = (("root", os.geteuid() == 0), ("ip", Path(IP).exists()), ("tc", Path(TC).exists()),
             ("nft", Path(NFT).exists()))  # fmt: skip
    missing = [what for what, ok in tools if not ok]
    if not missing:
        return
    why = f"network namespace tests need {', '.join(missing)} (iproute2, nftables, as root)"
    if in_ci():
        pytest.fail(f"{why}: in CI they fail instead of skipping", pytrace=False)
    pytest.skip(why)


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=10)


@dataclass
class Namespace:
    """A namespace with one veth to the host: ``host_address`` is the host's end (the node listens
    and offers ICE candidates there), ``address`` the viewer's."""

    name: str
    host_dev: str
    dev: str
    host_address: str
    address: str
    rate_kbit: int = 0
    lossy: bool = False

    def shape(
        self, *, rate_kbit: int | None = None, loss: float = 0.0, upstream_loss: float = 0.0
    ) -> None:
        """Shape the viewer's link from now on (replacing any shaping before): what reaches the
        viewer is limited to ``rate_kbit`` (tbf on the host's end, packets beyond ~300 ms of
        queue dropped) and loses ``loss`` percent of its UDP datagrams at random, as does what it
        sends with ``upstream_loss`` (nftables in the namespace: this machine's kernel has no
        netem)."""
        self.unshape()
        if rate_kbit:
            tbf = ["tbf", "rate", f"{rate_kbit}kbit", "burst", "4kb", "latency", "300ms"]
            _run(TC, "qdisc", "add", "dev", self.host_dev, "root", *tbf)
            self.rate_kbit = rate_kbit
        chains = [(hook, share) for hook, share in (("input", loss), ("output", upstream_loss))]
        rules = "".join(
            f"chain {hook} {{ type filter hook {hook} priority 0; policy accept;\n"
            f"meta l4proto udp numgen random mod 10000 < {round(share * 100)} drop\n}}\n"
            for hook, share in chains
            if share
        )
        if rules:
            table = f"table inet {LOSS_TABLE} {{\n{rules}}}\n"
            subprocess.run(
                self.command(NFT, "-f", "-"), input=table, check=True, capture_output=True,
                text=True, timeout=10,
            )  # fmt: skip
            self.lossy = True

    def unshape(self) -> None:
        """The link as it came: no limit, no loss."""
        if self.rate_kbit:
            _run(TC, "qdisc", "del", "dev", self.host_dev, "root", check=False)
            self.rate_kbit = 0
        if self.lossy:
            _run(*self.command(NFT, "delete", "table", "inet", LOSS_TABLE), check=False)
            self.lossy = False

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace."""
        return [IP, "netns", "exec", self.name, *argv]


def _free_subnet() -> int:
    """A /30 of 10.200.0.0/16 that no interface of the host uses yet."""
    used = _run(IP, "-o", "-4", "addr", "show").stdout
    start = (os.getpid() * 7 + next(_names)) % 16384
    for offset in range(16384):
        index = (start + offset) % 16384
        if f"10.200.{index // 64}.{index % 64 * 4 + 1}/" not in used:
            return index
    raise RuntimeError("no free /30 in 10.200.0.0/16")


@contextlib.contextmanager
def namespace() -> Iterator[Namespace]:
    """A fresh namespace and veth pair, removed on the way out (even after a failure)."""
    check_netns()
    tag = f"{os.getpid() % 100000}{next(_names)}"
    index = _free_subnet()
    base = f"10.200.{index // 64}.{index % 64 * 4}"
    prefix = base.rsplit(".", 1)[0]
    last = int(base.rsplit(".", 1)[1])
    ns = Namespace(
        name=f"lampio-weak-{tag}",
        host_dev=f"lwh{tag}",
        dev=f"lwv{tag}",
        host_address=f"{prefix}.{last + 1}",
        address=f"{prefix}.{last + 2}",
    )
    try:
        _run(IP, "netns", "add", ns.name)
        _run(IP, "link", "add", ns.host_dev, "type", "veth", "peer", "name", ns.dev)
        _run(IP, "link", "set", ns.dev, "netns", ns.name)
        _run(IP, "addr", "add", f"{ns.host_address}/30", "dev", ns.host_dev)
        _run(IP, "link", "set", ns.host_dev, "up")
        inside = (IP, "netns", "exec", ns.name, IP)
        _run(*inside, "addr", "add", f"{ns.address}/30", "dev", ns.dev)
        _run(*inside, "link", "set", ns.dev, "up")
        _run(*inside, "link", "set", "lo", "up")
        # No default route: the /30 (and the namespace's own loopback) is all it can reach.
        yield ns
    finally:
        ns.unshape()
        _run(IP, "link", "del", ns.host_dev, check=False)  # its peer goes with it
        _run(IP, "netns", "del", ns.name, check=False)


@dataclass
class Report:
    """What the viewer in the namespace said last (one JSON line of tests/netns_viewer.py)."""

    t: float = 0.0  # the viewer's monotonic clock
    video: int = 0  # frames completed so far
    audio: int = 0
    audio_s: float = 0.0  # seconds of sound (its packets may be 20 or 40 ms long)
    extra: dict[str, Any] = field(default_factory=dict)


class NamespaceViewer:
    """The Python viewer (clients/client.py ``Watcher``) running inside ``ns`` as a subprocess,
    watching the show of ``code`` on the node at ``url``; its reports are read as they come."""

    def __init__(self, ns: Namespace, url: str, code: str, *, video: bool = True) -> None:
        self.ns = ns
        self.url = url
        self.code = code
        self.video = video  # False: the show's sound alone from the start
        self.report = Report()
        self.history: list[Report] = []
        self.replies: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the viewer; it reports once it is watching."""
        argv = self.ns.command(
            sys.executable, str(VIEWER), "--url", self.url, "--code", self.code,
            "--address", self.ns.address, *([] if self.video else ["--sound-only"]),
        )  # fmt: skip
        self._process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(VIEWER.parent.parent)},
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await eventually(lambda: self.report.t or self._exited(), 20, "the viewer reports")
        if self._exited():
            raise AssertionError(f"the viewer ended: {await self._stderr()}")

    def _exited(self) -> bool:
        return self._process is not None and self._process.returncode is not None

    async def _stderr(self) -> str:
        assert self._process is not None and self._process.stderr is not None
        return (await self._process.stderr.read()).decode(errors="replace")[-2000:]

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for line in self._process.stdout:
            message = json.loads(line)
            if "reply" in message or "error" in message:
                self.replies.append(message)
                continue
            self.report = Report(
                message.pop("t"), message.pop("video"), message.pop("audio"),
                message.pop("audio_s", 0.0), message,
            )  # fmt: skip
            self.history.append(self.report)

    async def request(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Send a command on the viewer's WebSocket; the server's reply."""
        assert self._process is not None and self._process.stdin is not None
        count = len(self.replies)
        self._process.stdin.write(json.dumps({"type": type_, **fields}).encode() + b"\n")
        await self._process.stdin.drain()
        await eventually(lambda: len(self.replies) > count, 10, f"the reply to {type_}")
        reply = self.replies[count]
        if "error" in reply:
            raise AssertionError(f"{type_} failed: {reply['error']}")
        return dict(reply["reply"])

    async def window(self, seconds: float) -> tuple[Report, Report]:
        """The reports at the start and end of the next ``seconds`` of the viewer's time."""
        first = self.report
        await eventually(
            lambda: self.report.t >= first.t + seconds, seconds + 10, f"{seconds} s of reports"
        )
        return first, self.report

    async def close(self) -> None:
        """End the viewer (closing its stdin; killed if it lingers)."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
