"""Privacy through a whole show, on a real node process on a real Redis: a performer live, viewers
watching, a friend's lobby, chat, reactions, a rename, captions, moderation, a WHEP player, a WHIP
and an RTMP publisher, a care-home screen paired, wrong codes, keys and requests along the way.

- Nothing is written to disk: the node's working, home and temporary directories stay empty and,
  under strace (when the machine has it), no file anywhere is opened for writing, created,
  renamed or removed. No setting asks for anything on disk; none exists.
- What the bus keeps about people expires within the bounds ``docs/security.md`` promises: every
  key, with its TTL read in Redis while everyone is in and after everyone has left, belongs to a
  known family and lives no longer than that family may; display names, chat and addresses are
  only in keys that expire, captions nowhere. (``tests/test_bus_expiry.py`` checks that keys
  expire at all; this checks how soon, and where personal data is.)
- Logs at info hold no display names, chat or caption text, codes, keys or client addresses.

The journey runs once for the module (a node, a performer and several peers); each test reads what
it saw. Every client connects from 127.0.0.7, an address the node has no other reason to know, so
any trace of it is a trace of a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiortc import RTCSessionDescription

from clients.client import Performer, ProtocolError, Session, Watcher
from media.ice import use_host_addresses
from tests import buskeys
from tests.helpers import eventually
from tests.media.helpers import MovingPatternTrack, ToneTrack
from tests.nodes import ORGANISER_KEY
from tests.redis_server import RedisServer, free_port
from tests.rtmp_raw import RawRtmp
from tests.test_whep import Player
from tests.test_whip import as_obs_sends_it, obs_like_offer

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
STRACE = shutil.which("strace")
CLIENT = "127.0.0.7"  # every client's address
RETENTION = 600  # --chat-retention of this node, seconds

NAMES = ("Aino Virtanen", "Aino Virtanen-Koski", "Bertta Mäkinen")
CHAT = ("Terveisiä Kuopiosta, täällä sataa lunta", "Kiitos, kaunis laulu")
CAPTION = "Seuraavaksi kuullaan Sibeliuksen Kuusi"
PERSONAL = (*NAMES, *CHAT, CLIENT)

# How long the bus may keep each family of keys, in seconds (None: until someone acts on it, as
# tests/buskeys.py lists), as docs/security.md promises. A key of no family here fails the test.
KEPT: dict[str, float | None] = {
    "group:members:": 30,  # who sits in a lobby, with display names: presence
    "group-expiry:members:": 30,
    "group:lobbies:": 600,  # a show's lobbies and their friends' codes: the listing
    "group-expiry:lobbies:": 600,
    "lobbycode:": 600,
    "session:": 12 * 3600,  # a viewer's way back to the same seat and name
    "chat:": RETENTION,  # chat, with names: --chat-retention after the last message
    "muted:": RETENTION,
    "chatid:": 600,  # a message's client id, to recognise a repeat
    "ratelimit:": 900,  # wrong codes and secrets per address: the window
    "pairing:": 20 * 60,
    "pairingtoken:": 10 * 60,
    "screenstatus:": 30,
    "voice:": 7 * 24 * 3600,
    "showlock:": 5,
    "group:nodes": 15,  # the node registry: each node's URL and load, its heartbeat renews it
    "group-expiry:nodes": 15,
    "show:": None,  # an open show's record (an ended one's: 30 days)
    "ins:": 24 * 3600,  # a show's raw counts (no names: a member's seconds under a digest)
    "insight:": 30 * 24 * 3600,  # the show's summed figures: --insight-retention
    "fb:": 30 * 24 * 3600,  # anonymous feedback answers
    "ticketseat:": 12 * 3600,
    **dict.fromkeys(buskeys.UNTIL_ACTION, None),
}
# Families that may hold display names, chat text or an address.
MAY_BE_PERSONAL = ("group:members:", "chat:", "ratelimit:")


@dataclass
class Key:
    """One key on Redis as read: its name (without the namespace), type, PTTL and content."""

    name: str
    kind: str
    pttl: int  # ms; -1: no expiry
    content: bytes

    @property
    def family(self) -> str | None:
        return max((f for f in KEPT if self.name.startswith(f)), key=len, default=None)


@dataclass
class Journey:
    """What the journey saw."""

    secrets: list[str] = field(default_factory=list)  # codes and keys typed or handed out
    logs: list[str] = field(default_factory=list)
    files: dict[str, list[str]] = field(default_factory=dict)  # the node's directories, after
    writes: list[str] | None = None  # what strace saw change on disk (None: not traced)
    keys_everyone_in: list[Key] = field(default_factory=list)
    keys_after: list[Key] = field(default_factory=list)


# -- the node process -----------------------------------------------------------------------------

# What strace watches: every way of changing the file system.
CHANGES = (
    "?open,openat,?openat2,?creat,?rename,renameat,?renameat2,?unlink,unlinkat,?rmdir,?mkdir,"
    "mkdirat,?link,linkat,?symlink,symlinkat,?truncate"
)
_WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
_PATH = re.compile(r'"([^"]*)"')


class NodeProcess:
    """``lampio-stream serve`` as an operator runs it, in directories of its own; its log (stderr)
    is read into memory, so that the log is no file either."""

    def __init__(self, base: Path, redis_url: str) -> None:
        self.port, self.rtmp_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dirs = {name: base / name for name in ("cwd", "home", "tmp")}
        for path in self.dirs.values():
            path.mkdir()
        self.trace = base / "strace.txt"  # outside the node's directories
        self.lines: list[str] = []
        command = [
            sys.executable,
            "-m",
            "lampio_stream.cli",
            "serve",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--public-url={self.url}",
            f"--rtmp-port={self.rtmp_port}",
            "--ice-host=127.0.0.1",
            f"--redis-url={redis_url}",
            f"--organiser-key={ORGANISER_KEY}",
            f"--chat-retention={RETENTION}",
            "--log-level=info",
        ]
        if STRACE is not None:
            trace = [STRACE, "-f", "--seccomp-bpf", "-e", f"trace={CHANGES}", "-o", str(self.trace)]
            command = trace + command
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(ROOT),
            # Python's bytecode cache belongs to the checkout, not to any show.
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": str(self.dirs["home"]),
            "TMPDIR": str(self.dirs["tmp"]),
            "LAMPIO_LOG_FORMAT": "json",
        }
        self.proc = subprocess.Popen(
            command,
            cwd=self.dirs["cwd"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    async def up(self) -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(self.url + "/readyz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    @property
    def pid(self) -> int:
        """The node's own process (strace's child, when traced)."""
        if STRACE is None:
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def stop(self) -> None:
        """SIGTERM to the node, as an operator stops it (strace ends with it); the whole log
        read. Whatever is left after 20 s is killed, the node first."""
        try:
            node: int | None = self.pid
        except (OSError, ValueError, IndexError):
            node = None  # not started, or already gone
        with contextlib.suppress(ProcessLookupError):
            os.kill(node if node is not None else self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                if node is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(node, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
            self._reader.join(5)

    def files(self) -> dict[str, list[str]]:
        """Every file and directory in the node's own directories."""
        return {
            name: sorted(str(p.relative_to(path)) for p in path.rglob("*"))
            for name, path in self.dirs.items()
        }

    def writes(self) -> list[str] | None:
        """The changes to the file system strace saw (None without strace)."""
        if STRACE is None:
            return None
        changes = []
        for line in self.trace.read_text().splitlines():
            call = line.split(maxsplit=1)[-1]
            if call.startswith(("+++", "---", "<...")):
                continue  # exits, signals, the ends of calls begun on an earlier line
            path = _PATH.search(call)
            where = path.group(1) if path else ""
            if where.startswith(("/dev/", "/proc/", "/sys/")):
                continue
            if call.startswith(("open(", "openat(", "openat2(")) and not _WRITE_FLAGS.search(call):
                continue  # reading
            changes.append(call)
        return changes


