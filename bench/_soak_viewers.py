"""Soak viewers: one worker process hosting many viewers who come and go until told to stop.

Each viewer lives in a loop of visits. A visit: connect (``clients.client.Session``, from
``_procs.loopback_address``), ``watch.join`` the show by its code (sometimes a friend's lobby by
a lobby code another viewer of this worker was given, sometimes with the session token of the
viewer's last visit, as a returning member), for media viewers ``watch.start`` and the first whole
video frame (``Watcher(decode=False)``, nothing decoded), then a stay of chat, reactions and the
odd ``chat.history`` or rename, and a way out: ``watch.leave`` then closing, closing, dropping the
socket without a close frame, or a silent cut (the old socket stalls, unread, until the node's
heartbeat ends it) followed by a reconnect with the same session. A pause, then the next visit.

The conductor (``bench/soak.py``) drives the worker over stdin, one command a line:

- ``go``: visits begin (each viewer's first after a random delay within ``--ramp``);
- ``drain``: every viewer ends its visit now (the way out it planned, a cut being a drop) and
  waits; emits ``drained`` with the counts so far;
- ``resume``: visits begin again;
- ``stop``: as drain, then emits ``result`` and exits.

Anything that is not an outcome the protocol documents for what the viewer did is an error:
every failed request, a first frame that does not come, a socket the node closed unasked.
A friend's lobby being full or gone, or the address's allowance of wrong friends' codes used up
(``rate_limited``), is counted as ``refused`` (the viewer then joins any lobby).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from _procs import emit, loopback_address, stdin_lines

from clients.client import ProtocolError, Session, Watcher
from media.ice import use_host_addresses

EXITS = ("leave", "close", "drop", "cut")
KINDS = ("applause", "laughter", "heart", "bravo")
FIRST_FRAME_TIMEOUT = 20.0
REQUEST_TIMEOUT = 15.0
CUT_LINGER = 40.0  # a stalled socket is kept this long at most (the node's heartbeat: ≤ 30 s)
ERROR_SAMPLES = 20


@dataclass
class Tally:
    """What happened, summed over this worker's viewers."""

    counts: Counter[str] = field(default_factory=Counter)
    exits: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def error(self, what: str, exc: BaseException | str) -> None:
        kind = exc.code if isinstance(exc, ProtocolError) else type(exc).__name__
        if isinstance(exc, str):
            kind = exc
        self.errors[f"{what}:{kind}"] += 1
        if len(self.samples) < ERROR_SAMPLES:
            self.samples.append(f"{what}: {exc!r}"[:300])

    def report(self) -> dict[str, Any]:
        return {
            "counts": dict(self.counts),
            "exits": dict(self.exits),
            "refused": dict(self.refused),
            "errors": dict(self.errors),
            "samples": self.samples,
        }


@dataclass
class Viewer:
    index: int
    media: bool
    rng: random.Random
    session_token: str = ""
    lobby_code: str = ""
    task: asyncio.Task[None] | None = None


