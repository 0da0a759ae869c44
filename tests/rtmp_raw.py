"""A hand-driven RTMP client for tests: crafted chunks out, the server's messages in (the RTMP
tests and their fuzzing share it)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

from media import amf0, rtmp


def basic_header(fmt: int, csid: int) -> bytes:
    """The chunk basic header in its 1, 2 or 3 byte form."""
    if csid < 64:
        return bytes([fmt << 6 | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([fmt << 6 | 1]) + (csid - 64).to_bytes(2, "little")


def first_chunk(csid: int, type_id: int, length: int, body: bytes, stream_id: int = 0) -> bytes:
    """A fmt-0 chunk: full message header, then ``body`` (possibly only part of the message)."""
    header = bytes(3) + length.to_bytes(3, "big") + bytes([type_id])
    return basic_header(0, csid) + header + stream_id.to_bytes(4, "little") + body


def nested_arrays(levels: int) -> bytes:
    """AMF0 strict arrays inside each other ``levels`` deep, a null innermost."""
    return b"\x0a\x00\x00\x00\x01" * levels + b"\x05"


class RawRtmp:
    """A hand-driven RTMP client: crafted chunks out, the server's messages in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.out_chunk = 128
        self.in_chunk = 128

    @classmethod
    async def open(cls, port: int, *, local_address: str | None = None) -> RawRtmp:
        """Connect (from ``local_address``, on loopback another client address) and complete
        the handshake."""
        local = None if local_address is None else (local_address, 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        writer.write(b"\x03" + bytes(rtmp.HANDSHAKE_SIZE))
        s0s1s2 = await asyncio.wait_for(reader.readexactly(1 + 2 * rtmp.HANDSHAKE_SIZE), 5)
        writer.write(s0s1s2[1 : 1 + rtmp.HANDSHAKE_SIZE])
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        """Write raw bytes (the server may already have hung up: that is what tests look for)."""
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def message(self, csid: int, type_id: int, payload: bytes, stream_id: int = 0) -> None:
        """One whole message in chunks of our current size."""
        size = self.out_chunk
        out = first_chunk(csid, type_id, len(payload), payload[:size], stream_id)
        for start in range(size, len(payload), size):
            out += basic_header(3, csid) + payload[start : start + size]
        await self.send(out)

    async def set_chunk_size(self, size: int) -> None:
        """Tell the server our chunks grow to ``size``."""
        await self.message(2, rtmp.SET_CHUNK_SIZE, struct.pack("!I", size))
        self.out_chunk = size

    async def command(self, *values: Any, stream_id: int = 0) -> None:
        """An AMF0 command."""
        await self.message(3, rtmp.COMMAND_AMF0, amf0.encode(*values), stream_id)

    async def read_message(self) -> tuple[int, bytes]:
        """The server's next message (it sends fmt 0, then fmt-3 continuations)."""
        head = await self.reader.readexactly(12)
        assert head[0] >> 6 == 0, "the server starts every message with a full header"
        length, type_id = int.from_bytes(head[4:7], "big"), head[7]
        payload = await self.reader.readexactly(min(self.in_chunk, length))
        while len(payload) < length:
            await self.reader.readexactly(1)
            payload += await self.reader.readexactly(min(self.in_chunk, length - len(payload)))
        if type_id == rtmp.SET_CHUNK_SIZE:
            self.in_chunk = int.from_bytes(payload, "big")
        return type_id, payload

    async def expect(self, name: str) -> list[Any]:
        """The values of the server's next command called ``name`` (others are skipped)."""

        async def find() -> list[Any]:
            while True:
                type_id, payload = await self.read_message()
                if type_id == rtmp.COMMAND_AMF0:
                    values = amf0.decode_all(payload)
                    if values[0] == name:
                        return values

        return await asyncio.wait_for(find(), 5)

    async def connect(self) -> None:
        """connect and createStream, as encoders begin."""
        await self.command("connect", 1, {"app": "live"})
        await self.expect("_result")
        await self.command("createStream", 2, None)
        await self.expect("_result")

    async def publish(self, key: str) -> dict[str, Any]:
        """Publish under ``key``; the server's status."""
        await self.command("publish", 3, None, key, "live", stream_id=1)
        status: dict[str, Any] = (await self.expect("onStatus"))[3]
        return status

    async def closed(self, timeout: float = 5) -> bool:
        """Whether the server hangs up within ``timeout`` seconds (whatever it sends first)."""

        async def drain() -> None:
            with contextlib.suppress(ConnectionError):
                while await self.reader.read(65536):
                    pass

        try:
            await asyncio.wait_for(drain(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Hang up."""
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
