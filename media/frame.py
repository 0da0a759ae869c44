"""Encoded media frames as the performer's encoder made them, and how to spot a keyframe."""

from __future__ import annotations

import fractions
from dataclasses import dataclass
from typing import Literal

MediaKind = Literal["audio", "video"]

# H.264 NAL unit types (ITU-T H.264 table 7-1) that matter for random access.
_H264_NAL_SLICE = 1
_H264_NAL_IDR = 5
_H264_NAL_SPS = 7


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame (VP8 frame, H.264 Annex-B access unit, Opus packet) with its timing."""

    kind: MediaKind
    mime_type: str
    data: bytes
    pts: int
    clock_rate: int
    keyframe: bool

    def __post_init__(self) -> None:
        if self.kind not in ("audio", "video"):
            raise ValueError(f"kind must be 'audio' or 'video', not {self.kind!r}")
        if not self.mime_type.lower().startswith(self.kind + "/"):
            raise ValueError(f"mime type {self.mime_type!r} does not match kind {self.kind!r}")
        if self.clock_rate <= 0:
            raise ValueError(f"clock rate must be positive, not {self.clock_rate}")

    @property
    def time_base(self) -> fractions.Fraction:
        """Seconds per pts tick."""
        return fractions.Fraction(1, self.clock_rate)


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether a decoder can start at this frame; audio frames always can."""
    codec = mime_type.lower()
    if codec == "video/vp8":
        return is_vp8_keyframe(data)
    if codec == "video/h264":
        return is_h264_keyframe(data)
    return codec.startswith("audio/")


def is_vp8_keyframe(data: bytes) -> bool:
    """VP8 payload header P bit clear (RFC 7741 §4.3) and the key frame start code present."""
    # The start code check guards against a truncated or foreign frame being taken for a key.
    return len(data) >= 10 and not data[0] & 0x01 and data[3:6] == b"\x9d\x01\x2a"


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """A VP8 keyframe's picture size (RFC 6386 §9.1), None for another frame."""
    if not is_vp8_keyframe(data):
        return None
    return (
        int.from_bytes(data[6:8], "little") & 0x3FFF,
        int.from_bytes(data[8:10], "little") & 0x3FFF,
    )


def is_h264_keyframe(data: bytes) -> bool:
    """An Annex-B access unit holding an IDR slice or a sequence parameter set."""
    position = 0
    while True:
        start = data.find(b"\x00\x00\x01", position)
        if start < 0 or start + 3 >= len(data):
            return False
        nal_type = data[start + 3] & 0x1F
        if nal_type in (_H264_NAL_IDR, _H264_NAL_SPS):
            return True
        if nal_type == _H264_NAL_SLICE:
            # Parameter sets and SEI come before the first slice: no need to scan the picture.
            return False
        position = start + 3


def opus_samples(data: bytes) -> int:
    """How many 48 kHz samples an Opus packet carries, from its TOC byte (RFC 6716 §3.1); 0 for
    an empty or malformed packet."""
    if not data:
        return 0
    toc = data[0]
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        tenths = (100, 200, 400, 600)[config % 4]
    elif config < 16:  # hybrid: 10, 20 ms
        tenths = (100, 200)[config % 2]
    else:  # CELT: 2.5, 5, 10, 20 ms
        tenths = (25, 50, 100, 200)[config % 4]
    code = toc & 0x03
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    elif len(data) < 2:
        return 0
    else:
        count = data[1] & 0x3F
    return tenths * count * 48 // 10
