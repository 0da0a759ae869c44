"""The machine's per-packet floor: SRTP protect + one ``sendto`` of an RTP packet, in a tight loop.

    .venv/bin/python bench/_floor.py --port P [--size 1200] [--packets 20000] [--rounds 3]

The plain way to send one packet, the reference of x_floor: for each packet, write the RTP header,
protect it with libsrtp (AES-CM + HMAC-SHA1-80, the profile aiortc negotiates with browsers) and
hand it to the kernel with one ``sendto`` on a non-blocking UDP socket, to a receiver in another
process (``--port`` on 127.0.0.1; the conductor drains it, so the kernel delivers every packet as
it would to a viewer). CPU time of this process (user + system: the kernel's loopback delivery
included) per packet; the best of ``--rounds`` rounds, each of ``--packets``. Prints
``{"event": "floor", ...}``.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import time

from _procs import emit
from pylibsrtp import Policy, Session

_HEADER = struct.Struct("!BBHII")


def one_round(sock: socket.socket, addr: tuple[str, int], size: int, packets: int) -> float:
    """CPU seconds per packet of one round."""
    session = Session(policy=Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    payload = os.urandom(size - _HEADER.size)
    protect, sendto, pack = session.protect, sock.sendto, _HEADER.pack
    refused = 0
    start = time.process_time()
    for seq in range(packets):
        try:
            sendto(protect(pack(0x80, 96, seq & 0xFFFF, seq * 3000, 0x1234ABCD) + payload), addr)
        except BlockingIOError:
            refused += 1
    elapsed = time.process_time() - start
    if refused > packets // 100:
        raise RuntimeError(f"the kernel refused {refused} of {packets} packets: a slow receiver")
    return elapsed / packets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="receiver's UDP port on 127.0.0.1")
    parser.add_argument("--size", type=int, default=1200, help="RTP packet size in bytes (1200)")
    parser.add_argument("--packets", type=int, default=20000, help="packets per round (20000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is reported (3)")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    addr = ("127.0.0.1", args.port)
    # Pace the rounds' sends a little apart: the receiver drains between them.
    rounds = []
    for _ in range(args.rounds):
        rounds.append(one_round(sock, addr, args.size, args.packets))
        time.sleep(0.2)
    emit(
        "floor",
        us_per_packet=round(min(rounds) * 1e6, 2),
        rounds_us=[round(r * 1e6, 2) for r in rounds],
        size=args.size,
        packets=args.packets,
    )


if __name__ == "__main__":
    main()
