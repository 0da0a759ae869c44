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

import errno
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from aiortc import RTCRtpSender
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)
from aiortc.utils import random16, random32
from pylibsrtp import Session

from .frame import EncodedFrame
from .seams import (
    SRTP_MAX_PLAIN,
    SRTP_SCRATCH_BYTES,
    DatagramSocket,
    SentSoFar,
    SrtpInPlace,
    answer_nacks,
    report_what_was_sent,
    rtp_path,
    sender_ssrc,
    srtp_error,
    srtp_in_place,
    udp_socket,
)

log = structlog.get_logger(__name__)

HISTORY = 256  # packets kept per viewer track for retransmission (≈ 1 s of 1.5 Mbit/s video)
# Past this many bytes waiting in the socket's user-space buffer the viewer is too slow: skip to the
# next keyframe rather than queue more (asyncio buffers without limit when the kernel refuses).
MAX_WRITE_BUFFER = 256 * 1024

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"

# UDP generic segmentation offload (Linux ≥ 4.18): one sendmsg hands the kernel a frame's packets
# for one viewer, cut into datagrams of the given size (all equal but the last, which may be
# shorter). The kernel takes at most 64 segments and 64 KiB in one call.
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
GSO_SEGMENTS = 64
GSO_BYTES = 60_000
# What a socket or path that cannot segment answers: GSO is then off for that viewer.
_NO_GSO = frozenset({errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EMSGSIZE})

_NTP_EPOCH_OFFSET = 2208988800
_HEAD = struct.Struct("!BBHI")  # V/P/X/CC, M/PT, sequence number, timestamp
_U16 = struct.Struct("=H")


def abs_send_time(now: float | None = None) -> int:
    """The 24-bit abs-send-time value (6.18 fixed-point seconds) for now."""
    seconds = time.time() if now is None else now
    return int((seconds + _NTP_EPOCH_OFFSET) * (1 << 18)) & 0xFFFFFF


def ntp_time(now: float | None = None) -> int:
    """64-bit NTP time for Sender Reports."""
    seconds = (time.time() if now is None else now) + _NTP_EPOCH_OFFSET
    return int(seconds * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True, slots=True)
class FrameOut:
    """One frame as every viewer sends it: its RTP payloads cut once, the send time read once."""

    payloads: list[bytes]
    abs_send_time: bytes  # the 3 bytes of the abs-send-time header extension
    ntp: int  # the same instant for Sender Reports
    uniform: bool  # every payload as long as the first, the last no longer: one GSO send

    @classmethod
    def of(cls, payloads: list[bytes], now: float | None = None) -> FrameOut:
        """The frame's payloads, sent now."""
        seconds = time.time() if now is None else now
        first = len(payloads[0]) if payloads else 0
        uniform = len(payloads) > 1 and all(len(p) == first for p in payloads[:-1])
        return cls(
            payloads,
            abs_send_time(seconds).to_bytes(3, "big"),
            ntp_time(seconds),
            uniform and len(payloads[-1]) <= first,
        )


class Packetizer:
    """Turns one kind's encoded frames into RTP payloads, once per frame for every viewer."""

    def __init__(self, mime_type: str, clock_rate: int) -> None:
        import av  # local: the packetiser is only built once a show has media

        codec = RTCRtpCodecParameters(mimeType=mime_type, clockRate=clock_rate, payloadType=96)
        self.mime_type = mime_type
        self._encoder = get_encoder(codec)
        self._av = av
        self._last: EncodedFrame | None = None
        self._out = FrameOut([], b"\0\0\0", 0, False)

    def frame_out(self, frame: EncodedFrame) -> FrameOut:
        """``frame`` ready to send (cached: every viewer of the frame gets the same one)."""
        if frame is not self._last:
            packet = self._av.Packet(frame.data)
            packet.pts = frame.pts
            packet.time_base = frame.time_base
            payloads, _ = self._encoder.pack(packet)
            self._out = FrameOut.of(payloads)
            self._last = frame
        return self._out


# A sent frame as the history keeps it, under each of its packets' sequence numbers: the first
# sequence number, the RTP timestamp and the show's own frame (shared by every viewer).
_Sent = tuple[int, int, FrameOut]

