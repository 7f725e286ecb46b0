"""Hadoop's token storage file (what YARN puts at $HADOOP_TOKEN_FILE_LOCATION), parsed.

Format (org.apache.hadoop.security.Credentials): the magic ``HDTS``, one version byte, then
- version 0 (WRITABLE, what Hadoop writes by default): vint token count; per token a Text
  alias and a Token (vint-prefixed identifier and password, Text kind, Text service); then
  vint secret count; per secret a Text alias and vint-prefixed bytes.
- version 1 (PROTOBUF): a delimited ``CredentialsProto`` message: repeated ``tokens`` (1) of
  ``CredentialsKVProto`` {alias 1, token 2: TokenProto {identifier 1, password 2, kind 3,
  service 4}, secret 3}, repeated ``secrets`` (2) of the same.
Text is a vint length then UTF-8; a vint is Hadoop's WritableUtils zero-compressed encoding.

WebHDFS takes a delegation token as ``delegation=<Token.encodeToUrlString()>``: the Token's
Writable form in URL-safe base64 without padding.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import List, Tuple

from .errors import TokenFileError

MAGIC = b"HDTS"
HDFS_TOKEN_KINDS = ("HDFS_DELEGATION_TOKEN", "WEBHDFS delegation", "SWEBHDFS delegation")


@dataclass(frozen=True)
class HadoopToken:
    alias: str
    identifier: bytes
    password: bytes
    kind: str
    service: str

    def url_string(self) -> str:
        out = io.BytesIO()
        _write_bytes(out, self.identifier)
        _write_bytes(out, self.password)
        _write_bytes(out, self.kind.encode())
        _write_bytes(out, self.service.encode())
        return base64.urlsafe_b64encode(out.getvalue()).rstrip(b"=").decode()

    def __repr__(self) -> str:  # never show the password
        return f"HadoopToken(alias={self.alias!r}, kind={self.kind!r}, service={self.service!r})"


def parse_token_storage(data: bytes) -> List[HadoopToken]:
    if data[:4] != MAGIC or len(data) < 5:
        raise TokenFileError("not a Hadoop token storage file (no HDTS header)")
    version = data[4]
    stream = io.BytesIO(data[5:])
    try:
        if version == 0:
            return _parse_writable(stream)
        if version == 1:
            return _parse_protobuf(stream)
    except (EOFError, UnicodeDecodeError, ValueError) as exc:
        raise TokenFileError(f"corrupt token storage file: {exc}") from None
    raise TokenFileError(f"unknown token storage version {version}")


# ---------------------------------------------------------------- writable

def _read_exact(stream: io.BytesIO, n: int) -> bytes:
    if n < 0:
        raise ValueError(f"negative length {n}")
    data = stream.read(n)
    if len(data) != n:
        raise EOFError("truncated")
    return data


def read_vlong(stream: io.BytesIO) -> int:
    first = _read_exact(stream, 1)[0]
    if first > 127:
        first -= 256
    if first >= -112:
        return first
    negative = first < -120
    size = (-119 - first) if negative else (-111 - first)
    value = 0
    for byte in _read_exact(stream, size - 1):
        value = (value << 8) | byte
    return ~value if negative else value


def write_vlong(out: io.BytesIO, value: int) -> None:
    if -112 <= value <= 127:
        out.write(bytes([value & 0xFF]))
        return
    length = -112
    if value < 0:
        value = ~value
        length = -120
    tmp = value
    while tmp:
        tmp >>= 8
        length -= 1
    out.write(bytes([length & 0xFF]))
    size = -(length + 120) if length < -120 else -(length + 112)
    out.write(value.to_bytes(size, "big"))


def _read_bytes(stream: io.BytesIO) -> bytes:
    return _read_exact(stream, read_vlong(stream))


def _write_bytes(out: io.BytesIO, data: bytes) -> None:
    write_vlong(out, len(data))
    out.write(data)


def _parse_writable(stream: io.BytesIO) -> List[HadoopToken]:
    tokens = []
    for _ in range(read_vlong(stream)):
        alias = _read_bytes(stream).decode()
        identifier = _read_bytes(stream)
        password = _read_bytes(stream)
        kind = _read_bytes(stream).decode()
        service = _read_bytes(stream).decode()
        tokens.append(HadoopToken(alias, identifier, password, kind, service))
    return tokens


# ---------------------------------------------------------------- protobuf

def _varint(stream: io.BytesIO) -> int:
    shift = value = 0
    while True:
        byte = _read_exact(stream, 1)[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes) -> List[Tuple[int, object]]:
    stream = io.BytesIO(data)
    fields = []
    while stream.tell() < len(data):
        key = _varint(stream)
        number, wire = key >> 3, key & 7
        if wire == 0:
            fields.append((number, _varint(stream)))
        elif wire == 2:
            fields.append((number, _read_exact(stream, _varint(stream))))
        elif wire == 1:
            fields.append((number, _read_exact(stream, 8)))
        elif wire == 5:
            fields.append((number, _read_exact(stream, 4)))
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return fields


def _parse_protobuf(stream: io.BytesIO) -> List[HadoopToken]:
    message = _read_exact(stream, _varint(stream))  # writeDelimitedTo
    tokens = []
    for number, value in _fields(message):
        if number != 1 or not isinstance(value, bytes):
            continue
        kv = dict(_fields(value))
        token = dict(_fields(kv.get(2, b""))) if isinstance(kv.get(2), bytes) else {}
        tokens.append(HadoopToken(
            alias=bytes(kv.get(1, b"")).decode(),
            identifier=bytes(token.get(1, b"")),
            password=bytes(token.get(2, b"")),
            kind=bytes(token.get(3, b"")).decode(),
            service=bytes(token.get(4, b"")).decode(),
        ))
    return tokens
