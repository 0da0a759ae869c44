"""Lobby voice: server CPU per forwarded voice packet, direct output vs aiortc's sender.

Lobbies of members talk at once (a few speakers each, everyone listening); the node forwards each
speaker's Opus to every other member of the lobby. The same load runs against a node that sends
through aiortc's own sender (``--media-sender aiortc``), the baseline, in the same run; each node
is measured idle (every voice connected, no microphone on) and talking (bench/_lobby_bench.py).
Figures to stderr; the last stdout line is the JSON summary.

    .venv/bin/python bench/voice.py --lobbies 4 --members 6 --speakers 3 --seconds 10
"""

from __future__ import annotations

import argparse

from _lobby_bench import Load, add_common, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lobbies", type=int, default=4)
    parser.add_argument("--members", type=int, default=6, help="per lobby (at most 13)")
    parser.add_argument("--speakers", type=int, default=3, help="per lobby, talking at once")
    add_common(parser)
    args = parser.parse_args()
    if not 2 <= args.members <= 13 or not 1 <= args.speakers <= args.members:
        parser.error("2–13 members per lobby, 1 to all of them speaking")
    heard = args.lobbies * args.speakers * (args.members - 1)  # voices heard, all told
    load = Load(
        "voice",
        "_voice_members.py",
        [*("--lobbies", str(args.lobbies), "--members", str(args.members)),
         *("--speakers", str(args.speakers))],
        args.members,
        lambda joined: heard * 50.0,  # Opus: 50 frames (packets) a second
        heard * 50.0,
    )  # fmt: skip
    summary = {"lobbies": args.lobbies, "members": args.lobbies * args.members,
               "speakers": args.lobbies * args.speakers}  # fmt: skip
    run(args, load, summary)


if __name__ == "__main__":
    main()
