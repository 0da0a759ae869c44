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


class _Bits:
    """An H.264 RBSP read bit by bit, with Exp-Golomb codes (ITU-T H.264 §9.1)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def bit(self) -> int:
        byte = self.position >> 3
        if byte >= len(self.data):
            raise ValueError("the parameter set ends early")
        value = (self.data[byte] >> (7 - (self.position & 7))) & 1
        self.position += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = value << 1 | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.bit():
            zeros += 1
            if zeros > 31:
                raise ValueError("an Exp-Golomb code too long")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        value = self.ue()
        return (value + 1) // 2 if value & 1 else -(value // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_size(data: bytes) -> tuple[int, int] | None:
    """The picture size in an Annex-B access unit's sequence parameter set (H.264 §7.3.2.1.1,
    cropping applied); None without an SPS or for one that cannot be read."""
    position = 0
    while True:
        start = data.find(b"\x00\x00\x01", position)
        if start < 0 or start + 3 >= len(data):
            return None
        position = start + 3
        if data[position] & 0x1F == _H264_NAL_SPS:
            end = data.find(b"\x00\x00\x01", position)
            nal = data[position + 1 : end if end >= 0 else len(data)]
            try:
                return _sps_size(nal.replace(b"\x00\x00\x03", b"\x00\x00"))
            except ValueError:
                return None


def _sps_size(rbsp: bytes) -> tuple[int, int]:
    bits = _Bits(rbsp)
    profile = bits.bits(8)
    bits.bits(16)  # constraint flags and level
    bits.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format == 3:
            bits.bit()  # separate_colour_plane_flag
        bits.ue()  # bit depths
        bits.ue()
        bits.bit()  # qpprime_y_zero_transform_bypass_flag
        if bits.bit():  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format != 3 else 12):
                if bits.bit():
                    last = following = 8
                    for _ in range(16 if index < 6 else 64):
                        if following:
                            following = (last + bits.se()) % 256
                        last = following or last
    bits.ue()  # log2_max_frame_num_minus4
    order = bits.ue()  # pic_order_cnt_type
    if order == 0:
        bits.ue()
    elif order == 1:
        bits.bit()
        bits.se()
        bits.se()
        for _ in range(bits.ue()):
            bits.se()
    bits.ue()  # max_num_ref_frames
    bits.bit()  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.bit()
    if not frame_mbs_only:
        bits.bit()  # mb_adaptive_frame_field_flag
    bits.bit()  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_units * 16
    if bits.bit():  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        unit_x = 1 if chroma_format in (0, 3) else 2
        unit_y = (1 if chroma_format in (0, 2, 3) else 2) * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise ValueError("a picture size below one pixel")
    return width, height
