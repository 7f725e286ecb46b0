"""SPOP 2.0, the protocol of HAProxy's Stream Processing Offload Engine (HAProxy's doc/SPOE.txt,
section 3): frames, typed data and varints, decoded from bytes and encoded to bytes. Pure: no
sockets, no clock. Every malformed input raises SpopError carrying the SPOP status code the
agent answers it with (AGENT-DISCONNECT).

Only what an agent needs: it reads HAPROXY-HELLO, NOTIFY and HAPROXY-DISCONNECT and writes
AGENT-HELLO, ACK (set-var actions) and AGENT-DISCONNECT. Fragmented payloads are refused
(the agent never announces the capability, so HAProxy never sends them)."""
from __future__ import annotations

import ipaddress
import struct
from typing import Dict, List, NamedTuple, Sequence, Tuple, Union

VERSION = "2.0"
MIN_FRAME_SIZE = 256  # SPOE.txt 3.2: no peer may announce less
LENGTH = struct.Struct("!I")
HEADER = struct.Struct("!BI")  # frame type, flags

# Frame types
UNSET, HAPROXY_HELLO, HAPROXY_DISCONNECT, NOTIFY = 0, 1, 2, 3
AGENT_HELLO, AGENT_DISCONNECT, ACK = 101, 102, 103
FLAG_FIN, FLAG_ABORT = 0x1, 0x2

# Typed data
T_NULL, T_BOOL, T_INT32, T_UINT32, T_INT64, T_UINT64, T_IPV4, T_IPV6, T_STRING, T_BINARY = range(10)
_SIGNED = {T_INT32: 1 << 31, T_INT64: 1 << 63}
_INT_BITS = {T_INT32: 32, T_UINT32: 32, T_INT64: 64, T_UINT64: 64}

# Action set-var, and the variable scopes
ACTION_SET_VAR = 1
SCOPE_PROCESS, SCOPE_SESSION, SCOPE_TRANSACTION, SCOPE_REQUEST, SCOPE_RESPONSE = range(5)

# Status codes (SPOE.txt 3.5)
NORMAL, IO_ERROR, TIMEOUT, TOO_BIG, INVALID, NO_VERSION, NO_FRAME_SIZE, NO_CAPABILITIES, BAD_VERSION, \
    BAD_FRAME_SIZE, NO_FRAGMENTATION, INTERLACED_FRAMES, FRAME_ID_NOT_FOUND, RESOURCE, UNKNOWN = \
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 99
STATUS_NAMES = {NORMAL: "normal", IO_ERROR: "io", TIMEOUT: "timeout", TOO_BIG: "too_big", INVALID: "invalid",
                NO_VERSION: "no_version", NO_FRAME_SIZE: "no_frame_size", NO_CAPABILITIES: "no_capabilities",
                BAD_VERSION: "bad_version", BAD_FRAME_SIZE: "bad_frame_size", NO_FRAGMENTATION: "no_fragmentation",
                INTERLACED_FRAMES: "interlaced_frames", FRAME_ID_NOT_FOUND: "frame_id_not_found",
                RESOURCE: "resource", UNKNOWN: "unknown"}

Value = Union[None, bool, int, str, bytes, ipaddress.IPv4Address, ipaddress.IPv6Address]


class SpopError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Frame(NamedTuple):  # a tuple: built once per question, so cheap to build
    type: int
    flags: int
    stream_id: int
    frame_id: int
    payload: bytes


# -- varints (HAProxy's peers encoding) ------------------------------------------------------

def encode_varint(value: int) -> bytes:
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"a varint holds 0 to 2**64-1, not {value}")
    if value < 240:
        return bytes((value,))
    out = bytearray(((value & 0xFF) | 240,))
    value = (value - 240) >> 4
    while value >= 128:
        out.append((value & 0xFF) | 128)
        value = (value - 128) >> 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, pos: int) -> Tuple[int, int]:
    """(value, position after it)."""
    if pos >= len(data):
        raise SpopError(INVALID, "truncated varint")
    value = data[pos]
    pos += 1
    if value < 240:
        return value, pos
    shift = 4
    while True:
        if pos >= len(data):
            raise SpopError(INVALID, "truncated varint")
        byte = data[pos]
        pos += 1
        value += byte << shift
        if byte < 128:
            break
        shift += 7
        if shift > 64:
            raise SpopError(INVALID, "varint longer than 64 bits")
    if value >= 1 << 64:
        raise SpopError(INVALID, "varint longer than 64 bits")
    return value, pos


