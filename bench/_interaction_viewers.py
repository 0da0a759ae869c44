"""Interaction bench viewers: one worker process hosting many signaling-only viewers.

Each viewer is a ``clients.client.Session`` (one WebSocket, no media) seated with ``watch.join``.
The conductor (``bench/interaction.py``) drives the worker over stdin, one command a line:

- ``found K``: this worker's viewer at seat 0 of planned lobby K joins without a lobby code, which
  opens lobby K (the conductor fills lobbies one by one, so every earlier lobby is full);
  emits ``founded`` with the lobby's id and code;
- ``fill K CODE``: this worker's other viewers of lobby K join it with its code, together;
  emits ``filled``;
- ``go START``: chat and claps follow the plan (``_interaction_plan.Plan``) from START on;
- ``stop``: emits ``result`` (sends, deliveries, clicks, event counts), closes every socket, exits.

JSON lines on stdout (``_procs.emit``); every time is ``time.monotonic()``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from _interaction_plan import CHAT_PREFIX, Plan
from _procs import emit, loopback_address, stdin_lines

from clients.client import ProtocolError, Session


@dataclass
class Viewer:
    index: int
    session: Session | None = None
    lobby: str = ""
    lobby_code: str = ""
    member: str = ""
    join_ms: float = 0.0
    consumer: asyncio.Task[None] | None = None


@dataclass
class Worker:
    plan: Plan
    number: int
    url: str
    code: str
    viewers: dict[int, Viewer] = field(default_factory=dict)
    # (client_id, receiving viewer, arrival, send time read from the text)
    deliveries: list[tuple[str, int, float, float]] = field(default_factory=list)
    echoes: int = 0  # a sender's own message coming back on its lobby channel
    events: Counter[str] = field(default_factory=Counter)
    closed: int = 0  # viewers whose connection the server closed
    # (client_id, sender, lobby, sent, acked at or None, error code)
    sends: list[tuple[str, int, str, float, float | None, str]] = field(default_factory=list)
    clicks: list[float] = field(default_factory=list)  # send times of accepted claps
    click_errors: Counter[str] = field(default_factory=Counter)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def join(self, index: int, lobby_code: str | None) -> Viewer:
        viewer = self.viewers.setdefault(index, Viewer(index))
        session = viewer.session = await Session.connect(
            self.url, local_address=loopback_address(index)
        )
        fields: dict[str, Any] = {"code": self.code, "name": f"Katsoja {index}"}
        if lobby_code is not None:
            fields["lobby"] = lobby_code
        started = time.monotonic()
        joined = await session.request("watch.join", timeout=120, **fields)
        viewer.join_ms = 1000 * (time.monotonic() - started)
        viewer.lobby = joined["lobby"]["id"]
        viewer.lobby_code = joined["lobby"]["code"]
        viewer.member = joined["me"]["id"]
        viewer.consumer = asyncio.get_running_loop().create_task(self.consume(viewer, session))
        return viewer

    async def consume(self, viewer: Viewer, session: Session) -> None:
        """Drain the viewer's events; chat deliveries are timed as they are taken."""
        while True:
            event = await session.events.get()
            now = time.monotonic()
            kind = str(event.get("type"))
            self.events[kind] += 1
            if kind == "chat.message":
                client_id = str(event.get("client_id", ""))
                if not client_id.startswith(CHAT_PREFIX):
                    continue
                if event.get("member") == viewer.member:
                    self.echoes += 1
                    continue
                sent = float(str(event.get("text", "")).rpartition("@")[2] or "nan")
                self.deliveries.append((client_id, viewer.index, now, sent))
            elif kind == "closed":
                self.closed += 1
                return

    async def found(self, lobby: int) -> None:
        index = self.plan.members(lobby)[0]
        try:
            viewer = await self.join(index, None)
        except Exception as exc:
            emit("error", message=f"viewer {index} could not open lobby {lobby}: {exc!r}")
            return
        emit(
            "founded",
            lobby=lobby,
            viewer=index,
            id=viewer.lobby,
            code=viewer.lobby_code,
            ms=round(viewer.join_ms, 1),
        )

    async def fill(self, lobby: int, code: str) -> None:
        indices = [i for i in self.plan.members(lobby)[1:] if self.plan.worker_of(i) == self.number]

        async def one(index: int) -> tuple[int, str, float]:
            try:
                viewer = await self.join(index, code)
                return index, viewer.lobby, viewer.join_ms
            except Exception as exc:
                return index, f"error: {exc!r}", 0.0

        joined = await asyncio.gather(*(one(i) for i in indices))
        emit("filled", lobby=lobby, joined=[list(j) for j in joined])

    async def send_chat(self, sender: int, client_id: str) -> None:
        viewer = self.viewers.get(sender)
        if viewer is None or viewer.session is None:
            self.sends.append((client_id, sender, "", time.monotonic(), None, "not_joined"))
            return
        sent = time.monotonic()
        text = f"Hyvää iltaa, kiitos! {client_id} @{sent:.6f}"
        try:
            await viewer.session.request("chat.send", timeout=10, text=text, client_id=client_id)
        except ProtocolError as exc:
            self.sends.append((client_id, sender, viewer.lobby, sent, None, exc.code))
            return
        except (TimeoutError, ConnectionError) as exc:
            self.sends.append((client_id, sender, viewer.lobby, sent, None, type(exc).__name__))
            return
        self.sends.append((client_id, sender, viewer.lobby, sent, time.monotonic(), ""))

    async def clap(self, index: int) -> None:
        viewer = self.viewers.get(index)
        if viewer is None or viewer.session is None:
            self.click_errors["not_joined"] += 1
            return
        sent = time.monotonic()
        try:
            await viewer.session.request("react", timeout=10, kind="applause")
        except ProtocolError as exc:
            self.click_errors[exc.code] += 1
            return
        except (TimeoutError, ConnectionError) as exc:
            self.click_errors[type(exc).__name__] += 1
            return
        self.clicks.append(sent)

    async def run_plan(self, start: float) -> None:
        """Send this worker's part of the chat and the claps at their planned times."""
        actions: list[tuple[float, Any]] = []
        for offset, sender, client_id in self.plan.chat():
            if self.plan.worker_of(sender) == self.number:
                actions.append((offset, lambda s=sender, c=client_id: self.send_chat(s, c)))
        for offset, viewer in self.plan.claps():
            if self.plan.worker_of(viewer) == self.number:
                actions.append((offset, lambda v=viewer: self.clap(v)))
        actions.sort(key=lambda action: action[0])
        loop = asyncio.get_running_loop()
        for offset, action in actions:
            delay = start + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(action())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def result(self) -> dict[str, Any]:
        return {
            "worker": self.number,
            "viewers": len(self.viewers),
            "joined": sum(1 for v in self.viewers.values() if v.lobby),
            "sends": self.sends,
            "deliveries": self.deliveries,
            "echoes": self.echoes,
            "clicks": self.clicks,
            "click_errors": dict(self.click_errors),
            "events": dict(self.events),
            "closed": self.closed,
        }

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()

        async def one(viewer: Viewer) -> None:
            if viewer.consumer is not None:
                viewer.consumer.cancel()
            if viewer.session is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(viewer.session.close(), 5)

        await asyncio.gather(*(one(v) for v in self.viewers.values()), return_exceptions=True)


