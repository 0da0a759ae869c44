"""Janus Gateway for bench/peer_janus.py: install, configure (loopback only), and its HTTP API.

Janus (Debian's ``janus`` package, 1.1.x) runs with only the streaming plugin and the HTTP
transport, from config files written into the run's work directory. Janus never gathers ICE
candidates on a loopback interface (src/ice.c skips ``IFF_LOOPBACK``), so it starts with
``_janus_lo.c`` preloaded: its ``getifaddrs()`` lists 127.0.0.1 as the only interface, which is
then the only address Janus binds and offers. :func:`inet_sockets` lets the bench check that.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

MOUNTPOINT = 1
SHIM_SOURCE = Path(__file__).resolve().parent / "_janus_lo.c"
PLUGIN = "libjanus_streaming.so"
TRANSPORT = "libjanus_http.so"
APT_PACKAGES = ["janus", "gcc", "libc6-dev"]  # gcc and the C headers build the shim


def ensure_installed() -> str:
    """The janus binary; installed with apt-get (sudo unless root) if janus or gcc is missing."""
    if shutil.which("janus") is None or shutil.which("gcc") is None:
        # "env": sudo does not pass the caller's environment on
        apt = [*([] if os.geteuid() == 0 else ["sudo"]), "env", "DEBIAN_FRONTEND=noninteractive"]
        print(f"installing {' '.join(APT_PACKAGES)} with apt-get", file=sys.stderr, flush=True)
        subprocess.run([*apt, "apt-get", "update", "-q"], check=True)
        subprocess.run(
            [*apt, "apt-get", "install", "-y", "-q", "--no-install-recommends", *APT_PACKAGES],
            check=True,
        )
    janus = shutil.which("janus")
    if janus is None:
        raise RuntimeError("janus is not installed and apt-get did not install it")
    return janus


def janus_version(janus: str) -> str:
    """E.g. "1.1.2", from ``janus --version``."""
    output = subprocess.run([janus, "--version"], capture_output=True, text=True, timeout=10)
    for line in output.stdout.splitlines():
        if line.startswith("Janus version:") and "(" in line:
            return line.split("(", 1)[1].rstrip(")")
    return "unknown"


def module_folder(kind: str, name: str) -> Path:
    """Where the package keeps Janus's plugins or transports (the path has the architecture)."""
    patterns = [
        f"/usr/lib/*/janus/{kind}",
        f"/usr/lib/janus/{kind}",
        f"/usr/local/lib/janus/{kind}",
    ]
    for pattern in patterns:
        for folder in sorted(glob.glob(pattern)):
            if (Path(folder) / name).exists():
                return Path(folder)
    raise RuntimeError(f"cannot find Janus's {name}")


def build_shim(directory: Path) -> Path:
    """Compile the getifaddrs() wrapper into DIRECTORY; the shared object's path."""
    shim = directory / "janus_lo.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(shim), str(SHIM_SOURCE), "-ldl"],
        check=True,
        timeout=60,
    )
    return shim