# -- typed data --------------------------------------------------------------------------------

def _span(data: bytes, pos: int) -> Tuple[int, int]:
    """(start, end) of the length-prefixed value at pos."""
    if pos < len(data) and data[pos] < 240:  # a one-byte length: nearly every name and value
        length, pos = data[pos], pos + 1
    else:
        length, pos = decode_varint(data, pos)
    end = pos + length
    if end > len(data):
        raise SpopError(INVALID, f"a {length}-byte value runs past the frame")
    return pos, end


def decode_name(data: bytes, pos: int, what: str = "a name") -> Tuple[str, int]:
    """A KV-NAME or MESSAGE-NAME (a length-prefixed string without a type byte), or a STRING's value."""
    start, end = _span(data, pos)
    try:
        return data[start:end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise SpopError(INVALID, f"{what} that is not UTF-8") from None


def decode_typed(data: bytes, pos: int) -> Tuple[Value, int]:
    if pos >= len(data):
        raise SpopError(INVALID, "truncated typed data")
    kind, flags = data[pos] & 0x0F, data[pos] >> 4
    pos += 1
    if kind == T_STRING:
        return decode_name(data, pos, "a string")
    if kind == T_NULL:
        return None, pos
    if kind == T_BOOL:
        return bool(flags & 1), pos
    if kind in _INT_BITS:
        raw, pos = decode_varint(data, pos)
        if raw >= 1 << _INT_BITS[kind]:
            raise SpopError(INVALID, f"integer {raw} too large for its type")
        if kind in _SIGNED and raw >= _SIGNED[kind]:
            raw -= 2 * _SIGNED[kind]  # two's complement, as HAProxy casts it
        return raw, pos
    if kind in (T_IPV4, T_IPV6):
        size = 4 if kind == T_IPV4 else 16
        if pos + size > len(data):
            raise SpopError(INVALID, "truncated address")
        return ipaddress.ip_address(data[pos:pos + size]), pos + size
    if kind == T_BINARY:
        start, end = _span(data, pos)
        return bytes(data[start:end]), end
    raise SpopError(INVALID, f"unknown data type {kind}")


def encode_name(value: str) -> bytes:
    """A length-prefixed string without a type byte (a KV-NAME, a variable's name)."""
    raw = value.encode("utf-8")
    return encode_varint(len(raw)) + raw


def encode_typed(value: Value) -> bytes:
    """None, bool, str, bytes, an address, or an int (sent as UINT32 when it fits, else INT64)."""
    if value is None:
        return bytes((T_NULL,))
    if isinstance(value, bool):
        return bytes((T_BOOL | (0x10 if value else 0),))
    if isinstance(value, int):
        if 0 <= value < 1 << 32:
            return bytes((T_UINT32,)) + encode_varint(value)
        if not -(1 << 63) <= value < 1 << 63:
            raise ValueError(f"{value} does not fit SPOP's integers")
        return bytes((T_INT64,)) + encode_varint(value % (1 << 64))
    if isinstance(value, str):
        return bytes((T_STRING,)) + encode_name(value)
    if isinstance(value, bytes):
        return bytes((T_BINARY,)) + encode_varint(len(value)) + value
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return bytes((T_IPV4 if value.version == 4 else T_IPV6,)) + value.packed
    raise TypeError(f"no SPOP type for {type(value).__name__}")


# -- payloads ----------------------------------------------------------------------------------

def decode_kv_list(data: bytes) -> Dict[str, Value]:
    items: Dict[str, Value] = {}
    pos = 0
    while pos < len(data):
        name, pos = decode_name(data, pos)
        items[name], pos = decode_typed(data, pos)
    return items


def decode_messages(payload: bytes) -> List[Tuple[str, Dict[str, Value]]]:
    """A NOTIFY's LIST-OF-MESSAGES: [(message name, its arguments)]."""
    messages = []
    pos = 0
    while pos < len(payload):
        name, pos = decode_name(payload, pos)
        if pos >= len(payload):
            raise SpopError(INVALID, f"message {name!r} without its argument count")
        count = payload[pos]
        pos += 1
        args: Dict[str, Value] = {}
        for _ in range(count):
            key, pos = decode_name(payload, pos)
            args[key], pos = decode_typed(payload, pos)
        messages.append((name, args))
    return messages


def encode_kv_list(items: Dict[str, Value]) -> bytes:
    out = bytearray()
    for name, value in items.items():
        out += encode_name(name) + encode_typed(value)
    return bytes(out)


def encode_set_vars(variables: Sequence[Tuple[int, str, Value]]) -> bytes:
    """A LIST-OF-ACTIONS of set-var actions: (scope, name, value) each."""
    out = bytearray()
    for scope, name, value in variables:
        out += bytes((ACTION_SET_VAR, 3, scope)) + encode_name(name) + encode_typed(value)
    return bytes(out)


# -- frames ------------------------------------------------------------------------------------

def encode_frame(kind: int, payload: bytes, stream_id: int = 0, frame_id: int = 0, flags: int = FLAG_FIN) -> bytes:
    body = HEADER.pack(kind, flags) + encode_varint(stream_id) + encode_varint(frame_id) + payload
    return LENGTH.pack(len(body)) + body


def decode_frame(body: bytes) -> Frame:
    """One frame without its 4-byte length."""
    if len(body) < HEADER.size:
        raise SpopError(INVALID, f"a {len(body)}-byte frame is shorter than its header")
    kind, flags = HEADER.unpack_from(body)
    stream_id, pos = decode_varint(body, HEADER.size)
    frame_id, pos = decode_varint(body, pos)
    return Frame(kind, flags, stream_id, frame_id, bytes(body[pos:]))  # a copy: the buffer moves on


def split_frames(buffer: bytearray, max_size: int) -> List[Frame]:
    """The whole frames at the start of ``buffer``, removed from it; a partial one stays. A
    length over ``max_size`` raises TOO_BIG before its bytes are awaited."""
    frames = []
    pos = 0
    while len(buffer) - pos >= LENGTH.size:
        (length,) = LENGTH.unpack_from(buffer, pos)
        if length > max_size:
            raise SpopError(TOO_BIG, f"a {length}-byte frame is over the {max_size}-byte maximum")
        if len(buffer) - pos - LENGTH.size < length:
            break
        start = pos + LENGTH.size
        frames.append(decode_frame(buffer[start:start + length]))
        pos = start + length
    del buffer[:pos]
    return frames


def negotiate(hello: Dict[str, Value], max_frame_size: int) -> Tuple[int, bool]:
    """What a HAPROXY-HELLO's items settle: (the frame size both keep to, whether it is a health
    check); SpopError with the status HAProxy is to be told otherwise."""
    versions = hello.get("supported-versions")
    if not isinstance(versions, str):
        raise SpopError(NO_VERSION, "supported-versions missing")
    if VERSION.split(".")[0] not in {v.strip().split(".")[0] for v in versions.split(",")}:
        raise SpopError(BAD_VERSION, f"SPOP {VERSION} is not among {versions[:80]!r}")
    size = hello.get("max-frame-size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise SpopError(NO_FRAME_SIZE, "max-frame-size missing")
    if size < MIN_FRAME_SIZE:
        raise SpopError(BAD_FRAME_SIZE, f"max-frame-size {size} is under {MIN_FRAME_SIZE}")
    if not isinstance(hello.get("capabilities"), str):
        raise SpopError(NO_CAPABILITIES, "capabilities missing")
    return min(size, max_frame_size), hello.get("healthcheck") is True


def agent_hello(max_frame_size: int, capabilities: str) -> bytes:
    return encode_frame(AGENT_HELLO, encode_kv_list(
        {"version": VERSION, "max-frame-size": max_frame_size, "capabilities": capabilities}))


def agent_disconnect(status: int, message: str) -> bytes:
    return encode_frame(AGENT_DISCONNECT, encode_kv_list({"status-code": status, "message": message[:200]}))


def ack(stream_id: int, frame_id: int, actions: bytes) -> bytes:
    """An ACK carrying ``actions`` (encode_set_vars)."""
    return encode_frame(ACK, actions, stream_id, frame_id)