async def run(args: argparse.Namespace) -> None:
    plan = Plan(
        args.viewers,
        args.lobby_size,
        args.workers,
        args.seconds,
        args.chat_rate,
        args.clappers,
        args.clap_interval,
        args.seed,
    )
    worker = Worker(plan, args.worker, args.url, args.code)
    # The viewers' pauses would be measured as the node's latency: a full collection over 250
    # sessions took 100–400 ms every few seconds. Collect young objects seldom, and once everyone
    # is seated leave the sessions out of collections (gc.freeze).
    gc.set_threshold(20_000, 50, 10)
    try:
        async with asyncio.timeout(args.max_seconds):
            commands = await stdin_lines()
            emit("ready")
            loop = asyncio.get_running_loop()
            while line := await commands.readline():
                words = line.decode().split()
                if not words:
                    continue
                if words[0] == "found":
                    await worker.found(int(words[1]))
                elif words[0] == "fill":
                    await worker.fill(int(words[1]), words[2])
                elif words[0] == "go":
                    gc.collect()
                    gc.freeze()
                    task = loop.create_task(worker.run_plan(float(words[1])))
                    worker.tasks.add(task)
                elif words[0] == "stop":
                    break
    except TimeoutError:
        emit("error", message="worker ran out of time")
    finally:
        emit("result", **worker.result())
        await worker.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--code", required=True)
    parser.add_argument("--worker", type=int, required=True)
    parser.add_argument("--viewers", type=int, required=True)
    parser.add_argument("--lobby-size", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--chat-rate", type=float, required=True)
    parser.add_argument("--clappers", type=float, required=True)
    parser.add_argument("--clap-interval", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
