"""Every use of aiortc's and aioice's private names, as small typed seams, and the version gate."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import queue
import socket
import threading
import weakref
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import aioice
import aioice.ice
import aioice.turn
import aiortc
import pylibsrtp
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack, TimestampMapper
from aiortc.rtp import (
    AnyRtcpPacket,
    RtcpPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
)
from pylibsrtp import Session

from .assembler import FrameAssembler, Piece
from .exceptions import UnsupportedReceiverError, UnsupportedVersionError

__all__ = [
    "TESTED_SERIES",
    "DatagramSocket",
    "HostAddresses",
    "NominatedPair",
    "RtpPath",
    "SenderReportCounters",
    "SentSoFar",
    "SrtpInPlace",
    "answer_nacks",
    "check_versions",
    "decoded_backlog",
    "drop_empty_datagrams",
    "host_addresses_now",
    "installed_versions",
    "nominated_pairs",
    "offer_host_addresses",
    "on_keyframe_request",
    "release_peer",
    "report_what_was_sent",
    "rtp_path",
    "rtx_ssrcs",
    "send_pli",
    "sender_ssrc",
    "srtp_error",
    "srtp_in_place",
    "take_rtcp",
    "tap_depayloaded_frames",
    "udp_socket",
]

# Every private name below was read in these series (aiortc 1.16.0, aioice 0.13.0); another release
# may rename, drop or change the meaning of any of them, so the service refuses to start on one.
TESTED_SERIES: Mapping[str, str] = {"aiortc": "1.16", "aioice": "0.13"}

# Behaviour of aiortc 1.16 that other modules work around with public API only, to re-check on
# an upgrade together with this module: under the default (balanced) bundle policy a second
# transceiver of one kind created before negotiating gets the first one's own transport
# (RTCPeerConnection.__createTransceiver), is marked bundled and then skipped when
# setRemoteDescription moves bundled media onto the primary transport, so it never connects.
# media.ice.rtc_configuration(max_bundle=True) avoids it.


def installed_versions() -> dict[str, str]:
    """The versions of aiortc and aioice this process imported."""
    return {"aiortc": aiortc.__version__, "aioice": aioice.__version__}


def check_versions(found: Mapping[str, str] | None = None) -> None:
    """Raise UnsupportedVersionError unless aiortc and aioice are of the tested series."""
    versions = installed_versions() if found is None else dict(found)
    if all(_in_series(versions.get(name, ""), series) for name, series in TESTED_SERIES.items()):
        return
    have = ", ".join(f"{name} {versions.get(name, 'missing')}" for name in TESTED_SERIES)
    want = ", ".join(f"{name} {series}.x" for name, series in TESTED_SERIES.items())
    raise UnsupportedVersionError(
        f"found {have}; media/seams.py relies on private names tested only with {want}"
    )


def _in_series(version: str, series: str) -> bool:
    # Compare release components, so that 1.160 is not taken for 1.16.
    return version.split(".")[: series.count(".") + 1] == series.split(".")


# --- Receiving: the encoded-frame tap ---------------------------------------------------------
# aiortc has no public way to receive encoded media. RTCRtpReceiver._handle_rtp_packet depayloads
# each RTP packet (packet._data), adds it to its jitter buffer (the private __jitter_buffer, on the
# event loop) and puts what that returns, (codec, JitterFrame) with the timestamp mapped by
# __timestamp_mapper, into the private queue.Queue __decoder_queue, which the decoder_worker
# thread started by receive() reads. Swapping that queue for a tap hands the frames on undecoded;
# the end marker (None, put when the receiver stops) still reaches the real queue so the decoder
# thread exits.
#
# aiortc's JitterBuffer completes a video frame only when the next frame's first packet arrives
# (one frame interval late) and holds audio for four packets; the tap swaps it too, for a
# media.assembler.FrameAssembler behind the same add(packet) -> (pli_flag, frame | None). The
# receiver takes one frame per packet, so when one packet completes several (a retransmission
# closing a gap) the tap hands on the others right after the first, their timestamps mapped by the
# receiver's own mapper in the same order.
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_TIMESTAMP_MAPPER = "_RTCRtpReceiver__timestamp_mapper"
_RTX_SSRC = "_RTCRtpReceiver__rtx_ssrc"

FrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]


class _AssemblingBuffer:
    """Stands in for a receiver's JitterBuffer: frames complete on their last packet."""

    def __init__(self, *, video: bool) -> None:
        self._assembler = FrameAssembler(video=video)
        self.more: list[JitterFrame] = []  # completed by the last packet after the one returned

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        data: bytes = packet._data  # type: ignore[attr-defined]
        piece = Piece(packet.sequence_number, packet.timestamp, bool(packet.marker), data)
        pli, frames = self._assembler.add(piece)
        # Whatever the receiver did not take at the last packet is gone, as its own frame would be
        # (it takes none before receive() starts).
        self.more = [JitterFrame(data=data, timestamp=timestamp) for timestamp, data in frames[1:]]
        return pli, JitterFrame(data=frames[0][1], timestamp=frames[0][0]) if frames else None