# How a frame's packets go to the kernel, chunk by chunk (a frame may change course on the way).
_SEGMENTED, _EACH, _QUEUED = 0, 1, 2
# Packets protected and sent at a time: what one UDP GSO send takes, and what the scratch holds.
_CHUNK = min(GSO_SEGMENTS, SRTP_SCRATCH_BYTES // 1500)


class DirectOutput:
    """One viewer track's RTP, written straight to the viewer's socket."""

    # Slots: read on every frame of every viewer, fewer lookups and cache lines than a dict.
    __slots__ = (
        "__weakref__",
        "_addr",
        "_b0",
        "_has_ast",
        "_header",
        "_header_size",
        "_history",
        "_in_place",
        "_ntp",
        "_protect",
        "_rtp_timestamp",
        "_seq",
        "_sock",
        "_srtp",
        "_tail",
        "_tail_head",
        "_tail_rest",
        "_transport",
        "_ts_origin",
        "fraction_lost",
        "gso",
        "jitter",
        "payload_type",
        "ready",
        "remb_bps",
        "retransmitted",
        "segmented",
        "sender",
        "sent_bytes",
        "sent_frames",
        "sent_packets",
        "ssrc",
    )

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
        self.sent_frames = 0
        self.sent_bytes = 0
        self.retransmitted = 0
        # What the viewer's receiver reports of this track (RTCP RR, REMB), once it has.
        self.fraction_lost = 0  # of 256, since its previous report
        self.jitter = 0  # in RTP timestamp units
        self.remb_bps: int | None = None
        self.gso = True  # until the kernel or the path refuses it
        self.segmented = 0  # sendmsg calls that carried several packets (UDP GSO)
        # Bound, and its transport not found closing since: what the fan-out checks per frame
        # (send() finds a closing transport and clears it).
        self.ready = False
        self._seq = random16()
        self._ts_origin = random32()
        self._history: list[_Sent | None] = [None] * HISTORY
        self._srtp: Session | None = None
        self._in_place: SrtpInPlace | _Copying | None = None
        self._protect: tuple[Callable[[Any, Any, Any], int], Any, memoryview, Any, Any] = (
            _unbound,
            None,
            memoryview(b""),
            None,
            None,
        )
        self._transport: DatagramSocket | None = None
        self._sock: socket.socket | None = None
        self._addr: tuple[str, int] = ("", 0)  # the viewer's, once bound
        template, ast_offset = _header_template(mid, extension_ids)
        # What follows the sequence number and timestamp: the SSRC and the extensions, with the
        # abs-send-time bytes (if negotiated) put in per frame.
        self._b0 = template[0]
        tail = struct.pack("!I", self.ssrc) + bytes(template[12:])
        cut = ast_offset - 8 if ast_offset else len(tail)
        self._tail_head, self._tail_rest = tail[:cut], tail[cut + 3 :] if ast_offset else b""
        self._has_ast = bool(ast_offset)
        self._tail = tail
        # The whole header at once: the fixed fields, then the tail (SSRC and extensions).
        self._header = struct.Struct(f"!BBHI{len(tail)}s")
        self._header_size = self._header.size
        # The NTP and RTP timestamps of the latest frame sent, for Sender Reports.
        self._ntp = 0
        self._rtp_timestamp = 0
        answer_nacks(sender, self._retransmit)
        report_what_was_sent(sender, self._sent_so_far)

    def _sent_so_far(self) -> SentSoFar | None:
        if not self.sent_packets:
            return None
        return self._ntp, self._rtp_timestamp, self.sent_packets, self.sent_bytes

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
        self.ready = True
        self._use(srtp_in_place(path.srtp) or _Copying(path.srtp))
        self._sock = udp_socket(path.transport)
        return True

    def _use(self, in_place: SrtpInPlace | _Copying) -> None:
        self._in_place = in_place
        self._protect = (
            in_place.call,
            in_place.context,
            in_place.view,
            in_place.base,
            in_place.length,
        )

    def send(self, out: FrameOut, timestamp: int) -> bool:
        """Send one frame with this viewer's header; False if it could not be sent."""
        transport, srtp = self._transport, self._srtp
        if transport is None or srtp is None or transport.is_closing():
            self._transport = None
            self.ready = False
            return False
        queued = transport.get_write_buffer_size()
        if queued > MAX_WRITE_BUFFER:
            return False
        ts = (self._ts_origin + timestamp) & 0xFFFFFFFF
        tail = (
            self._tail_head + out.abs_send_time + self._tail_rest if self._has_ast else self._tail
        )
        payloads = out.payloads
        count = len(payloads)
        sock = self._sock
        if queued or sock is None:
            # Datagrams wait in the transport already: queue behind them, keeping their order.
            how = _QUEUED
        elif out.uniform and self.gso:
            how = _SEGMENTED
        else:
            how = _EACH
        if self._in_place is None:
            self._use(_Copying(srtp))
        # The packets are written one after the other into the scratch buffer, protected there
        # and sent from it, a chunk at a time.
        call, context, view, base, length = self._protect
        pack_into, header_size = self._header.pack_into, self._header_size
        seq, pt, b0, history, addr = (
            self._seq,
            self.payload_type,
            self._b0,
            self._history,
            self._addr,
        )
        sent: _Sent = (seq, ts, out)
        last = count - 1
        size = 0
        first = 0
        while first < count:
            step = _CHUNK
            if how == _SEGMENTED:
                step = min(step, GSO_BYTES // (header_size + len(payloads[first]) + 16))
            stop = min(count, first + max(1, step))
            offset = 0
            bounds = [0]  # where each packet starts, and where the last ends
            for index in range(first, stop):
                payload = payloads[index]
                plain = header_size + len(payload)
                if plain > SRTP_MAX_PLAIN:
                    raise ValueError("packet is too long")
                pack_into(view, offset, b0, pt | 0x80 if index == last else pt, seq, ts, tail)
                view[offset + header_size : offset + plain] = payload
                length[0] = plain
                if code := call(context, base + offset, length):
                    raise srtp_error(code)
                history[seq % HISTORY] = sent
                seq = (seq + 1) & 0xFFFF
                size += plain - header_size
                offset += length[0]
                bounds.append(offset)
            first = stop
            if how == _QUEUED:
                self._queue(transport, view, bounds, 0)
            elif how == _SEGMENTED or len(bounds) == 2:
                # One datagram, or the chunk's packets in one sendmsg cut by the kernel (UDP GSO).
                assert sock is not None
                try:
                    if len(bounds) == 2:
                        sock.sendto(view[:offset], addr)
                    else:
                        control = [(socket.SOL_UDP, UDP_SEGMENT, _U16.pack(bounds[1]))]
                        sock.sendmsg([view[:offset]], control, 0, addr)  # copied by the kernel
                        self.segmented += 1
                except OSError as exc:
                    how = self._refused(exc, how, transport, view, bounds)
            else:
                how = self._send_each(transport, view, bounds, 0)
        self._seq = seq
        self.sent_packets += count
        self.sent_frames += 1
        self.sent_bytes += size
        # aiortc's RTCP task reports these in its Sender Reports (A/V sync, receiver stats).
        self._ntp, self._rtp_timestamp = out.ntp, ts
        return True

    def _refused(
        self, exc: OSError, how: int, transport: DatagramSocket, view: memoryview, bounds: list[int]
    ) -> int:
        """The kernel did not take a chunk: how it and the frame's next chunks go."""
        if isinstance(exc, BlockingIOError):
            self._queue(transport, view, bounds, 0)  # sent by asyncio's transport once it can
            return _QUEUED
        if how == _SEGMENTED and exc.errno in _NO_GSO:
            self.gso = False
            log.info("udp gso refused; sending packet by packet", errno=exc.errno)
            return self._send_each(transport, view, bounds, 0)
        return how  # as asyncio does: lost, the viewer's RTCP tells

    def _send_each(
        self, transport: DatagramSocket, view: memoryview, bounds: list[int], start: int
    ) -> int:
        """The chunk's packets from ``start`` on, one sendto each; how the next chunk goes."""
        sock = self._sock
        assert sock is not None
        addr, sendto = self._addr, sock.sendto
        for index in range(start, len(bounds) - 1):
            try:
                sendto(view[bounds[index] : bounds[index + 1]], addr)
            except BlockingIOError:
                self._queue(transport, view, bounds, index)
                return _QUEUED
            except OSError:
                pass  # as asyncio does (an ICMP error from an earlier datagram, say)
        return _EACH

    def _queue(
        self, transport: DatagramSocket, view: memoryview, bounds: list[int], start: int
    ) -> None:
        # asyncio's transport keeps what the kernel does not take yet and writes it when it can
        # (copied: the scratch buffer is written again by the next send).
        for index in range(start, len(bounds) - 1):
            transport.sendto(bytes(view[bounds[index] : bounds[index + 1]]), self._addr)

    async def _retransmit(self, sequence_number: int) -> None:
        self.retransmit(sequence_number)

    def retransmit(self, sequence_number: int) -> None:
        """Answer a NACK from this viewer's own history, on the same SSRC."""
        sent = self._history[sequence_number % HISTORY]
        transport, srtp = self._transport, self._srtp
        if sent is None or transport is None or srtp is None or transport.is_closing():
            return
        first, ts, out = sent
        index = (sequence_number - first) & 0xFFFF
        if index >= len(out.payloads):
            return  # overwritten: too old to help
        self.retransmitted += 1
        pt = self.payload_type
        mpt = pt | 0x80 if index == len(out.payloads) - 1 else pt
        tail = (
            self._tail_head + out.abs_send_time + self._tail_rest if self._has_ast else self._tail
        )
        packet = _HEAD.pack(self._b0, mpt, sequence_number, ts) + tail + out.payloads[index]
        transport.sendto(srtp.protect(packet), self._addr)


def _unbound(context: Any, at: Any, length: Any) -> int:
    raise AssertionError("protect before bind")


class _Copying:
    """Stands in for :class:`media.seams.SrtpInPlace` where pylibsrtp lacks what that needs:
    each packet is protected by ``Session.protect`` and copied back where it lay."""

    def __init__(self, session: Session) -> None:
        self.context = session
        self.view = memoryview(bytearray(SRTP_SCRATCH_BYTES))
        self.base = 0
        self.length = [0]

    def call(self, session: Session, offset: int, length: list[int]) -> int:
        protected = session.protect(bytes(self.view[offset : offset + length[0]]))
        self.view[offset : offset + len(protected)] = protected
        length[0] = len(protected)
        return 0


class ViewerRtcp:
    """What a viewer's receiver says of the tracks sent to it (RTCP), handled as it arrives
    (:func:`media.seams.take_rtcp`): NACKs answered from the outputs' histories, PLI and FIR
    passed on as one keyframe request, receiver reports and REMB kept on the output concerned."""

    def __init__(
        self,
        outputs: Iterable[DirectOutput],
        on_keyframe_request: Callable[[], object],
        on_report: Callable[[DirectOutput], object] | None = None,
    ) -> None:
        self._outputs = {output.ssrc: output for output in outputs}
        self._keyframe = on_keyframe_request
        self._on_report = on_report  # after each receiver report of an output
        self.packets = 0

    def handle(self, packets: list[AnyRtcpPacket]) -> None:
        """One compound RTCP packet from the viewer."""
        outputs = self._outputs
        for packet in packets:
            self.packets += 1
            if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
                for report in packet.reports:
                    if (output := outputs.get(report.ssrc)) is not None:
                        output.fraction_lost, output.jitter = report.fraction_lost, report.jitter
                        if self._on_report is not None:
                            self._on_report(output)
            elif isinstance(packet, RtcpRtpfbPacket):
                if packet.fmt == RTCP_RTPFB_NACK and (output := outputs.get(packet.media_ssrc)):
                    for sequence_number in packet.lost:
                        output.retransmit(sequence_number)
            elif isinstance(packet, RtcpPsfbPacket):
                if packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
                    self._keyframe()
                elif packet.fmt == RTCP_PSFB_APP:
                    try:
                        bitrate, ssrcs = unpack_remb_fci(packet.fci)
                    except ValueError:
                        continue
                    for ssrc in ssrcs:
                        if (output := outputs.get(ssrc)) is not None:
                            output.remb_bps = bitrate


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
