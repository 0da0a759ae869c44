"""Each seam into aiortc's and aioice's internals, pinned against the real libraries on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import gc
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from av import VideoFrame
from helpers import HEIGHT, WIDTH, MovingPatternTrack, ToneTrack

from media.codecs import prefer_codec
from media.exceptions import UnsupportedReceiverError, UnsupportedVersionError
from media.frame import is_vp8_keyframe
from media.ice import rtc_configuration
from media.seams import (
    TESTED_SERIES,
    SenderReportCounters,
    answer_nacks,
    check_versions,
    decoded_backlog,
    drop_empty_datagrams,
    host_addresses_now,
    installed_versions,
    nominated_pairs,
    offer_host_addresses,
    on_keyframe_request,
    release_peer,
    rtp_path,
    rtx_ssrcs,
    send_pli,
    sender_ssrc,
    tap_depayloaded_frames,
)
from tests.helpers import eventually

# --- version gate ------------------------------------------------------------------------------


def test_installed_versions_pass_the_gate() -> None:
    check_versions()
    for name, series in TESTED_SERIES.items():
        assert installed_versions()[name].startswith(series + ".")


@pytest.mark.parametrize(
    ("aiortc", "aioice", "named"),
    [
        ("1.17.0", "0.13.0", "aiortc 1.17.0"),
        ("1.15.2", "0.13.0", "aiortc 1.15.2"),
        ("1.160.0", "0.13.0", "aiortc 1.160.0"),
        ("1.16.0", "0.14.1", "aioice 0.14.1"),
        ("2.0", "1.0.0", "aiortc 2.0"),
    ],
)
def test_other_versions_are_refused_naming_found_and_tested(
    aiortc: str, aioice: str, named: str
) -> None:
    with pytest.raises(UnsupportedVersionError) as caught:
        check_versions({"aiortc": aiortc, "aioice": aioice})
    message = str(caught.value)
    assert named in message
    assert "aiortc 1.16.x" in message and "aioice 0.13.x" in message


def test_later_patch_releases_and_a_missing_entry() -> None:
    check_versions({"aiortc": "1.16.9", "aioice": "0.13.4"})
    with pytest.raises(UnsupportedVersionError, match="aioice missing"):
        check_versions({"aiortc": "1.16.0"})


# --- receiving ---------------------------------------------------------------------------------


@dataclass
class Tapped:
    frames: list[tuple[RTCRtpCodecParameters, JitterFrame]] = field(default_factory=list)
    ended: bool = False

    def frame(self, codec: RTCRtpCodecParameters, jitter_frame: JitterFrame) -> None:
        self.frames.append((codec, jitter_frame))

    def end(self) -> None:
        self.ended = True


async def test_tap_gets_depayloaded_frames_and_nothing_is_decoded() -> None:
    performer = RTCPeerConnection(rtc_configuration())
    prefer_codec(performer.addTransceiver(MovingPatternTrack(), direction="sendonly"), "video/VP8")
    performer.addTransceiver(ToneTrack(), direction="sendonly")
    server = RTCPeerConnection(rtc_configuration())
    try:
        await performer.setLocalDescription(await performer.createOffer())
        await server.setRemoteDescription(performer.localDescription)
        video, audio = (t.receiver for t in server.getTransceivers())
        taps = {"video": Tapped(), "audio": Tapped()}
        tap_depayloaded_frames(video, taps["video"].frame, taps["video"].end)
        tap_depayloaded_frames(audio, taps["audio"].frame, taps["audio"].end)
        with pytest.raises(UnsupportedReceiverError):
            tap_depayloaded_frames(video, taps["video"].frame, taps["video"].end)
        await server.setLocalDescription(await server.createAnswer())
        await performer.setRemoteDescription(server.localDescription)

        await eventually(lambda: all(len(t.frames) >= 10 for t in taps.values()), 15)
        codec, first = taps["video"].frames[0]
        assert (codec.mimeType, codec.clockRate) == ("video/VP8", 90000)
        # Depayloaded: the VP8 frame itself, without the RTP payload descriptor in front.
        assert is_vp8_keyframe(bytes(first.data))
        stamps = [frame.timestamp for _, frame in taps["video"].frames]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        codec, _ = taps["audio"].frames[0]
        assert (codec.mimeType, codec.clockRate) == ("audio/opus", 48000)
        assert decoded_backlog(video) == 0 and decoded_backlog(audio) == 0

        offer = aiortc_sdp.SessionDescription.parse(performer.localDescription.sdp)
        (group,) = offer.media[0].ssrc_group
        assert group.semantic == "FID"
        assert set(rtx_ssrcs(video)) == {int(group.items[1])}
    finally:
        await performer.close()
        await server.close()
    assert taps["video"].ended and taps["audio"].ended


# --- sending -----------------------------------------------------------------------------------


@dataclass
class Link:
    """Our peer sending video on a sender with no track, and a viewer peer receiving it."""

    server: RTCPeerConnection
    client: RTCPeerConnection
    sender: RTCRtpSender
    receiver: RTCRtpReceiver
    payload_type: int
    decoded: list[VideoFrame] = field(default_factory=list)


@contextlib.asynccontextmanager
async def link() -> AsyncIterator[Link]:
    server = RTCPeerConnection(rtc_configuration(max_bundle=True))
    client = RTCPeerConnection(rtc_configuration())
    # No track: aiortc's own sender loop sends nothing, so every packet seen is one we sent.
    transceiver = server.addTransceiver("video", direction="sendonly")
    prefer_codec(transceiver, "video/VP8")
    decoded: list[VideoFrame] = []
    readers: list[asyncio.Task[None]] = []

    @client.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame: Any = await track.recv()
                    decoded.append(frame)

        readers.append(asyncio.ensure_future(read()))

    try:
        await server.setLocalDescription(await server.createOffer())
        assert rtp_path(transceiver.sender) is None  # nothing to send on before DTLS and ICE
        await client.setRemoteDescription(server.localDescription)
        await client.setLocalDescription(await client.createAnswer())
        await server.setRemoteDescription(client.localDescription)
        await eventually(
            lambda: server.connectionState == client.connectionState == "connected", 10
        )
        offer = aiortc_sdp.SessionDescription.parse(server.localDescription.sdp)
        payload_type = offer.media[0].rtp.codecs[0].payloadType
        assert payload_type is not None
        (receiving,) = client.getTransceivers()
        yield Link(server, client, transceiver.sender, receiving.receiver, payload_type, decoded)
    finally:
        await server.close()
        await client.close()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


def vp8_frames(count: int) -> list[tuple[list[bytes], int]]:
    """``count`` VP8 frames as aiortc's packetiser splits them (payloads, 90 kHz timestamp)."""
    encoder = get_encoder(
        RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    )
    frames = []
    for i in range(count):
        picture = VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for plane in picture.planes:
            plane.update(bytes([16 + 8 * i]) * plane.buffer_size)
        picture.pts = i * 3000
        picture.time_base = fractions.Fraction(1, 90000)
        frames.append(encoder.encode(picture, force_keyframe=i == 0))
    return frames


