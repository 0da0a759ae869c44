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
    """AMF0 bytes of ``values``: numbers, booleans, text (a long string past 65535 bytes), None,
    dicts (objects), lists and tuples (strict arrays), nested at most :data:`MAX_DEPTH` levels;
    anything else, text that is not Unicode or a property name past 65535 bytes is AmfError."""
    out = bytearray()
    for value in values:
        _encode(value, out, 0)
    return bytes(out)


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if value is None:
        out.append(NULL)
    elif isinstance(value, bool):
        out += bytes([BOOLEAN, 1 if value else 0])
    elif isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError as exc:
            raise AmfError(f"{value} is beyond an AMF0 number") from exc
        out.append(NUMBER)
        out += struct.pack("!d", number)
    elif isinstance(value, str):
        raw = _text(value)
        if len(raw) <= 0xFFFF:
            out.append(STRING)
            out += struct.pack("!H", len(raw))
        elif len(raw) <= 0xFFFFFFFF:
            out.append(LONG_STRING)
            out += struct.pack("!I", len(raw))
        else:
            raise AmfError("text over 4 GiB")
        out += raw
    elif isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            raise AmfError(f"AMF0 values nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            out.append(OBJECT)
            for key, item in value.items():
                name = _text(str(key))
                if len(name) > 0xFFFF:
                    raise AmfError("an AMF0 property name is at most 65535 bytes")
                out += struct.pack("!H", len(name)) + name
                _encode(item, out, depth + 1)
            out += b"\x00\x00\x09"
        else:
            out.append(STRICT_ARRAY)
            out += struct.pack("!I", len(value))
            for item in value:
                _encode(item, out, depth + 1)
    else:
        raise AmfError(f"cannot encode {type(value).__name__} as AMF0")


def _text(value: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError as exc:
        raise AmfError("text that is not Unicode (a lone surrogate)") from exc
