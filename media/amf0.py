"""AMF0, the value encoding of RTMP commands (just what RTMP ingest needs)."""

from __future__ import annotations

import struct
from typing import Any

NUMBER, BOOLEAN, STRING, OBJECT, NULL, UNDEFINED = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06
ECMA_ARRAY, OBJECT_END, STRICT_ARRAY, DATE, LONG_STRING = 0x08, 0x09, 0x0A, 0x0B, 0x0C

# RTMP commands nest two or three levels; a peer nesting deeper wants our stack, not a stream.
MAX_DEPTH = 32


class AmfError(ValueError):
    """Bytes that are not valid AMF0."""


def decode_all(data: bytes) -> list[Any]:
    """Every value in ``data``, in order."""
    values = []
    pos = 0
    while pos < len(data):
        value, pos = _decode(data, pos, 0)
        values.append(value)
    return values


def _decode(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    """The value at ``pos`` inside ``depth`` enclosing objects/arrays, and the position after it."""
    try:
        marker = data[pos]
        pos += 1
        if marker == NUMBER:
            return struct.unpack_from("!d", data, pos)[0], pos + 8
        if marker == BOOLEAN:
            return data[pos] != 0, pos + 1
        if marker == STRING:
            return _string(data, pos, 2)
        if marker == LONG_STRING:
            return _string(data, pos, 4)
        if marker in (NULL, UNDEFINED):
            return None, pos
        if marker in (OBJECT, ECMA_ARRAY, STRICT_ARRAY) and depth >= MAX_DEPTH:
            raise AmfError(f"AMF0 values nested deeper than {MAX_DEPTH} levels")
        if marker == OBJECT:
            return _properties(data, pos, depth + 1)
        if marker == ECMA_ARRAY:
            return _properties(data, pos + 4, depth + 1)
        if marker == STRICT_ARRAY:
            (count,) = struct.unpack_from("!I", data, pos)
            pos += 4
            items = []
            for _ in range(count):
                item, pos = _decode(data, pos, depth + 1)
                items.append(item)
            return items, pos
        if marker == DATE:
            return struct.unpack_from("!d", data, pos)[0], pos + 10
    except (IndexError, struct.error) as exc:
        raise AmfError("truncated AMF0 value") from exc
    raise AmfError(f"unsupported AMF0 marker {marker:#x}")


def _string(data: bytes, pos: int, size: int) -> tuple[str, int]:
    length = int.from_bytes(data[pos : pos + size], "big")
    start = pos + size
    if start + length > len(data):
        raise AmfError("truncated AMF0 string")
    return data[start : start + length].decode("utf-8", "replace"), start + length


def _properties(data: bytes, pos: int, depth: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    while True:
        if data[pos : pos + 3] == b"\x00\x00\x09":
            return result, pos + 3
        key, pos = _string(data, pos, 2)
        value, pos = _decode(data, pos, depth)
        result[key] = value


def encode(*values: Any) -> bytes:
    """AMF0 bytes of ``values`` (numbers, booleans, strings, None, dicts)."""
    out = bytearray()
    for value in values:
        out += _encode(value)
    return bytes(out)


def _encode(value: Any) -> bytes:
    if value is None:
        return bytes([NULL])
    if isinstance(value, bool):
        return bytes([BOOLEAN, 1 if value else 0])
    if isinstance(value, int | float):
        return bytes([NUMBER]) + struct.pack("!d", float(value))
    if isinstance(value, str):
        raw = value.encode()
        return bytes([STRING]) + struct.pack("!H", len(raw)) + raw
    if isinstance(value, dict):
        out = bytearray([OBJECT])
        for key, item in value.items():
            raw = str(key).encode()
            out += struct.pack("!H", len(raw)) + raw + _encode(item)
        return bytes(out + b"\x00\x00\x09")
    raise AmfError(f"cannot encode {type(value).__name__} as AMF0")