# -- the journey ----------------------------------------------------------------------------------


class Client:
    """HTTP from the client address, with the organiser's key when asked."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(CLIENT, 0)))

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = ORGANISER_KEY,
        text: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        async with self.http.request(
            method, self.url + path, json=body, data=text, headers=sent
        ) as response:
            raw = await response.text()
            try:
                answer: Any = json.loads(raw)
            except ValueError:
                answer = raw
            return response.status, answer, dict(response.headers)

    async def session(self) -> Session:
        return await Session.connect(self.url, local_address=CLIENT)

    async def close(self) -> None:
        await self.http.close()


async def read_keys(url: str) -> list[Key]:
    """Every key on Redis with its type, PTTL and content."""
    client: Any = redis.Redis.from_url(url)
    try:
        keys = []
        async for raw in client.scan_iter(count=1000):
            kind = (await client.type(raw)).decode()
            if kind == "string":
                content = await client.get(raw) or b""
            elif kind == "hash":
                content = b"".join(k + v for k, v in (await client.hgetall(raw)).items())
            elif kind == "zset":
                content = b"".join(await client.zrange(raw, 0, -1))
            elif kind == "stream":
                rows = await client.xrange(raw)
                content = b"".join(v for _, fields in rows for v in fields.values())
            else:
                content = b""
            keys.append(
                Key(
                    raw.decode().removeprefix(buskeys.NAMESPACE),
                    kind,
                    await client.pttl(raw),
                    content,
                )
            )
        return sorted(keys, key=lambda k: k.name)
    finally:
        await client.aclose()


async def live(client: Client, show: dict[str, Any]) -> bool:
    status, body, _ = await client.call(
        "GET", f"/api/shows/{show['id']}", key=show["performer_token"]
    )
    return status == 200 and body["state"] == "live"


async def watch(session: Session, joined: dict[str, Any]) -> Watcher:
    """The viewer seated by ``joined`` starts watching (counting encoded frames)."""
    watcher = Watcher(session, decode=False)
    if not joined["live"]:
        await session.next_event("show.state")
    await watcher.start()
    return watcher


async def refused(code: str, request: Awaitable[Any]) -> None:
    """``request`` is answered with the error ``code``."""
    try:
        await request
    except ProtocolError as exc:
        assert exc.code == code, (exc.code, code)
    else:
        raise AssertionError(f"not refused: expected {code}")


async def journey(node: NodeProcess, redis_url: str, seen: Journey) -> None:
    """A whole show from the audience's, the performer's and the organiser's side."""
    client = Client(node.url)
    sessions: list[Session] = []
    closers: list[Any] = []  # what to close at the end, whatever happens

    async def session() -> Session:
        opened = await client.session()
        sessions.append(opened)
        return opened

    try:
        shows = []
        for title in ("Iltakonsertti", "OBS-konsertti", "RTMP-konsertti"):
            status, show, _ = await client.call("POST", "/api/shows", {"title": title})
            assert status == 201, show
            shows.append(show)
            seen.secrets += [show["code"], show["performer_token"], show["stream_key"]]
        show, whip_show, rtmp_show = shows
        seen.secrets.append(ORGANISER_KEY)
        assert (await client.call("GET", "/api/shows", key="not-the-organiser-key"))[0] == 403
        wrong_code = "000000" if show["code"] != "000000" else "000001"
        seen.secrets.append(wrong_code)

        # the performer goes live
        performer = Performer(await session())
        closers.append(performer.stop)
        await performer.start(
            show["id"], show["performer_token"], [MovingPatternTrack(), ToneTrack()], "video/VP8"
        )
        await eventually(lambda: live(client, show), 20, "the show live")

        # viewers: one opens a lobby, her friend joins it by its code; a stranger guesses
        ann, bo, stranger = await session(), await session(), await session()
        joined = await ann.request("watch.join", code=show["code"], name=NAMES[0])
        lobby_code = joined["lobby"]["code"]
        seen.secrets += [lobby_code, joined["session"]]
        joined_bo = await bo.request(
            "watch.join", code=show["code"], name=NAMES[2], lobby=lobby_code.lower()
        )
        seen.secrets.append(joined_bo["session"])
        await refused("show_not_found", stranger.request("show.lookup", code=wrong_code))
        assert (await client.call("GET", f"/api/shows/by-code/{wrong_code}", key=None))[0] == 404
        await refused(
            "lobby_not_found", stranger.request("watch.join", code=show["code"], lobby="ZZZZZ")
        )
        seen.secrets.append("ZZZZZ")
        watchers = [await watch(ann, joined), await watch(bo, joined_bo)]
        closers += [w.close for w in watchers]
        await eventually(lambda: all(w.video.frames >= 10 for w in watchers), 20, "both watch")

        # the foyer: chat, reactions, a rename; the performer captions and moderates
        first = await ann.request("chat.send", text=CHAT[0], client_id="ann-1")
        await ann.request("chat.send", text=CHAT[0], client_id="ann-1")  # a repeat
        second = await bo.request("chat.send", text=CHAT[1], client_id="bo-1")
        await bo.request("react", kind="applause")
        await ann.request("react", kind="heart")
        await ann.request("member.rename", name=NAMES[1])
        await bo.request("chat.history", after="0-0")
        await performer.session.request("caption.send", text=CAPTION)
        await performer.session.request(
            "chat.delete", lobby=joined["lobby"]["id"], message=second["id"]
        )
        await performer.session.request("chat.mute", member=joined_bo["me"]["id"])
        await performer.session.request("voice.intermission", open=True)
        assert first["id"]

        # a standard player (WHEP) from the same address
        player = Player()
        closers.append(player.close)
        status, answer, whep = await client.call(
            "POST",
            f"/whep/{show['code']}",
            key=None,
            text=await player.offer(),
            headers={"Content-Type": "application/sdp"},
        )
        assert status == 201, answer
        await player.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await eventually(lambda: player.frames["video"] >= 5, 20, "the WHEP player watches")

        # OBS over WHIP: a wrong key, then the right one
        obs = await obs_like_offer()
        closers.append(obs.close)
        offer = as_obs_sends_it(obs.localDescription.sdp)
        sdp = {"Content-Type": "application/sdp"}
        status, _, _ = await client.call("POST", "/whip", key="wrong-key", text=offer, headers=sdp)
        assert status == 403
        seen.secrets.append("wrong-key")
        status, answer, whip = await client.call(
            "POST", "/whip", key=whip_show["stream_key"], text=offer, headers=sdp
        )
        assert status == 201, answer
        await obs.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await eventually(lambda: live(client, whip_show), 20, "the WHIP show live")

        # an RTMP encoder: a wrong key, a right one, and one that breaks the protocol
        wrong = await RawRtmp.open(node.rtmp_port, local_address=CLIENT)
        await wrong.connect()
        assert (await wrong.publish("wrong-rtmp-key"))["code"] == "NetStream.Publish.BadName"
        seen.secrets.append("wrong-rtmp-key")
        right = await RawRtmp.open(node.rtmp_port, local_address=CLIENT)
        await right.connect()
        assert (await right.publish(rtmp_show["stream_key"]))["code"] == "NetStream.Publish.Start"
        broken = await RawRtmp.open(node.rtmp_port, local_address=CLIENT)
        await broken.message(3, 9, b"\x17")  # video before publishing
        assert await broken.closed()
        for encoder in (wrong, right, broken):
            await encoder.close()

        # a request that is not HTTP at all
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", node.port, local_addr=(CLIENT, 0)
        )
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n")
        status_line = await asyncio.wait_for(reader.readline(), 5)
        assert b" 400 " in status_line, status_line
        writer.close()

        # a care-home screen, paired by staff with a wrong key and a wrong code first
        status, issued, _ = await client.call("POST", "/api/staff-keys", {"label": "Hoivakoti"})
        assert status == 201
        tv, phone = await session(), await session()
        hello = await tv.request("screen.hello")
        seen.secrets += [issued["key"], hello["code"], hello["token"]]
        await refused("forbidden", phone.request("remote.open", key="not-a-staff-key"))
        await phone.request("remote.open", key=issued["key"])
        wrong_pairing = "111111" if hello["code"] != "111111" else "222222"
        await refused("pairing_not_found", phone.request("screen.pair", code=wrong_pairing))
        await phone.request("screen.pair", code=hello["code"], name="Olohuone")
        await tv.request("screen.status", state="waiting", sound="on")

        # everyone in: what the bus keeps now
        seen.keys_everyone_in = await read_keys(redis_url)

        # everyone leaves; the performer ends the show
        await client.call("DELETE", whep["Location"], key=None)
        await client.call("DELETE", whip["Location"], key=None)
        await ann.request("watch.leave")
        await performer.stop()
        await performer.session.request(
            "perform.end", show=show["id"], token=show["performer_token"]
        )
        for opened in sessions:
            await opened.close()

        async def nobody_seated() -> bool:
            keys = await read_keys(redis_url)
            return not any(k.name.startswith("group:members:") for k in keys)

        await eventually(nobody_seated, 45, "every seat given back")
        seen.keys_after = await read_keys(redis_url)
    finally:
        for close in [*closers, *(opened.close for opened in sessions), client.close]:
            with contextlib.suppress(Exception):
                await close()