class _DecoderInputTap:
    """Stands in for a receiver's decoder queue: frames go to a callback, the end marker on."""

    def __init__(
        self,
        inner: queue.Queue[Any],
        buffer: _AssemblingBuffer,
        mapper: TimestampMapper,
        on_frame: FrameSink,
        on_end: Callable[[], None],
    ) -> None:
        self._inner = inner
        self._buffer = buffer
        self._mapper = mapper
        self._on_frame = on_frame
        self._on_end = on_end

    def put(self, item: tuple[RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if item is None:
            # The decoder thread (blocked in get()) must see the end marker to exit.
            self._inner.put(None)
            self._on_end()
            return
        codec, frame = item
        self._on_frame(codec, frame)
        more, self._buffer.more = self._buffer.more, []
        for frame in more:
            frame.timestamp = self._mapper.map(frame.timestamp)
            self._on_frame(codec, frame)

    def get(self) -> Any:
        # Called by decoder_worker when the tap was installed before receive() started it.
        return self._inner.get()


def tap_depayloaded_frames(
    receiver: RTCRtpReceiver, on_frame: FrameSink, on_end: Callable[[], None]
) -> None:
    """Hand the receiver's depayloaded frames to ``on_frame`` (on the loop) instead of decoding,
    each as soon as its last packet is in (see media/assembler.py)."""
    inner = getattr(receiver, _DECODER_QUEUE, None)
    if isinstance(inner, _DecoderInputTap):
        raise UnsupportedReceiverError("receiver already has an encoded-frame tap")
    if not isinstance(inner, queue.Queue):
        raise UnsupportedReceiverError("RTCRtpReceiver has no decoder queue to tap")
    if not isinstance(getattr(receiver, _JITTER_BUFFER, None), JitterBuffer):
        raise UnsupportedVersionError("RTCRtpReceiver has no jitter buffer to replace")
    mapper = getattr(receiver, _TIMESTAMP_MAPPER, None)
    if not isinstance(mapper, TimestampMapper):
        raise UnsupportedVersionError("RTCRtpReceiver has no timestamp mapper")
    track = receiver.track
    buffer = _AssemblingBuffer(video=track is not None and track.kind == "video")
    # Tapped once packets flow, what aiortc's buffer held is dropped: at most a frame or two.
    setattr(receiver, _JITTER_BUFFER, buffer)
    # Installed after receive() the decoder thread keeps reading the original queue, which from
    # now on only ever gets the end marker.
    setattr(receiver, _DECODER_QUEUE, _DecoderInputTap(inner, buffer, mapper, on_frame, on_end))


def rtx_ssrcs(receiver: RTCRtpReceiver) -> Collection[int]:
    """The RTX SSRCs the receiver knows (aiortc lists them among its synchronization sources)."""
    mapping: dict[int, int] = getattr(receiver, _RTX_SSRC)
    return mapping.keys()


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> Coroutine[Any, Any, None]:
    """Send a Picture Loss Indication for ``media_ssrc`` (a no-op before the receiver connects)."""
    return receiver._send_rtcp_pli(media_ssrc)


def decoded_backlog(receiver: RTCRtpReceiver) -> int:
    """Frames aiortc decoded for the receiver's track that nobody has read yet."""
    # RemoteStreamTrack._queue is where decoder_worker posts every decoded frame.
    track = receiver.track
    if not isinstance(track, RemoteStreamTrack):
        raise UnsupportedReceiverError("receiver has no remote track")
    return track._queue.qsize()


# --- Sending: the viewer's RTCRtpSender ------------------------------------------------------
def sender_ssrc(sender: RTCRtpSender) -> int:
    """The SSRC the sender's media goes out on (what its Sender Reports and BYE name)."""
    ssrc: int = sender._ssrc
    return ssrc


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` after aiortc's own handling whenever the sender gets a PLI or FIR."""
    # RTCRtpSender._handle_rtcp_packet answers PLI and FIR with self._send_keyframe(), which only
    # sets a flag for aiortc's encoder; pack() of pre-encoded frames never reads it. Shadowing the
    # method on this one instance is the narrowest hook there is. The sender is held weakly, so
    # the hook (in the sender's own __dict__) leaves it in no cycle with itself.
    original: Callable[[], None] = _method(sender, "_send_keyframe")
    function = getattr(original, "__func__", None)
    if function is None:  # an earlier hook of this kind (holding no strong reference to sender)
        earlier = original
    else:
        target = weakref.ref(sender)
        del original

        def earlier() -> None:
            if (held := target()) is not None:
                function(held)

    def send_keyframe() -> None:
        earlier()
        callback()

    sender._send_keyframe = send_keyframe  # type: ignore[method-assign]


def answer_nacks(sender: RTCRtpSender, retransmit: Callable[[int], Awaitable[None]]) -> None:
    """Answer each sequence number a NACK names with ``retransmit`` instead of aiortc's history.

    A bound method is held weakly: its object (which holds the sender) is freed by reference
    counting when its owner lets go, not left in a cycle with the sender."""
    # _handle_rtcp_packet awaits self._retransmit(seq) per lost packet; aiortc's version only knows
    # the packets its own sender loop sent.
    _method(sender, "_retransmit")
    if not inspect.ismethod(retransmit):
        sender._retransmit = retransmit  # type: ignore[method-assign,assignment]
        return
    weak = weakref.WeakMethod(retransmit)

    async def answer(sequence_number: int) -> None:
        method = weak()
        if method is not None:
            await method(sequence_number)

    sender._retransmit = answer  # type: ignore[method-assign]


# What a Sender Report says was sent so far: NTP timestamp, RTP timestamp, packets, octets.
SentSoFar = tuple[int, int, int, int]


def report_what_was_sent(sender: RTCRtpSender, sent: Callable[[], SentSoFar | None]) -> None:
    """Make ``sender``'s Sender Reports say what ``sent()`` counts, asked when aiortc reports
    (about once a second) rather than written into the sender with every frame; while it says
    None, send no Sender Report (nor its SDES): a voice slot that never carried a speaker is no
    RTP sender (RFC 3550, section 6.4). BYE still goes.

    A bound method is held weakly, as :func:`answer_nacks` does."""
    # RTCRtpSender._run_rtcp builds SR + SDES about once a second from the name-mangled counters
    # its own _run_rtp updates per packet (SenderReportCounters), notes the SR's NTP time as __lsr
    # (for the round trip of a receiver report naming it) and awaits self._send_rtcp(packets)
    # whether or not anything was sent; the BYE at the end goes that way.
    original: Callable[[list[Any]], Awaitable[None]] = _method(sender, "_send_rtcp")
    function = getattr(original, "__func__", None)
    if function is None:
        raise UnsupportedVersionError("RTCRtpSender._send_rtcp is hooked already")
    if not hasattr(sender, _LSR):
        raise UnsupportedVersionError(f"RTCRtpSender has no {_LSR}")
    target = weakref.ref(sender)
    del original
    check: Callable[[], SentSoFar | None]
    if inspect.ismethod(sent):
        weak = weakref.WeakMethod(sent)

        def check() -> SentSoFar | None:
            method = weak()
            return None if method is None else method()
    else:
        check = sent

    async def send_rtcp(packets: list[Any]) -> None:
        held = target()
        if held is None:
            return
        counters = check()
        if counters is None:
            if all(isinstance(p, (RtcpSrPacket, RtcpSdesPacket)) for p in packets):
                return
        else:
            ntp, rtp, count, octets = counters
            for packet in packets:
                if isinstance(packet, RtcpSrPacket):
                    packet.sender_info = RtcpSenderInfo(
                        ntp_timestamp=ntp,
                        rtp_timestamp=rtp,
                        packet_count=count & 0xFFFFFFFF,
                        octet_count=octets & 0xFFFFFFFF,
                    )
                    setattr(held, _LSR, (ntp >> 16) & 0xFFFFFFFF)
        await function(held, packets)

    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]


_LSR = "_RTCRtpSender__lsr"


class SenderReportCounters:
    """The counters aiortc's RTCP task puts into one sender's Sender Reports (written as they
    change; :func:`report_what_was_sent` hands them over at report time instead)."""

    # _run_rtcp reads these name-mangled attributes, which its own _run_rtp updates per packet;
    # media sent around that loop must update them itself for A/V sync and receiver statistics.
    _NAMES = tuple(
        f"_RTCRtpSender__{name}"
        for name in ("ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count")
    )

    def __init__(self, sender: RTCRtpSender) -> None:
        missing = [name for name in self._NAMES if not hasattr(sender, name)]
        if missing:
            # Setting them anyway would only add attributes nobody reads.
            raise UnsupportedVersionError(f"RTCRtpSender has no {', '.join(missing)}")
        self._sender: Any = sender

    def update(self, ntp_timestamp: int, rtp_timestamp: int, packets: int, octets: int) -> None:
        """What the next Sender Report says was sent so far (once per frame sent: the names
        of _NAMES written out, which a single underscore keeps from being mangled again)."""
        sender = self._sender
        sender._RTCRtpSender__ntp_timestamp = ntp_timestamp
        sender._RTCRtpSender__rtp_timestamp = rtp_timestamp
        sender._RTCRtpSender__packet_count = packets
        sender._RTCRtpSender__octet_count = octets


# --- Sending: SRTP where the packets lie ---------------------------------------------------------
# pylibsrtp's Session.protect checks the packet, allocates a cffi int, copies the packet into the
# session's buffer, calls libsrtp's srtp_protect and copies the result out as new bytes. Its
# compiled binding (the module pylibsrtp._binding: ffi, lib) and the session's srtp_t
# (Session._srtp, a pointer to it) let libsrtp protect each packet in place in one buffer, where a
# frame's packets are laid out one after the other and sent from without another copy.
# pylibsrtp 1.0 read; without these names the caller protects packet by packet (Session.protect).
SRTP_SCRATCH_BYTES = 128 * 1024  # ≥ 64 packets of 1,500 bytes: one UDP GSO send, with room
# What Session.protect accepts, unprotected: 1,500 bytes less its largest trailer (tag and MKI).
SRTP_MAX_PLAIN = 1500 - (16 + 128)


@dataclass(frozen=True, slots=True)
class SrtpInPlace:
    """How to protect an RTP packet that lies at ``base + offset`` in this thread's scratch
    buffer (``view``): ``length[0] = plain length; call(context, base + offset, length)`` returns
    0 and leaves the protected length in ``length[0]``, or a libsrtp error number."""

    call: Callable[[Any, Any, Any], int]
    context: Any  # the session's srtp_t
    view: memoryview  # the scratch buffer, writable
    base: Any  # char * to its start
    length: Any  # int * for the packet's length, in and out


class _Scratch(threading.local):
    buffer: tuple[memoryview, Any, Any] | None = None


_SCRATCH = _Scratch()


def srtp_in_place(session: Session) -> SrtpInPlace | None:
    """``session``'s in-place protect on this thread's scratch buffer, None if pylibsrtp lacks
    what it needs (protect with ``session.protect`` then). Use it only on the thread that asked
    for it, and the buffer only between writing a packet there and sending it: every output of
    the thread shares it."""
    try:
        binding: Any = importlib.import_module("pylibsrtp._binding")
        ffi, lib = binding.ffi, binding.lib
        call = lib.srtp_protect
        context = session._srtp[0]
    except (ImportError, AttributeError, TypeError):
        return None
    if _SCRATCH.buffer is None:
        cdata = ffi.new("char[]", SRTP_SCRATCH_BYTES)
        _SCRATCH.buffer = (memoryview(ffi.buffer(cdata)), cdata, ffi.new("int *"))
    view, base, length = _SCRATCH.buffer
    return SrtpInPlace(call, context, view, base, length)


def srtp_error(code: int) -> pylibsrtp.Error:
    """The error Session.protect raises for libsrtp's error number ``code``."""
    errors: list[str] = getattr(pylibsrtp, "ERRORS", [])
    return pylibsrtp.Error(errors[code] if 0 <= code < len(errors) else f"srtp error {code}")


class DatagramSocket(Protocol):
    """The part of an asyncio datagram transport that sending RTP directly uses."""

    def sendto(self, data: bytes, addr: tuple[str, int] | None = None) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...


@dataclass(frozen=True)
class RtpPath:
    """Where a connected sender's RTP goes: its SRTP session, its UDP socket, the peer's address."""

    srtp: Session
    transport: DatagramSocket
    addr: tuple[str, int]


def rtp_path(sender: RTCRtpSender) -> RtpPath | None:
    """The SRTP session and nominated ICE socket of the sender; None until DTLS and ICE are up."""
    # RTCDtlsTransport keeps its outbound SRTP session in _tx_srtp (set when DTLS completes);
    # RTCIceTransport wraps an aioice Connection (_connection) whose _nominated maps component 1
    # to the pair carrying RTP and RTCP once ICE has chosen it.
    dtls = sender.transport
    if dtls is None or dtls.state != "connected":
        return None
    srtp: Session | None = dtls._tx_srtp
    pair = dtls.transport._connection._nominated.get(1)
    if srtp is None or pair is None:
        return None
    transport: asyncio.DatagramTransport | None = getattr(pair.protocol, "transport", None)
    if transport is None:
        return None
    # asyncio's datagram transports report their user-space buffer too; the type only omits it.
    return RtpPath(srtp, cast(DatagramSocket, transport), pair.remote_addr)


# asyncio's selector transports hand out their socket only wrapped (asyncio.trsock.TransportSocket,
# which refuses to send); the socket itself is its private _sock. Sending on it while the
# transport's own buffer is empty keeps the order of datagrams (the transport only writes from its
# buffer when the kernel refused one earlier), and lets a frame's packets go in one sendmsg. Under
# another event loop (uvloop, say) there may be no such socket: the caller sends through the
# transport then.
def udp_socket(transport: DatagramSocket) -> socket.socket | None:
    """The non-blocking UDP socket under an asyncio datagram transport, if it has one."""
    get_extra_info = getattr(transport, "get_extra_info", None)
    wrapped = get_extra_info("socket") if get_extra_info is not None else None
    sock = getattr(wrapped, "_sock", None)
    if isinstance(sock, socket.socket) and sock.type == socket.SOCK_DGRAM:
        return sock
    return None


def _method(target: object, name: str) -> Callable[..., Any]:
    # Shadowing a method that moved would silently hook nothing: fail at once instead.
    method = getattr(type(target), name, None)
    if not callable(method):
        raise UnsupportedVersionError(f"{type(target).__name__} has no {name}()")
    bound: Callable[..., Any] = getattr(target, name)
    return bound


# --- Receiving: datagrams -----------------------------------------------------------------------
# aioice's StunProtocol.datagram_received hands every datagram that does not parse as STUN, from
# any address, to its Connection's data_received, which queues it for RTCDtlsTransport._recv_next;
# that reads data[0] unguarded, so one empty datagram (anyone may send one to a peer's port) raised
# IndexError, ended the DTLS transport and with it the peer connection. data_received is looked up
# on the connection for every datagram, so shadowing it on the instance drops empty ones first.
# The shadow holds the connection's own method weakly: held strongly, it kept every closed
# connection (its candidate pairs, consent task and sockets) in a cycle with itself until a full
# collection (bench/soak.py).
_GUARDED = "_lampio_drops_empty"


def drop_empty_datagrams(pc: RTCPeerConnection) -> int:
    """Keep empty UDP datagrams from every transport ``pc`` has now (call it once its
    descriptions are set); how many transports it guarded (none twice)."""
    guarded = 0
    for connection in _ice_connections(pc):
        if getattr(connection, _GUARDED, False):
            continue
        receive = weakref.WeakMethod(_method(connection, "data_received"))

        def data_received(data: bytes, component: int, receive: Any = receive) -> None:
            if data and (method := receive()) is not None:
                method(data, component)

        connection.data_received = data_received  # type: ignore[method-assign]
        setattr(connection, _GUARDED, True)
        guarded += 1
    return guarded


# --- Receiving: a sending peer's RTCP, without aiortc's receive task ---------------------------
# Each datagram aioice's Connection.data_received gets is queued for RTCDtlsTransport's receive
# task, which unprotects it (_rx_srtp, set when DTLS completes), parses it and awaits each
# recipient's _handle_rtcp_packet, building statistics objects on the way: a queue, a task step
# and several awaits per receiver report. A peer that only sends (a viewer) gets nothing but RTCP
# about what it sends, so its RTCP can be handled where it arrives, in the same call.
RtcpSink = Callable[[list[AnyRtcpPacket]], None]
_TAKES_RTCP = "_lampio_takes_rtcp"


def take_rtcp(pc: RTCPeerConnection, sink: RtcpSink) -> int:
    """Hand the RTCP that reaches ``pc``'s transports to ``sink``, unprotected and parsed, as it
    arrives (aiortc sees none of it, so its getStats() has no remote reports); call it once the
    descriptions are set. How many transports it took over. ``sink`` is held weakly: its owner
    keeps it alive as long as it wants the RTCP."""
    taken = 0
    for connection, dtls in _ice_connections_and_dtls(pc):
        if getattr(connection, _TAKES_RTCP, False):
            continue
        connection.data_received = _rtcp_taker(connection, dtls, sink)  # type: ignore[method-assign,assignment]
        setattr(connection, _TAKES_RTCP, True)
        setattr(connection, _GUARDED, True)
        taken += 1
    return taken


def _rtcp_taker(
    connection: aioice.Connection, dtls: Any, sink: RtcpSink
) -> Callable[[bytes, int], None]:
    _method(connection, "data_received")
    # Everything held weakly (see release_peer): the shadow lives in the connection's own __dict__,
    # and the DTLS transport holds the connection.
    receive = type(connection).data_received
    connection_ref, dtls_ref = weakref.ref(connection), weakref.ref(dtls)
    weak_sink: Callable[[], RtcpSink | None]
    if inspect.ismethod(sink):
        weak_sink = weakref.WeakMethod(sink)
    else:
        weak_sink = weakref.ref(sink)  # a function that holds nothing of the peer

    def data_received(data: bytes, component: int) -> None:
        # RFC 5761: RTCP packet types 192–223 in the second byte, version 2 in the first.
        if len(data) > 7 and 127 < data[0] < 192 and 191 < data[1] < 224:
            held = dtls_ref()
            srtp: Session | None = None if held is None else held._rx_srtp
            if srtp is not None:
                try:
                    packets = RtcpPacket.parse(srtp.unprotect_rtcp(data))
                except (pylibsrtp.Error, ValueError):
                    return  # not ours or broken: aiortc would have dropped it too
                if (handle := weak_sink()) is not None:
                    handle(packets)
                return
        # Empty datagrams are dropped here too (drop_empty_datagrams).
        if data and (target := connection_ref()) is not None:
            receive(target, data, component)

    return data_received


def _ice_connections(pc: RTCPeerConnection) -> list[aioice.Connection]:
    return [connection for connection, _ in _ice_connections_and_dtls(pc)]


def _ice_connections_and_dtls(pc: RTCPeerConnection) -> list[tuple[aioice.Connection, Any]]:
    # RTCRtpSender.transport and RTCSctpTransport.transport are the DTLS transports, whose
    # .transport is the RTCIceTransport; its _connection is the aioice Connection it wraps.
    dtls = [t.sender.transport for t in pc.getTransceivers() if t.sender is not None]
    if pc.sctp is not None:
        dtls.append(pc.sctp.transport)
    connections: dict[int, tuple[aioice.Connection, Any]] = {}
    for transport in dtls:
        connection = getattr(getattr(transport, "transport", None), "_connection", None)
        if not isinstance(connection, aioice.Connection):
            raise UnsupportedVersionError("RTCIceTransport has no aioice Connection")
        if not hasattr(transport, "_rx_srtp"):
            raise UnsupportedVersionError("RTCDtlsTransport has no _rx_srtp")
        connections[id(connection)] = (connection, transport)
    return list(connections.values())


# --- Which path ICE chose --------------------------------------------------------------------
# aiortc has no getStats entry for candidate pairs. The aioice Connection keeps the pair it chose
# per component in _nominated; a pair's protocol holds its local candidate. For a relayed
# candidate that protocol's transport is aioice.turn.TurnTransport, whose private
# __inner_protocol is the TURN client (TurnClientTcpProtocol or TurnClientUdpProtocol) on the
# connection to the TURN server; over TLS that connection's transport has an ssl_object.
# tests/test_turn.py pins the relayed branch against a real coturn.
_TURN_CLIENT = "_TurnTransport__inner_protocol"


@dataclass(frozen=True, slots=True)
class NominatedPair:
    """The candidate pair ICE chose, and how a relayed one reaches its TURN server."""

    local: aioice.Candidate
    remote: aioice.Candidate
    turn_transport: str | None  # "udp", "tcp" or "tls" for a relayed local candidate, else None


def nominated_pairs(pc: RTCPeerConnection) -> list[NominatedPair]:
    """The pair ICE nominated (component 1) on each of ``pc``'s transports that has one."""
    pairs = []
    for connection in _ice_connections(pc):
        pair = connection._nominated.get(1)
        if pair is None:
            continue
        local: aioice.Candidate = pair.protocol.local_candidate
        turn_transport = None
        if local.type == "relay":
            client = getattr(pair.protocol.transport, _TURN_CLIENT, None)
            if isinstance(client, aioice.turn.TurnClientTcpProtocol):
                tls = client.transport.get_extra_info("ssl_object") is not None
                turn_transport = "tls" if tls else "tcp"
            elif isinstance(client, aioice.turn.TurnClientUdpProtocol):
                turn_transport = "udp"
            else:
                raise UnsupportedVersionError("a relayed candidate's transport has no TURN client")
        pairs.append(NominatedPair(local, pair.remote_candidate, turn_transport))
    return pairs


# --- Closing: what a closed peer connection leaves behind ------------------------------------
# RTCPeerConnection subscribes bound methods of itself to its transports' "statechange" (the ICE
# gatherer's, the ICE transport's and the DTLS transport's, __createTransceiver and
# __createSctpTransport); close() drops its own listeners but not those, so a closed peer stays in
# reference cycles with its transports; and aioice's closed Connection keeps its candidate pairs,
# whose protocols point back at it (Connection.close() clears _nominated and _protocols, not
# _check_list; aiortc's RTCIceTransport holds it as _connection). Only the cyclic collector frees
# them then, with the receivers' rate counters, the sockets and the DTLS and SRTP state (75–100 kB
# a viewer's peer), and the node runs full collections rarely (lampio_stream/cli.py): bench/soak.py
# saw the node grow by that much for every viewer who left. (The sender hooks above hold their
# sender, or the object of their bound method, weakly for the same reason.)


def release_peer(pc: RTCPeerConnection) -> None:
    """After ``pc.close()``: break the cycles between the peer and its transports, so that reference
    counting frees it at once (safe to call twice)."""
    transports = {
        end.transport
        for transceiver in pc.getTransceivers()
        for end in (transceiver.sender, transceiver.receiver)
        if end.transport is not None
    }
    if pc.sctp is not None:
        transports.add(pc.sctp.transport)
    for dtls in transports:
        ice = dtls.transport
        ice.iceGatherer.remove_all_listeners()
        ice.remove_all_listeners()
        dtls.remove_all_listeners()
        ice._connection._check_list.clear()
    pc.remove_all_listeners()


# --- ICE: host candidates --------------------------------------------------------------------
# aioice's Connection.gather_candidates looks the module global get_host_addresses up on every
# gathering (it leaves out 127.0.0.1 and ::1), so replacing it is the one seam that controls
# host candidates, process-wide.
class HostAddresses(Protocol):
    """What aioice calls to list the addresses it gathers host candidates on."""

    def __call__(self, use_ipv4: bool, use_ipv6: bool) -> list[str]: ...


_AIOICE_HOST_ADDRESSES: HostAddresses = aioice.ice.get_host_addresses


def offer_host_addresses(provider: HostAddresses | None) -> None:
    """Make aioice gather host candidates on ``provider(use_ipv4, use_ipv6)``; None restores."""
    aioice.ice.get_host_addresses = _AIOICE_HOST_ADDRESSES if provider is None else provider


def host_addresses_now() -> list[str]:
    """The host addresses aioice would gather on now, IPv4 and IPv6."""
    result: list[str] = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)
    return result


# --- Measuring: how aiortc packetises ------------------------------------------------------------
# bench/fanout.py counts the packets a viewer gets per VP8 frame the way aiortc's encoder cuts them
# (Vp8Encoder._packetize, a static method; the picture id does not change the count).


def vp8_payloads(frame: bytes) -> list[bytes]:
    """The RTP payloads aiortc makes of one encoded VP8 frame."""
    from aiortc.codecs.vpx import Vp8Encoder

    payloads: list[bytes] = Vp8Encoder._packetize(frame, 1)
    return payloads
