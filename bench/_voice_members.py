"""Bench lobby members (one worker process hosting them all): each joins a show's lobby and its
voice; told "on", the speakers send a tone with their microphone on; everyone counts the voice
frames that reach their slots, without decoding (``media.receiver.EncodedReceiver`` taps).

JSON lines on stdout as bench/_lobby_members.py says.
"""

from __future__ import annotations

import asyncio

from _lobby_members import Member, loopback, parser, run
from aiortc import RTCPeerConnection, RTCSessionDescription

from clients.client import Session
from media.ice import rtc_configuration
from media.sources import ToneTrack


async def join(member: Member, url: str, code: str, slots: int) -> None:
    session = member.session = await Session.connect(url)
    await session.request("watch.join", code=code, name=f"Jäsen {member.index}")
    pc = member.pc = RTCPeerConnection(rtc_configuration(session.ice_servers, max_bundle=True))
    if member.sends:
        pc.addTransceiver(ToneTrack(300 + 20 * member.index), direction="sendonly")
    receiving = [pc.addTransceiver("audio", direction="recvonly") for _ in range(slots)]
    await pc.setLocalDescription(await pc.createOffer())
    answer = await session.request("voice.join", sdp=pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    member.tap(pc, receiving)


async def mic_on(member: Member) -> None:
    assert member.session is not None
    await member.session.request("voice.mic", on=True)


def main() -> None:
    args = parser(__doc__, "speakers").parse_args()
    loopback()
    members = [
        Member(n, sends=n % args.members < args.sending) for n in range(args.lobbies * args.members)
    ]
    slots = min(12, args.members - 1)
    asyncio.run(
        run(members, lambda m: join(m, args.url, args.code, slots), mic_on, args.max_seconds)
    )


if __name__ == "__main__":
    main()