class Worker:
    """This process's viewers and what they met."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url: str = args.url
        self.code: str = args.code
        self.tally = Tally()
        self.running = asyncio.Event()  # set while visits may begin
        self.leave_now = asyncio.Event()  # set by drain and stop: every visit ends at once
        self.lobby_codes: deque[str] = deque(maxlen=32)  # given to this worker's viewers
        self.stalled: set[Session] = set()  # silently cut sockets, not yet closed
        self.client_ids = itertools.count()
        self.tasks: set[asyncio.Task[None]] = set()
        self.open_visits = 0
        media = set(args.media.split(",")) if args.media else set()
        self.viewers = [
            Viewer(i, str(i) in media, random.Random(args.seed * 1_000_003 + i))
            for i in (int(v) for v in args.indices.split(","))
        ]

    # -- one visit --------------------------------------------------------------------------------

    async def live(self, viewer: Viewer) -> None:
        """Visit after visit, until the worker stops."""
        await asyncio.sleep(viewer.rng.uniform(0, self.args.ramp))
        while True:
            await self.running.wait()
            try:
                await self.visit(viewer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.tally.error("visit", exc)
            with contextlib.suppress(TimeoutError):
                # a pause before coming back (cut short by a drain: nothing to wait for then)
                await asyncio.wait_for(
                    self.leave_now.wait(), viewer.rng.uniform(*self.args.pause_range)
                )

    async def join(
        self, viewer: Viewer, session: Session, *, returning: bool, lobby: str = ""
    ) -> dict[str, Any]:
        """``watch.join``: as the member of the last visit if ``returning``, into ``lobby`` (or a
        friend's lobby, now and then) if given; a friend's lobby that is full or gone is refused,
        and the viewer joins wherever there is room."""
        fields: dict[str, Any] = {"code": self.code, "name": f"Katsoja {viewer.index}"}
        if returning and viewer.session_token:
            fields["session"] = viewer.session_token
            self.tally.counts["returning_joins"] += 1
        if not lobby and self.lobby_codes and viewer.rng.random() < 0.2:
            lobby = viewer.rng.choice(self.lobby_codes)
        if lobby:
            try:
                return await session.request(
                    "watch.join", timeout=REQUEST_TIMEOUT, lobby=lobby, **fields
                )
            except ProtocolError as exc:
                # rate_limited: eight bench viewers share an address, and stale friends' codes
                # count as wrong guesses against its lobby-code allowance (5 in 15 min).
                if exc.code not in ("lobby_full", "lobby_not_found", "rate_limited"):
                    raise
                self.tally.refused[exc.code] += 1
        return await session.request("watch.join", timeout=REQUEST_TIMEOUT, **fields)

    async def visit(self, viewer: Viewer) -> None:
        rng = viewer.rng
        address = loopback_address(viewer.index)
        session = await Session.connect(self.url, local_address=address)
        watcher: Watcher | None = None
        activity: asyncio.Task[None] | None = None
        watching: asyncio.Task[None] | None = None
        exit_by = rng.choice(EXITS)
        self.tally.counts["visits"] += 1
        self.open_visits += 1
        try:
            returning = rng.random() < 0.6  # a reload: the same member, in its lobby or not
            own = viewer.lobby_code if returning and rng.random() < 0.5 else ""
            joined = await self.join(viewer, session, returning=returning, lobby=own)
            self.seated(viewer, joined)
            watching = asyncio.get_running_loop().create_task(self.watch_events(session))
            if viewer.media:
                watcher = await self.start_media(session)
            activity = asyncio.get_running_loop().create_task(self.act(viewer, session))
            stay = rng.uniform(*self.args.stay_range)
            if exit_by == "cut":
                stay /= 2  # and as long again after the reconnect
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.leave_now.wait(), stay)
            if exit_by == "cut" and not self.leave_now.is_set():
                await self.stop_tasks(activity, watching)
                if watcher is not None:
                    await watcher.close()  # its media went with the network
                    watcher = None
                session = await self.cut_and_reconnect(viewer, session)
                watching = asyncio.get_running_loop().create_task(self.watch_events(session))
                if viewer.media:
                    watcher = await self.start_media(session)
                activity = asyncio.get_running_loop().create_task(self.act(viewer, session))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.leave_now.wait(), stay)
                exit_by = "close"
        finally:
            await self.stop_tasks(activity, watching)
            await self.end(session, watcher, exit_by)
            self.open_visits -= 1

    async def stop_tasks(self, *tasks: asyncio.Task[None] | None) -> None:
        """Cancel a visit's tasks and wait for them: one that runs on would be sending on the
        socket being closed."""
        running = [task for task in tasks if task is not None]
        for task in running:
            task.cancel()
        if running:
            _, late = await asyncio.wait(running, timeout=5)
            if late:
                self.tally.error("visit", "task_ran_on_after_cancel")

    def seated(self, viewer: Viewer, joined: dict[str, Any]) -> None:
        self.tally.counts["joins"] += 1
        viewer.session_token = str(joined["session"])
        viewer.lobby_code = str(joined["lobby"]["code"])
        self.lobby_codes.append(viewer.lobby_code)
        if not joined.get("live"):
            self.tally.error("join", "show_not_live")

    async def start_media(self, session: Session) -> Watcher:
        watcher = Watcher(session, decode=False)
        try:
            await watcher.start()
            # the frames are counted by a tap's callback: nothing to await but time
            deadline = time.monotonic() + FIRST_FRAME_TIMEOUT
            while watcher.video.first_frame_at is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("no first video frame")
                await asyncio.sleep(0.1)
        except BaseException:
            await watcher.close()
            raise
        self.tally.counts["first_frames"] += 1
        return watcher

    async def cut_and_reconnect(self, viewer: Viewer, old: Session) -> Session:
        """The network goes away without a word (the old socket is left unread, to be ended by
        the node's heartbeat), and the viewer comes back on a new one as the same member."""
        old.stall()
        self.stalled.add(old)
        self.tally.exits["cut"] += 1

        async def linger() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.leave_now.wait(), CUT_LINGER)
            await self.forget_stalled(old)

        self.spawn(linger())
        session = await Session.connect(self.url, local_address=loopback_address(viewer.index))
        try:
            # as the page does: the same member, back in its lobby
            joined = await self.join(viewer, session, returning=True, lobby=viewer.lobby_code)
        except BaseException:
            await session.close()
            raise
        self.seated(viewer, joined)
        self.tally.counts["reconnects"] += 1
        return session

    async def forget_stalled(self, session: Session) -> None:
        if session in self.stalled:
            self.stalled.discard(session)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.drop(), 5)

    async def watch_events(self, session: Session) -> None:
        """Take the session's events; the node closing the socket unasked is an error."""
        while True:
            event = await session.events.get()
            kind = str(event.get("type"))
            self.tally.counts[f"event:{kind}"] += 1
            if kind == "closed":
                self.tally.error("socket", f"closed_by_node_{event.get('code')}")
                return

    async def act(self, viewer: Viewer, session: Session) -> None:
        """Chat, react, now and then read the chat's history or change one's name."""
        rng = viewer.rng
        loop = asyncio.get_running_loop()
        next_chat = loop.time() + rng.uniform(*self.args.chat_range)
        claps = rng.random() < self.args.clappers
        next_clap = loop.time() + rng.uniform(*self.args.clap_range)
        last_id = ""
        while True:
            now = loop.time()
            if now >= next_chat:
                next_chat = now + rng.uniform(*self.args.chat_range)
                client_id = f"soak-{self.args.worker}-{next(self.client_ids)}"
                text = rng.choice(("Hyvää iltaa!", "Kiitos, ihanaa!", "God kväll!", "Bravo 👏"))
                sent = await self.request(
                    session, "chat", "chat.send", text=text, client_id=client_id
                )
                if sent is not None:
                    last_id = str(sent.get("id", ""))
                    self.tally.counts["chat_sent"] += 1
                if last_id and rng.random() < 0.15:
                    await self.request(session, "history", "chat.history", after=last_id)
                if rng.random() < 0.05:
                    name = f"Katsoja {viewer.index} {rng.choice(('Äiti', 'Isä', 'Mummo'))}"
                    await self.request(session, "rename", "member.rename", name=name)
            if claps and now >= next_clap:
                next_clap = now + rng.uniform(*self.args.clap_range)
                clapped = await self.request(session, "react", "react", kind=rng.choice(KINDS))
                if clapped is not None:
                    self.tally.counts["reactions_sent"] += 1
            await asyncio.sleep(max(0.05, min(next_chat, next_clap if claps else next_chat) - now))

    async def request(
        self, session: Session, what: str, type_: str, **fields: Any
    ) -> dict[str, Any] | None:
        try:
            return await session.request(type_, timeout=REQUEST_TIMEOUT, **fields)
        except (ProtocolError, TimeoutError, ConnectionError) as exc:
            self.tally.error(what, exc)
            return None

    async def end(self, session: Session, watcher: Watcher | None, exit_by: str) -> None:
        """Leave the way planned (a cut planned for a visit a drain ends becomes a drop)."""
        if exit_by == "cut":
            exit_by = "drop"
        self.tally.exits[exit_by] += 1
        try:
            if exit_by == "leave":
                with contextlib.suppress(ProtocolError, TimeoutError, ConnectionError):
                    await session.request("watch.leave", timeout=5)
            if watcher is not None:
                await watcher.close()
            if exit_by == "drop":
                await asyncio.wait_for(session.drop(), 10)
            else:
                await asyncio.wait_for(session.close(), 10)
        except Exception as exc:
            self.tally.error(f"exit_{exit_by}", exc)

    # -- the worker -------------------------------------------------------------------------------

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def go(self) -> None:
        self.leave_now.clear()
        self.running.set()
        for viewer in self.viewers:
            if viewer.task is None:
                viewer.task = asyncio.get_running_loop().create_task(self.live(viewer))

    async def drain(self, timeout: float = 30.0) -> None:
        """Every viewer ends its visit and waits."""
        self.running.clear()
        self.leave_now.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for session in list(self.stalled):
                await self.forget_stalled(session)
            if self.open_visits == 0 and not self.stalled:
                return
            await asyncio.sleep(0.1)
        self.tally.error("drain", "visits_still_open")

    async def stop(self) -> None:
        await self.drain()
        for viewer in self.viewers:
            if viewer.task is not None:
                viewer.task.cancel()
        await asyncio.gather(
            *(v.task for v in self.viewers if v.task is not None), return_exceptions=True
        )