def send_frame(
    link: Link,
    payloads: list[bytes],
    timestamp: int,
    seq: int,
    sent: dict[int, bytes],
    lose: int | None = None,
) -> int:
    """Protect and send one frame's packets on the sender's RTP path (all but ``lose``, which is
    only kept in ``sent``); the next sequence number."""
    path = rtp_path(link.sender)
    assert path is not None
    for i, payload in enumerate(payloads):
        packet = RtpPacket(
            payload_type=link.payload_type,
            marker=int(i == len(payloads) - 1),
            sequence_number=seq,
            timestamp=timestamp,
            ssrc=sender_ssrc(link.sender),
            payload=payload,
        )
        plain = packet.serialize(HeaderExtensionsMap())
        sent[seq] = plain
        if seq != lose:
            path.transport.sendto(path.srtp.protect(plain), path.addr)
        seq = (seq + 1) & 0xFFFF
    return seq


async def test_sender_ssrc_is_the_one_our_offer_names() -> None:
    async with link() as linked:
        offer = aiortc_sdp.SessionDescription.parse(linked.server.localDescription.sdp)
        assert sender_ssrc(linked.sender) == offer.media[0].ssrc[0].ssrc


async def test_rtp_sent_on_the_path_is_decoded_and_a_gap_is_nacked_to_us() -> None:
    async with link() as linked:
        nacked: list[int] = []

        async def retransmit(sequence_number: int) -> None:
            nacked.append(sequence_number)

        answer_nacks(linked.sender, retransmit)
        sent: dict[int, bytes] = {}
        frames = vp8_frames(4)
        seq = 1000
        for payloads, timestamp in frames[:3]:
            seq = send_frame(linked, payloads, timestamp, seq, sent)
        # The jitter buffer hands a frame on when the next one starts: two of three decode.
        await eventually(lambda: len(linked.decoded) >= 2, 10)
        assert (linked.decoded[0].width, linked.decoded[0].height) == (WIDTH, HEIGHT)

        skipped = seq
        send_frame(linked, *frames[3], (seq + 1) & 0xFFFF, sent)
        await eventually(lambda: skipped in nacked, 5)
        assert skipped not in sent


