"""Direct output: a viewer's RTP sent straight on its socket, from payloads made once per show.

aiortc's sender runs a task per viewer track that packetises every frame again, builds an
``RtpPacket`` object per packet and awaits three layers of ``_send`` per packet (DESIGN.md, "Where
a forwarded packet's time goes"). Here the show packetises each frame once (:class:`Packetizer`)
and, in the same synchronous call that received the frame, every viewer only writes its own header
(sequence number, timestamp, SSRC) into a template, protects the packet with its SRTP session and
hands it to its UDP socket.

aiortc still negotiates, runs DTLS and RTCP for the viewer: its sender task just never gets a frame
(the track's ``recv`` waits until the track stops). What this needs of aiortc's and aioice's
internals (the SRTP session and socket, the sender's SSRC, its Sender Report counters and NACK
handling) comes from :mod:`media.seams`.
"""

from __future__ import annotations

import struct
import time

from aiortc import RTCRtpSender
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.utils import random16, random32
from pylibsrtp import Session

from .frame import EncodedFrame
from .seams import DatagramSocket, SenderReportCounters, answer_nacks, rtp_path, sender_ssrc

HISTORY = 256  # packets kept per viewer track for retransmission (≈ 1 s of 1.5 Mbit/s video)
# Past this many bytes waiting in the socket's user-space buffer the viewer is too slow: skip to the
# next keyframe rather than queue more (asyncio buffers without limit when the kernel refuses).
MAX_WRITE_BUFFER = 256 * 1024

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"

_NTP_EPOCH_OFFSET = 2208988800


def abs_send_time(now: float | None = None) -> int:
    """The 24-bit abs-send-time value (6.18 fixed-point seconds) for now."""
    seconds = time.time() if now is None else now
    return int((seconds + _NTP_EPOCH_OFFSET) * (1 << 18)) & 0xFFFFFF


def ntp_time(now: float | None = None) -> int:
    """64-bit NTP time for Sender Reports."""
    seconds = (time.time() if now is None else now) + _NTP_EPOCH_OFFSET
    return int(seconds * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


class Packetizer:
    """Turns one kind's encoded frames into RTP payloads, once per frame for every viewer."""

    def __init__(self, mime_type: str, clock_rate: int) -> None:
        import av  # local: the packetiser is only built once a show has media

        codec = RTCRtpCodecParameters(mimeType=mime_type, clockRate=clock_rate, payloadType=96)
        self.mime_type = mime_type
        self._encoder = get_encoder(codec)
        self._av = av
        self._last: EncodedFrame | None = None
        self._payloads: list[bytes] = []

    def payloads(self, frame: EncodedFrame) -> list[bytes]:
        """RTP payloads of ``frame`` (cached: every viewer of the frame gets the same list)."""
        if frame is not self._last:
            packet = self._av.Packet(frame.data)
            packet.pts = frame.pts
            packet.time_base = frame.time_base
            self._payloads, _ = self._encoder.pack(packet)
            self._last = frame
        return self._payloads


class DirectOutput:
    """One viewer track's RTP, written straight to the viewer's socket."""

    def __init__(
        self,
        sender: RTCRtpSender,
        *,
        mid: str,
        payload_type: int,
        extension_ids: dict[str, int],
    ) -> None:
        self.sender = sender
        self.ssrc = sender_ssrc(sender)
        self.payload_type = payload_type
        self.sent_packets = 0
        self.sent_bytes = 0
        self.retransmitted = 0
        self._seq = random16()
        self._ts_origin = random32()
        self._history: list[bytes | None] = [None] * HISTORY
        self._srtp: Session | None = None
        self._transport: DatagramSocket | None = None
        self._addr: tuple[str, int] | None = None
        self._header, self._ast_offset = _header_template(mid, extension_ids)
        self._report = SenderReportCounters(sender)
        answer_nacks(sender, self._retransmit)

    @property
    def bound(self) -> bool:
        """Whether the viewer's DTLS and ICE are up, so packets can be sent."""
        return self._transport is not None and not self._transport.is_closing()

    def bind(self) -> bool:
        """Find the viewer's SRTP session and socket once its connection is up."""
        path = rtp_path(self.sender)
        if path is None:
            return False
        self._srtp, self._transport, self._addr = path.srtp, path.transport, path.addr
        return True

    def send(self, payloads: list[bytes], timestamp: int) -> bool:
        """Send one frame's payloads with this viewer's header; False if it could not be sent."""
        transport, srtp = self._transport, self._srtp
        if transport is None or srtp is None or transport.is_closing():
            self._transport = None
            return False
        if transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            return False
        header = self._header
        ts = (self._ts_origin + timestamp) & 0xFFFFFFFF
        offset = self._ast_offset
        if offset:
            value = abs_send_time()
            header[offset] = value >> 16
            header[offset + 1] = (value >> 8) & 0xFF
            header[offset + 2] = value & 0xFF
        last = len(payloads) - 1
        seq = self._seq
        protect = srtp.protect
        sendto = transport.sendto
        addr = self._addr
        history = self._history
        size = 0
        for i, payload in enumerate(payloads):
            struct.pack_into(
                "!BHII",
                header,
                1,
                (0x80 if i == last else 0) | self.payload_type,
                seq,
                ts,
                self.ssrc,
            )
            plain = bytes(header) + payload
            history[seq % HISTORY] = plain
            sendto(protect(plain), addr)
            seq = (seq + 1) & 0xFFFF
            size += len(payload)
        self._seq = seq
        self.sent_packets += len(payloads)
        self.sent_bytes += size
        # aiortc's RTCP task reports these in its Sender Reports (A/V sync, receiver stats).
        self._report.update(ntp_time(), ts, self.sent_packets, self.sent_bytes)
        return True

    async def _retransmit(self, sequence_number: int) -> None:
        """Answer a NACK from this viewer's own history, on the same SSRC."""
        plain = self._history[sequence_number % HISTORY]
        transport, srtp = self._transport, self._srtp
        if plain is None or transport is None or srtp is None:
            return
        if struct.unpack_from("!H", plain, 2)[0] != sequence_number:
            return  # overwritten: too old to help
        self.retransmitted += 1
        transport.sendto(srtp.protect(plain), self._addr)


def _header_template(mid: str, extension_ids: dict[str, int]) -> tuple[bytearray, int]:
    """An RTP header with this viewer's extensions (RFC 8285 one-byte form) and where
    abs-send-time sits in it (0 if not negotiated)."""
    elements = bytearray()
    ast_offset = 0
    mid_id = extension_ids.get(MID_URI)
    ast_id = extension_ids.get(ABS_SEND_TIME_URI)
    if mid_id and 1 <= mid_id <= 14 and mid:
        raw = mid.encode()
        elements += bytes([(mid_id << 4) | (len(raw) - 1)]) + raw
    if ast_id and 1 <= ast_id <= 14:
        elements += bytes([(ast_id << 4) | 2])
        ast_offset = 12 + 4 + len(elements)
        elements += b"\x00\x00\x00"
    if not elements:
        return bytearray(b"\x80" + bytes(11)), 0
    while len(elements) % 4:
        elements += b"\x00"
    header = bytearray(b"\x90" + bytes(11))
    header += struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements
    return header, ast_offset
