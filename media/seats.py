"""What the lobby's voice (media/voice.py) and cameras (media/cameras.py) share: a member's own
peer connection with an optional first section that sends (a microphone, a camera) and fixed
receive-only slots, checked the same way and released the same way when it goes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiortc import RTCPeerConnection

from media.stage import InvalidSdp, UnsupportedMedia, parse_offer


@dataclass(frozen=True)
class SeatOffer:
    """What a seat's offer must be: sections of ``kind`` in ``mime_type``; words for its errors."""

    kind: str  # "audio" or "video"
    mime_type: str
    wrong_kind: str  # e.g. "the voice is sound only"
    wrong_codec: str
    sender: str  # what the first section is: "the microphone", "the camera"
    slots: str  # what the others are: "voice slots", "tile slots"
    listener: str  # the error for a sending section where only listening is allowed


def check_seat_offer(
    offer_sdp: str, rules: SeatOffer, max_slots: int, *, listener_only: bool
) -> tuple[bool, int]:
    """Check a seat's offer; (whether it has a sending first section, how many slots)."""
    offer = parse_offer(offer_sdp)
    sections = [m for m in offer.media if m.kind in ("audio", "video")]
    if any(m.kind != rules.kind for m in sections):
        raise UnsupportedMedia(rules.wrong_kind)
    for media in sections:
        if not any(c.mimeType.lower() == rules.mime_type for c in media.rtp.codecs):
            raise UnsupportedMedia(rules.wrong_codec)
    sends = bool(sections) and sections[0].direction in ("sendonly", "sendrecv")
    slot_sections = sections[1:] if sends else sections
    if any(m.direction not in ("recvonly", "sendrecv") for m in slot_sections):
        raise InvalidSdp(f"after {rules.sender}, offer only receive-only {rules.slots}")
    if not slot_sections or len(slot_sections) > max_slots:
        raise InvalidSdp(f"offer 1 to {max_slots} {rules.slots}")
    if listener_only and sends:
        raise InvalidSdp(rules.listener)
    return sends, len(slot_sections)


def guard_seat(
    pc: RTCPeerConnection, gone: Callable[[], Awaitable[None]], connect_timeout: float
) -> asyncio.Task[None]:
    """Call ``gone`` when the seat's connection fails or is closed by the member, or has not
    connected within ``connect_timeout`` (an offer that never connects holds no sockets); the
    deadline's task, to cancel when the seat closes."""

    @pc.on("connectionstatechange")
    async def state_changed() -> None:
        if pc.connectionState in ("failed", "closed"):
            await gone()

    async def deadline() -> None:
        await asyncio.sleep(connect_timeout)
        if pc.connectionState != "connected":
            await gone()

    return asyncio.get_running_loop().create_task(deadline())