async def run(args: argparse.Namespace) -> None:
    worker = Worker(args)
    gc.set_threshold(20_000, 50, 10)  # as the node: fewer pauses with hundreds of sessions
    try:
        async with asyncio.timeout(args.max_seconds):
            commands = await stdin_lines()
            emit("ready", viewers=len(worker.viewers))
            while line := await commands.readline():
                word = line.decode().strip()
                if word in ("go", "resume"):
                    worker.go()
                elif word == "drain":
                    await worker.drain()
                    emit("drained", **worker.tally.report())
                elif word == "stop":
                    break
    except TimeoutError:
        worker.tally.error("worker", "ran_out_of_time")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(worker.stop(), 40)
        emit("result", **worker.tally.report())


def pair(text: str) -> tuple[float, float]:
    low, _, high = text.partition(",")
    return float(low), float(high or low)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--code", required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--indices", required=True, help="viewer numbers, e.g. 0,3,6")
    parser.add_argument("--media", default="", help="those of them with media, e.g. 0,150")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ramp", type=float, default=10.0)
    parser.add_argument("--stay-range", type=pair, default=(5.0, 25.0))
    parser.add_argument("--pause-range", type=pair, default=(1.0, 4.0))
    parser.add_argument("--chat-range", type=pair, default=(4.0, 12.0))
    parser.add_argument("--clap-range", type=pair, default=(0.7, 3.0))
    parser.add_argument("--clappers", type=float, default=0.4)
    parser.add_argument("--max-seconds", type=float, required=True)
    args = parser.parse_args()
    use_host_addresses(["127.0.0.1"])  # loopback only
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
