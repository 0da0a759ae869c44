"""A viewer for tests/netns.py, run inside a network namespace: watches a show with the Python
client and prints what it received as JSON lines on stdout (``t``, ``video``, ``audio`` frames so
far, every 0.2 s); reads commands from stdin, one JSON object a line (``{"type": …, fields}``),
sends each on its WebSocket and prints ``{"reply": …}`` or ``{"error": …}``. Ends at stdin's end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from clients.client import ProtocolError, Session, Watcher
from media.ice import use_host_addresses

REPORT_EVERY = 0.2


def say(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def commands(watcher: Watcher) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async for line in reader:
        command = json.loads(line)
        kind = command.pop("type")
        try:
            if kind == "watch.quality":
                reply = await watcher.quality(**command)
            else:
                reply = await watcher.session.request(kind, **command)
        except ProtocolError as exc:
            say({"error": {"code": exc.code, "message": str(exc)}})
        else:
            say({"reply": reply})


async def reports(watcher: Watcher) -> None:
    while True:
        say({
            "t": time.monotonic(), "video": watcher.video.frames, "audio": watcher.audio.frames,
            "audio_s": watcher.audio.seconds,
        })  # fmt: skip
        await asyncio.sleep(REPORT_EVERY)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--code", required=True)
    parser.add_argument("--address", required=True, help="this namespace's end of the link")
    parser.add_argument("--sound-only", action="store_true")
    parser.add_argument("--decode", action="store_true")
    args = parser.parse_args()
    use_host_addresses([args.address])  # its only way out (and never a public STUN server)
    watcher = Watcher(await Session.connect(args.url), decode=args.decode)
    joined = await watcher.join(args.code)
    if not joined["live"]:
        await watcher.session.next_event("show.state", timeout=20)
    await watcher.start(video=not args.sound_only)
    report = asyncio.get_running_loop().create_task(reports(watcher))
    try:
        await commands(watcher)
    finally:
        report.cancel()
        await watcher.close()
        await watcher.session.close()


if __name__ == "__main__":
    asyncio.run(main())
