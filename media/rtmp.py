"""RTMP ingest: OBS's default output, ``rtmp://HOST:1935/live/<stream key>``.

A small RTMP server of our own (handshake, chunk streams, connect/createStream/publish commands) so
the stream key is checked *before* any media is taken: an unknown key gets
``NetStream.Publish.BadName`` and the connection is closed, disturbing nothing else. (FFmpeg's own
RTMP listener accepts any stream name, so it cannot refuse a wrong key.)

Media: H.264 arrives as AVCC (length-prefixed NAL units, parameter sets in the sequence header) and
is rewritten to Annex-B, the form WebRTC packetisers take; AAC is decoded and encoded once per show
to Opus. B-frames (a non-zero composition time) cannot be forwarded to WebRTC: video is held back
and the performer is told, rather than sending broken pictures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from media import amf0
from media.frame import EncodedFrame

# The log never names an encoder's address, right key or wrong: an address is personal data
# (docs/security.md). The firewall or `ss` shows who is connected, if an operator must know.
log = structlog.get_logger(__name__)

HANDSHAKE_SIZE = 1536
OUR_CHUNK_SIZE = 4096
WINDOW_ACK_SIZE = 2_500_000
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0
PUBLISH_TIMEOUT = 30.0  # from connecting to a publish accepted: OBS needs well under a second

# message types
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK, SET_PEER_BW = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO, DATA_AMF0, COMMAND_AMF0 = 8, 9, 18, 20

# What one connection may make us hold. Until its stream key is accepted a peer is anonymous, so it
# gets only what connect/createStream/publish need: a few kilobytes of commands and control.
MAX_MESSAGE = 4 * 1024 * 1024  # a single video frame larger than this is an attack, not a stage
MAX_BUFFERED = 8 * 1024 * 1024  # every half-received message together, once publishing
UNPUBLISHED_TYPES = frozenset(
    {SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK, SET_PEER_BW, DATA_AMF0, COMMAND_AMF0}
)
UNPUBLISHED_MAX_MESSAGE = 64 * 1024
UNPUBLISHED_MAX_BUFFERED = 256 * 1024
MAX_PARTIAL = 16  # chunk streams with a half-received message (encoders interleave two or three)
MAX_CHUNK_STREAMS = 64  # encoders use a handful of chunk stream ids; each kept one costs memory

VIDEO_CLOCK = 90
OPUS_RATE = 48_000
OPUS_FRAME = 960


class RtmpError(Exception):
    """The peer broke the protocol; the connection is closed."""

    def __init__(self, message: str, code: str = "protocol") -> None:
        super().__init__(message)
        self.code = code


class FrameSink(Protocol):
    """Where a publisher's frames go (the show's broadcast)."""

    def push(self, frame: EncodedFrame) -> None:
        """Take one encoded frame."""

    def warn(self, code: str, message: str) -> None:
        """Tell the performer something is wrong with what they send."""

    async def close(self) -> None:
        """The publisher is gone."""


# The stream key (the publish name) in; a sink for its show, or None to refuse.
Authorise = Callable[[str], Awaitable[FrameSink | None]]


@dataclass
class _ChunkStream:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    buffer: bytearray = field(default_factory=bytearray)


class RtmpConnection:
    """One TCP connection from an encoder."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, authorise: Authorise
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.authorise = authorise
        self.in_chunk_size = 128
        self.streams: dict[int, _ChunkStream] = {}
        self.buffered = 0  # bytes of half-received messages across all chunk streams
        self.received = 0
        self.acked = 0
        self.window = WINDOW_ACK_SIZE
        self.sink: FrameSink | None = None
        self.media: FlvToFrames | None = None

    async def run(self) -> None:
        """Serve the connection until the encoder leaves or breaks the protocol."""
        try:
            loop = asyncio.get_running_loop()
            publish_by = loop.time() + PUBLISH_TIMEOUT
            await asyncio.wait_for(self._handshake(), HANDSHAKE_TIMEOUT)
            while True:
                wait = IDLE_TIMEOUT
                if self.sink is None:
                    # Not publishing yet: a connection must not sit here for ever, however it
                    # keeps itself busy (every connection holds memory and a socket).
                    wait = publish_by - loop.time()
                    if wait <= 0:
                        raise RtmpError("no publish in the time allowed", "publish_timeout")
                try:
                    message = await asyncio.wait_for(self._read_message(), wait)
                except TimeoutError:
                    if self.sink is None and wait < IDLE_TIMEOUT:
                        raise RtmpError(
                            "no publish in the time allowed", "publish_timeout"
                        ) from None
                    raise
                type_id, timestamp, payload = message
                if not await self._handle(type_id, timestamp, payload):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except RtmpError as exc:
            log.info("rtmp.protocol_error", code=exc.code, error=str(exc))
        except amf0.AmfError as exc:
            log.info("rtmp.protocol_error", code="bad_amf0", error=str(exc))
        except (ValueError, IndexError, struct.error, RecursionError, OverflowError) as exc:
            # Input we failed to parse in a way not foreseen above: still only this peer's problem.
            log.warning(
                "rtmp.protocol_error",
                code="malformed",
                error=f"{type(exc).__name__}: {exc}",
            )
        except Exception:
            # A fault of ours, not the peer's: keep the traceback, but end only this connection.
            log.warning("rtmp.connection_failed", code="internal", exc_info=True)
        finally:
            if self.sink is not None:
                with contextlib.suppress(Exception):
                    await self.sink.close()
            if self.media is not None:
                self.media.close()
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    # -- handshake and chunks ---------------------------------------------------------------------

    async def _handshake(self) -> None:
        c0c1 = await self.reader.readexactly(1 + HANDSHAKE_SIZE)
        if c0c1[0] != 3:
            raise RtmpError(f"unsupported RTMP version {c0c1[0]}", "bad_version")
        s1 = bytes(8) + os.urandom(HANDSHAKE_SIZE - 8)  # time 0, version 0: the simple handshake
        self.writer.write(b"\x03" + s1 + c0c1[1:])
        await self.writer.drain()
        await self.reader.readexactly(HANDSHAKE_SIZE)  # C2: echo of S1, not checked (simple mode)

    async def _read(self, n: int) -> bytes:
        data = await self.reader.readexactly(n)
        self.received += n
        if self.received - self.acked >= self.window:
            self.acked = self.received
            self._send(2, ACK, struct.pack("!I", self.received & 0xFFFFFFFF))
        return data

    async def _read_message(self) -> tuple[int, int, bytes]:
        while True:
            first = (await self._read(1))[0]
            fmt, csid = first >> 6, first & 0x3F
            if csid == 0:
                csid = 64 + (await self._read(1))[0]
            elif csid == 1:
                b = await self._read(2)
                csid = 64 + b[0] + b[1] * 256
            cs = self.streams.get(csid)
            if cs is None:
                if len(self.streams) >= MAX_CHUNK_STREAMS:
                    raise RtmpError(
                        f"more than {MAX_CHUNK_STREAMS} chunk streams", "too_many_streams"
                    )
                cs = self.streams[csid] = _ChunkStream()
            new_message = not cs.buffer
            if fmt <= 2:
                header = await self._read(11 if fmt == 0 else 7 if fmt == 1 else 3)
                stamp = int.from_bytes(header[0:3], "big")
                cs.extended = stamp == 0xFFFFFF
                if fmt <= 1:
                    cs.length = int.from_bytes(header[3:6], "big")
                    cs.type_id = header[6]
                if fmt == 0:
                    cs.stream_id = int.from_bytes(header[7:11], "little")
                if cs.extended:
                    stamp = int.from_bytes(await self._read(4), "big")
                if fmt == 0:
                    cs.timestamp, cs.delta = stamp, 0
                else:
                    cs.delta = stamp
                    cs.timestamp += stamp
            else:
                if cs.extended:
                    await self._read(4)
                if new_message:
                    cs.timestamp += cs.delta
            take = self._admit(cs, new_message)
            cs.buffer += await self._read(take)
            self.buffered += take
            if len(cs.buffer) >= cs.length:
                payload = bytes(cs.buffer)
                self._drop(cs)
                return cs.type_id, cs.timestamp & 0xFFFFFFFF, payload

    def _admit(self, cs: _ChunkStream, new_message: bool) -> int:
        """How many bytes the next chunk of ``cs`` carries, once the limits allow holding them."""
        if cs.length < len(cs.buffer):
            # A fresh header shortening a message already under way: nothing valid can follow.
            raise RtmpError(
                f"message length {cs.length} is below the {len(cs.buffer)} bytes received",
                "bad_chunk",
            )
        published = self.sink is not None
        if not published and cs.type_id not in UNPUBLISHED_TYPES:
            raise RtmpError(f"message type {cs.type_id} before publish", "not_publishing")
        limit = MAX_MESSAGE if published else UNPUBLISHED_MAX_MESSAGE
        if cs.length > limit:
            raise RtmpError(f"message of {cs.length} bytes is too large", "too_large")
        take = min(self.in_chunk_size, cs.length - len(cs.buffer))
        if new_message and take < cs.length:
            partial = sum(1 for other in self.streams.values() if other.buffer)
            if partial >= MAX_PARTIAL:
                raise RtmpError(f"more than {MAX_PARTIAL} messages under way", "too_many_partial")
        cap = MAX_BUFFERED if published else UNPUBLISHED_MAX_BUFFERED
        if self.buffered + take > cap:
            raise RtmpError(f"more than {cap} bytes of messages under way", "buffer_full")
        return take

    def _drop(self, cs: _ChunkStream) -> None:
        """Forget the message under way on ``cs`` (complete, or aborted by the peer)."""
        self.buffered -= len(cs.buffer)
        cs.buffer = bytearray()  # a fresh one: clear() may keep a large allocation

    def _send(self, csid: int, type_id: int, payload: bytes, stream_id: int = 0) -> None:
        header = bytes([csid & 0x3F]) + bytes(3) + len(payload).to_bytes(3, "big")
        header += bytes([type_id]) + stream_id.to_bytes(4, "little")
        out = bytearray(header)
        for start in range(0, len(payload), OUR_CHUNK_SIZE):
            if start:
                out.append(0xC0 | (csid & 0x3F))  # fmt 3: continuation
            out += payload[start : start + OUR_CHUNK_SIZE]
        self.writer.write(bytes(out))

    def _command(self, *values: Any, stream_id: int = 0) -> None:
        self._send(3 if stream_id == 0 else 5, COMMAND_AMF0, amf0.encode(*values), stream_id)

    def _status(self, level: str, code: str, description: str) -> None:
        info = {"level": level, "code": code, "description": description}
        self._command("onStatus", 0, None, info, stream_id=1)

    # -- messages -------------------------------------------------------------------------------

    async def _handle(self, type_id: int, timestamp: int, payload: bytes) -> bool:
        if type_id == SET_CHUNK_SIZE:
            size = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            if not 1 <= size <= MAX_MESSAGE:
                raise RtmpError(f"bad chunk size {size}", "bad_chunk_size")
            self.in_chunk_size = size
        elif type_id == ABORT:
            cs = self.streams.get(int.from_bytes(payload[:4], "big"))
            if cs is not None:
                self._drop(cs)
        elif type_id == WINDOW_ACK:
            pass  # we never send enough to the encoder to need its acknowledgements
        elif type_id == COMMAND_AMF0:
            return await self._on_command(amf0.decode_all(payload))
        elif type_id in (AUDIO, VIDEO) and self.media is not None:
            if type_id == VIDEO:
                self.media.video(timestamp, payload)
            else:
                self.media.audio(timestamp, payload)
        return True

    async def _on_command(self, values: list[Any]) -> bool:
        if not values or not isinstance(values[0], str):
            raise RtmpError("command without a name", "bad_command")
        name = values[0]
        txid = values[1] if len(values) > 1 else 0
        if name == "connect":
            self._send(2, WINDOW_ACK, struct.pack("!I", WINDOW_ACK_SIZE))
            self._send(2, SET_PEER_BW, struct.pack("!IB", WINDOW_ACK_SIZE, 2))
            self._send(2, SET_CHUNK_SIZE, struct.pack("!I", OUR_CHUNK_SIZE))
            self._command(
                "_result",
                txid,
                {"fmsVer": "FMS/3,0,1,123", "capabilities": 31},
                {
                    "level": "status",
                    "code": "NetConnection.Connect.Success",
                    "description": "Connection succeeded.",
                    "objectEncoding": 0,
                },
            )
        elif name == "createStream":
            self._command("_result", txid, None, 1)
        elif name in ("releaseStream", "FCPublish", "FCUnpublish"):
            self._command("_result", txid, None, None)
        elif name == "publish":
            if self.sink is not None:
                # One publication per connection. OBS and FFmpeg never publish twice (a reconnect
                # opens a new connection); replacing the first would leak its audio pipeline.
                log.info("rtmp.refused", code="already_publishing")
                self._status(
                    "error", "NetStream.Publish.BadName", "already publishing on this connection"
                )
                await self.writer.drain()
                return False
            key = str(values[3]) if len(values) > 3 and values[3] is not None else ""
            key = key.split("?", 1)[0]
            sink = await self.authorise(key)
            if sink is None:
                log.info("rtmp.refused", code="bad_key")
                self._status("error", "NetStream.Publish.BadName", "unknown stream key")
                await self.writer.drain()
                return False
            self.sink = sink
            self.media = FlvToFrames(sink)
            self._status("status", "NetStream.Publish.Start", "publishing")
        elif name == "deleteStream":
            return False
        await self.writer.drain()
        return True