@pytest.fixture(scope="module")
def seen(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Journey]:
    """The journey, once for the module, on a node process of its own."""
    redis_server.flush()
    node = NodeProcess(tmp_path_factory.mktemp("privacy"), redis_server.url)
    seen = Journey()
    use_host_addresses([CLIENT])  # the clients' own WebRTC candidates: the client address too

    async def run() -> None:
        await eventually(node.up, 30, "the node answers", interval=0.1)
        await journey(node, redis_server.url, seen)

    try:
        asyncio.run(run())
    finally:
        use_host_addresses(None)
        node.stop()
    seen.logs = node.lines
    seen.files = node.files()
    seen.writes = node.writes()
    yield seen


# -- what it saw ----------------------------------------------------------------------------------


def test_the_nodes_directories_stay_empty(seen: Journey) -> None:
    assert seen.files == {"cwd": [], "home": [], "tmp": []}


@pytest.mark.needs("/usr/bin/strace", "strace, to see every file the node opens")
def test_no_file_anywhere_is_written_created_or_removed(seen: Journey) -> None:
    assert seen.writes == []


def _holds(key: Key, text: str) -> bool:
    return text in key.name or text.encode() in key.content


def test_what_the_bus_keeps_about_people_expires_within_its_bound(seen: Journey) -> None:
    for moment, keys in (("everyone in", seen.keys_everyone_in), ("after", seen.keys_after)):
        for key in keys:
            family = key.family
            assert family is not None, f"{moment}: {key.name} is of no known family"
            bound = KEPT[family]
            if key.pttl == -1:
                assert family in buskeys.UNTIL_ACTION, f"{moment}: {key.name} never expires"
            elif bound is not None:
                assert key.pttl <= bound * 1000, f"{moment}: {key.name} lives {key.pttl} ms"
            said = [text for text in PERSONAL if _holds(key, text)]
            if said:
                assert family in MAY_BE_PERSONAL and key.pttl > 0, (moment, key.name, said)
            assert not _holds(key, CAPTION), f"{moment}: a caption is kept in {key.name}"
    # and the journey did leave personal data there, where it is promised to be
    during = seen.keys_everyone_in
    assert any(k.family == "group:members:" and _holds(k, NAMES[1]) for k in during)
    assert any(k.family == "chat:" and _holds(k, CHAT[0]) for k in during)
    assert any(k.family == "ratelimit:" and CLIENT in k.name for k in during)
    assert any(k.family == "session:" for k in during)
    assert not any(k.family == "group:members:" for k in seen.keys_after)  # seats given back
    assert any(k.family == "chat:" and _holds(k, NAMES[0]) for k in seen.keys_after)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_logs_hold_no_names_texts_codes_keys_or_addresses(seen: Journey) -> None:
    records = [json.loads(line) for line in seen.logs]  # JSON lines only, nothing else
    events = {record["event"] for record in records}
    # the journey was logged as it went
    assert {
        "serve.start",
        "perform.start",
        "whip.publish",
        "rtmp.publish",
        "rtmp.refused",
    } <= events
    assert {record["level"] for record in records} <= {"info", "warning", "error"}
    kept_out = [*PERSONAL, CAPTION, *seen.secrets]
    for record in records:
        text = "\n".join(_strings({k: v for k, v in record.items() if k != "timestamp"}))
        found = [secret for secret in kept_out if secret in text]
        assert not found, (found, record)
