"""Lobby cameras: server CPU per forwarded tile packet, direct output vs aiortc's sender.

Lobbies of members with their cameras on (320×240 at 15 fps VP8, pre-encoded, a few cameras
each, everyone watching the tiles); the node forwards each camera to every other member of the
lobby. The same load runs against a node that sends through aiortc's own sender
(``--media-sender aiortc``), the baseline, in the same run; each node is measured idle (every
connection up, no camera on) and with the cameras on (bench/_lobby_bench.py). Figures to stderr;
the last stdout line is the JSON summary.

    .venv/bin/python bench/cameras.py --lobbies 2 --members 6 --cameras 3 --seconds 10
"""

from __future__ import annotations

import argparse

from _lobby_bench import Load, add_common, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lobbies", type=int, default=2)
    parser.add_argument("--members", type=int, default=6, help="per lobby (at most 7)")
    parser.add_argument("--cameras", type=int, default=3, help="per lobby, on at once (at most 6)")
    add_common(parser)
    args = parser.parse_args()
    if not 2 <= args.members <= 7 or not 1 <= args.cameras <= min(6, args.members):
        parser.error("2–7 members per lobby, 1 to 6 of them with a camera on")
    tiles = args.lobbies * args.cameras * (args.members - 1)  # cameras seen, all told
    load = Load(
        "cameras",
        "_camera_members.py",
        [*("--lobbies", str(args.lobbies), "--members", str(args.members)),
         *("--cameras", str(args.cameras))],
        args.members,
        lambda joined: tiles * float(joined["packets_per_second"]),
        tiles * 15.0,
    )  # fmt: skip
    summary = {"lobbies": args.lobbies, "members": args.lobbies * args.members,
               "cameras": args.lobbies * args.cameras}  # fmt: skip
    run(args, load, summary)


if __name__ == "__main__":
    main()