def free_port(kind: int) -> int:
    """A port the kernel has free on 127.0.0.1 now (socket.SOCK_STREAM or SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    directory: Path, http_port: int, video_port: int, audio_port: int, event_loops: int = 0
) -> Path:
    """Janus's config files (jcfg) in DIRECTORY, with folders that hold only the streaming plugin
    and the HTTP transport; the path of janus.jcfg."""
    for kind, name in (("plugins", PLUGIN), ("transports", TRANSPORT)):
        folder = directory / kind
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / name
        if not link.exists():
            link.symlink_to(module_folder(kind, name) / name)
    (directory / "none").mkdir(exist_ok=True)  # no event handlers, no loggers
    main = directory / "janus.jcfg"
    main.write_text(
        f"""general: {{
\tconfigs_folder = "{directory}"
\tplugins_folder = "{directory / "plugins"}"
\ttransports_folder = "{directory / "transports"}"
\tevents_folder = "{directory / "none"}"
\tloggers_folder = "{directory / "none"}"
\tinterface = "127.0.0.1"
\tdebug_level = 4
\tserver_name = "lampio-bench"
\tsession_timeout = 60
\tevent_loops = {event_loops}
}}
certificates: {{
}}
media: {{
}}
nat: {{
\tnice_debug = false
\tice_enforce_list = "127.0.0.1"
\tignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
events: {{
\tbroadcast = false
}}
"""
    )
    (directory / "janus.transport.http.jcfg").write_text(
        f"""general: {{
\tjson = "compact"
\tbase_path = "/janus"
\thttp = true
\tport = {http_port}
\tip = "127.0.0.1"
\thttps = false
}}
admin: {{
\tadmin_http = false
\tadmin_https = false
}}
cors: {{
}}
"""
    )
    (directory / "janus.plugin.streaming.jcfg").write_text(
        f"""general: {{
\tevents = false
}}
bench: {{
\ttype = "rtp"
\tid = {MOUNTPOINT}
\tdescription = "Lampio bench clip"
\tmedia = (
\t\t{{ type = "video", mid = "v", label = "video", iface = "127.0.0.1", port = {video_port}, pt = 96, codec = "vp8" }},
\t\t{{ type = "audio", mid = "a", label = "audio", iface = "127.0.0.1", port = {audio_port}, pt = 111, codec = "opus" }}
\t)
}}
"""  # noqa: E501
    )
    return main


def inet_sockets(pid: int) -> list[tuple[str, str, int]]:
    """(protocol, local address, port) of every TCP and UDP socket the process holds."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    found = []
    for protocol in ("tcp", "udp", "tcp6", "udp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{protocol}") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[9] in inodes:
                    address, port = fields[1].split(":")
                    found.append((protocol, _address(address), int(port, 16)))
    return found


def _address(hexadecimal: str) -> str:
    raw = bytes.fromhex(hexadecimal)
    # /proc/net prints the address as host-order 32-bit words.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words)


class JanusError(RuntimeError):
    """Janus answered a request with an error."""


class JanusSession:
    """One Janus API session over HTTP: requests, its events (long poll) and keepalives, as
    janus.js runs them for a browser."""

    KEEPALIVE_SECONDS = 25.0  # Janus drops a session after session_timeout (60 s) of silence

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url.rstrip("/")
        self.id = 0
        self._events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": secrets.token_hex(6)}
        async with self._http.post(f"{self._url}{path}", json=body) as response:
            response.raise_for_status()
            reply: dict[str, Any] = await response.json(content_type=None)
        if reply.get("janus") == "error":
            error = reply.get("error", {})
            raise JanusError(f"{body['janus']}: {error.get('code')} {error.get('reason')}")
        return reply

    async def create(self) -> None:
        """Create the session and start polling its events and sending keepalives."""
        reply = await self._post("", {"janus": "create"})
        self.id = int(reply["data"]["id"])
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._poll()), loop.create_task(self._keepalive())]

    async def attach(self, plugin: str) -> int:
        """A handle on a plugin (one PeerConnection each)."""
        reply = await self._post(f"/{self.id}", {"janus": "attach", "plugin": plugin})
        handle = int(reply["data"]["id"])
        self._events[handle] = asyncio.Queue()
        return handle

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Send a plugin request; the plugin answers asynchronously, in an event."""
        request: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        return await self._post(f"/{self.id}/{handle}", request)

    async def plugin_event(self, handle: int, timeout: float) -> dict[str, Any]:
        """The next plugin event of this handle (other kinds, e.g. webrtcup, are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self._events[handle].get()
                if event.get("janus") == "event":
                    data = event.get("plugindata", {}).get("data", {})
                    if "error" in data:
                        raise JanusError(f"{data.get('error_code')}: {data['error']}")
                    return event

    async def _poll(self) -> None:
        while True:
            try:
                async with self._http.get(
                    f"{self._url}/{self.id}",
                    params={"maxev": "10", "rid": str(secrets.randbits(31))},
                    timeout=aiohttp.ClientTimeout(total=70),
                ) as response:
                    reply = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.5)
                continue
            for event in reply if isinstance(reply, list) else [reply]:
                queue = self._events.get(int(event.get("sender", 0)))
                if queue is not None:
                    queue.put_nowait(event)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.KEEPALIVE_SECONDS)
            with contextlib.suppress(aiohttp.ClientError, JanusError):
                await self._post(f"/{self.id}", {"janus": "keepalive"})

    async def destroy(self) -> None:
        """Stop polling and destroy the session (its handles and PeerConnections with it)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.id:
            with contextlib.suppress(aiohttp.ClientError, JanusError):
                await self._post(f"/{self.id}", {"janus": "destroy"})


async def wait_until_serving(url: str, process: asyncio.subprocess.Process, timeout: float) -> str:
    """Poll ``GET /janus/info`` until Janus answers; its version string."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
        while process.returncode is None:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/info") as response:
                    if response.status == 200:
                        info = await response.json(content_type=None)
                        return str(info.get("version_string", "?"))
            await asyncio.sleep(0.1)
    raise RuntimeError("janus exited before it served")