class FlvToFrames:
    """FLV-tagged H.264 and AAC from RTMP into the encoded frames WebRTC viewers receive."""

    def __init__(self, sink: FrameSink) -> None:
        self.sink = sink
        self.parameter_sets = b""
        self.length_size = 4
        self.b_frames = False
        self.video_frames = 0
        self.aac = AacToOpus(sink)

    def video(self, timestamp: int, tag: bytes) -> None:
        """One FLV video tag."""
        if len(tag) < 5:
            return
        frame_type, codec_id = tag[0] >> 4, tag[0] & 0x0F
        if codec_id != 7:
            self.sink.warn("unsupported_codec", "video must be H.264 (choose x264 in OBS)")
            return
        packet_type = tag[1]
        cts = int.from_bytes(tag[2:5], "big", signed=True)
        if packet_type == 0:
            self._sequence_header(tag[5:])
            return
        if packet_type != 1:
            return
        if cts != 0:
            # Reordered frames (B-frames) cannot travel over WebRTC: no picture beats a broken one.
            if not self.b_frames:
                self.b_frames = True
                log.warning("rtmp.b_frames")
                self.sink.warn(
                    "b_frames", "the encoder sends B-frames: set B-frames to 0 in OBS's output"
                )
            return
        annexb = self._annexb(tag[5:])
        keyframe = frame_type == 1
        if keyframe:
            annexb = self.parameter_sets + annexb
        self.video_frames += 1
        self.sink.push(
            EncodedFrame(
                kind="video",
                mime_type="video/H264",
                data=annexb,
                pts=timestamp * VIDEO_CLOCK,
                clock_rate=90_000,
                keyframe=keyframe,
            )
        )

    def _sequence_header(self, record: bytes) -> None:
        """AVCDecoderConfigurationRecord: the NAL length size and the SPS/PPS."""
        if len(record) < 7:
            return
        self.length_size = (record[4] & 0x03) + 1
        pos = 5
        sets = bytearray()
        count = record[pos] & 0x1F
        pos += 1
        for _ in range(count):
            size = int.from_bytes(record[pos : pos + 2], "big")
            sets += b"\x00\x00\x00\x01" + record[pos + 2 : pos + 2 + size]
            pos += 2 + size
        if pos < len(record):
            count = record[pos]
            pos += 1
            for _ in range(count):
                size = int.from_bytes(record[pos : pos + 2], "big")
                sets += b"\x00\x00\x00\x01" + record[pos + 2 : pos + 2 + size]
                pos += 2 + size
        self.parameter_sets = bytes(sets)

    def _annexb(self, data: bytes) -> bytes:
        out = bytearray()
        pos, n = 0, self.length_size
        while pos + n <= len(data):
            size = int.from_bytes(data[pos : pos + n], "big")
            pos += n
            out += b"\x00\x00\x00\x01" + data[pos : pos + size]
            pos += size
        return bytes(out)

    def audio(self, timestamp: int, tag: bytes) -> None:
        """One FLV audio tag."""
        if len(tag) < 2:
            return
        if tag[0] >> 4 != 10:
            self.sink.warn("unsupported_codec", "audio must be AAC")
            return
        if tag[1] == 0:
            self.aac.configure(tag[2:])
        else:
            self.aac.decode(timestamp, tag[2:])

    def close(self) -> None:
        """Release the audio codecs."""
        self.aac.close()