async def test_tapped_frames_go_on_at_their_last_packet_and_wait_behind_a_gap() -> None:
    async with link() as linked:
        nacked: list[int] = []

        async def retransmit(sequence_number: int) -> None:
            nacked.append(sequence_number)

        answer_nacks(linked.sender, retransmit)
        tapped = Tapped()
        tap_depayloaded_frames(linked.receiver, tapped.frame, tapped.end)
        sent: dict[int, bytes] = {}
        frames = vp8_frames(4)
        seq = 2000
        # Each frame is handed on as soon as its marker packet is in, before anything follows.
        for count, (payloads, timestamp) in enumerate(frames[:2], start=1):
            seq = send_frame(linked, payloads, timestamp, seq, sent)
            await eventually(lambda count=count: len(tapped.frames) == count, 5)
        assert is_vp8_keyframe(bytes(tapped.frames[0][1].data))

        # Frame 2 loses its first packet: it waits, and frame 3 (complete) waits behind it.
        lost = seq
        seq = send_frame(linked, *frames[2], seq, sent, lose=lost)
        send_frame(linked, *frames[3], seq, sent)
        await eventually(lambda: lost in nacked, 5)
        assert len(tapped.frames) == 2
        # The retransmission (here a plain resend) completes both at once, in order, their
        # timestamps mapped by the receiver as the first ones were.
        path = rtp_path(linked.sender)
        assert path is not None
        path.transport.sendto(path.srtp.protect(sent[lost]), path.addr)
        await eventually(lambda: len(tapped.frames) == 4, 5)
        assert [f.timestamp for _, f in tapped.frames] == [t - frames[0][1] for _, t in frames]
        assert linked.decoded == []  # tapped frames are never decoded


async def test_sender_report_counters_reach_the_viewer() -> None:
    async with link() as linked:
        SenderReportCounters(linked.sender).update(
            ntp_timestamp=0, rtp_timestamp=0, packets=4242, octets=123456
        )

        async def reported() -> bool:
            stats = await linked.receiver.getStats()
            return any(
                s.type == "remote-outbound-rtp" and (s.packetsSent, s.bytesSent) == (4242, 123456)
                for s in stats.values()
            )

        await eventually(reported, 5)


async def test_keyframe_request_hook_sees_the_viewers_pli() -> None:
    async with link() as linked:
        requests: list[None] = []
        on_keyframe_request(linked.sender, lambda: requests.append(None))
        await send_pli(linked.receiver, sender_ssrc(linked.sender))
        await eventually(lambda: len(requests) == 1, 5)


# --- ICE ---------------------------------------------------------------------------------------


async def test_host_address_seam_makes_aioice_offer_loopback() -> None:
    def loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    offer_host_addresses(loopback)
    assert host_addresses_now() == ["127.0.0.1"]
    pc = RTCPeerConnection(rtc_configuration())
    try:
        pc.addTransceiver("audio")
        await pc.setLocalDescription(await pc.createOffer())
        candidates = [
            aiortc_sdp.candidate_from_sdp(line.split(":", 1)[1])
            for line in pc.localDescription.sdp.splitlines()
            if line.startswith("a=candidate:")
        ]
        assert candidates
        assert {(c.ip, c.type) for c in candidates} == {("127.0.0.1", "host")}
    finally:
        await pc.close()
    offer_host_addresses(None)
    assert "127.0.0.1" not in host_addresses_now()  # aioice's own rule leaves loopback out


async def test_nominated_pair_names_both_candidates() -> None:
    # The relayed branch (how the TURN server is reached) is pinned by tests/test_turn.py, against
    # a real coturn.
    async with link() as linked:
        (pair,) = nominated_pairs(linked.client)
        assert (pair.local.type, pair.remote.type, pair.turn_transport) == ("host", "host", None)
        (other,) = nominated_pairs(linked.server)
        assert (other.local.host, other.local.port) == (pair.remote.host, pair.remote.port)
    pc = RTCPeerConnection(rtc_configuration())
    try:
        pc.addTransceiver("audio")
        assert nominated_pairs(pc) == []  # nothing nominated before ICE runs
    finally:
        await pc.close()


async def test_empty_datagrams_never_reach_the_dtls_transport() -> None:
    # aiortc reads the first byte of whatever aioice queues: an empty datagram ended the transport.
    pc = RTCPeerConnection(rtc_configuration(max_bundle=True))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        assert drop_empty_datagrams(pc) == 1  # one transport for both (max-bundle)
        assert drop_empty_datagrams(pc) == 0  # never wrapped twice
        connection = pc.getTransceivers()[0].sender.transport.transport._connection
        connection.data_received(b"", 1)
        connection.data_received(b"\x80\x00", 1)
        assert connection._queue.qsize() == 1
    finally:
        await pc.close()


async def test_a_guarded_connection_is_freed_without_the_cyclic_collector() -> None:
    # The guard shadows a method of the connection on the connection itself: held strongly, it
    # left every closed one in a cycle until a full collection, which the node runs seldom.
    gc.collect()
    gc.disable()
    try:
        pc = RTCPeerConnection(rtc_configuration(max_bundle=True))
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        assert drop_empty_datagrams(pc) == 1
        connection = weakref.ref(pc.getTransceivers()[0].sender.transport.transport._connection)
        await pc.close()
        release_peer(pc)
        del pc
        assert connection() is None
    finally:
        gc.enable()


def test_vp8_payloads_cut_a_frame_as_aiortc_sends_it() -> None:
    from media.seams import vp8_payloads

    payloads = vp8_payloads(bytes(range(256)) * 12)  # 3,072 bytes
    assert len(payloads) == 3 and all(len(p) <= 1300 for p in payloads)
    assert sum(len(p) for p in payloads) > 3072  # each carries a VP8 payload descriptor