class AacToOpus:
    """Decodes the publisher's AAC and encodes Opus once per show (never per viewer)."""

    def __init__(self, sink: FrameSink) -> None:
        self.sink = sink
        self._decoder: Any = None
        self._encoder: Any = None
        self._resampler: Any = None
        self._fifo: Any = None
        self._origin: int | None = None
        self._samples = 0

    def configure(self, audio_specific_config: bytes) -> None:
        """Set up from the AAC AudioSpecificConfig."""
        import av

        self._decoder = av.CodecContext.create("aac", "r")
        self._decoder.extradata = audio_specific_config
        self._encoder = av.CodecContext.create("libopus", "w")
        self._encoder.sample_rate = OPUS_RATE
        self._encoder.layout = "stereo"
        self._encoder.format = "s16"
        self._encoder.bit_rate = 96_000
        self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE)
        self._fifo = av.AudioFifo()

    def decode(self, timestamp: int, raw: bytes) -> None:
        """One AAC frame in; zero or more Opus frames out to the sink."""
        if self._decoder is None:
            return
        import av

        if self._origin is None:
            self._origin = timestamp * OPUS_RATE // 1000
        try:
            frames = self._decoder.decode(av.Packet(raw))
        except av.FFmpegError:
            return  # one damaged frame costs a click, not the stream
        for frame in frames:
            for resampled in self._resampler.resample(frame):
                resampled.pts = None
                self._fifo.write(resampled)
        while self._fifo.samples >= OPUS_FRAME:
            chunk = self._fifo.read(OPUS_FRAME)
            chunk.pts = self._samples
            self._samples += OPUS_FRAME
            for packet in self._encoder.encode(chunk):
                self.sink.push(
                    EncodedFrame(
                        kind="audio",
                        mime_type="audio/opus",
                        data=bytes(packet),
                        pts=self._origin + (packet.pts or 0),
                        clock_rate=OPUS_RATE,
                        keyframe=True,
                    )
                )

    def close(self) -> None:
        """Drop the codecs."""
        self._decoder = self._encoder = self._resampler = self._fifo = None


class RtmpServer:
    """Listens for encoders and hands each publish to ``authorise``."""

    def __init__(self, authorise: Authorise) -> None:
        self.authorise = authorise
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Start listening; returns the port (useful with 0)."""
        self._server = await asyncio.start_server(self._accept, host, port)
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1]) if sockets else port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await RtmpConnection(reader, writer, self.authorise).run()
        finally:
            if task is not None:
                self._connections.discard(task)

    async def close(self) -> None:
        """Stop listening and end every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
