"""Hadoop's delegation tokens: the token storage file (what YARN puts at
$HADOOP_TOKEN_FILE_LOCATION) read and written, a token's identifier read. tarn-am hands the
tokens it re-obtains to new containers in this format; the node-agent reads both.

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

A delegation token's identifier (AbstractDelegationTokenIdentifier) is a version byte (0),
Texts owner, renewer and real user, vlongs issue and max date (ms since the epoch) and vints
sequence number and master key id. The max date is the token's end: no renewal passes it.
"""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import List, Optional, Sequence, Tuple

from .errors import TarnError


class TokenFileError(TarnError):
    """Not a readable token storage file, or not a readable token."""


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

    @classmethod
    def from_url_string(cls, text: str, alias: str = "") -> "HadoopToken":
        """What WebHDFS's GETDELEGATIONTOKEN answers (``Token.urlString``)."""
        try:
            stream = io.BytesIO(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            fields = [_read_bytes(stream) for _ in range(4)]
            return cls(alias, fields[0], fields[1], fields[2].decode(), fields[3].decode())
        except (EOFError, UnicodeDecodeError, ValueError) as exc:
            raise TokenFileError(f"not a Hadoop token URL string: {exc}") from None

    def identifier_fields(self) -> Optional["DelegationIdentifier"]:
        """The identifier of a delegation token; None for another kind of token."""
        try:
            return DelegationIdentifier.parse(self.identifier)
        except (EOFError, UnicodeDecodeError, ValueError):
            return None

    def describe(self) -> str:
        ident = self.identifier_fields()
        owner = f" of {ident.owner} (sequence number {ident.sequence_number})" if ident else ""
        return f"the {self.kind} token for {self.service or '(no service)'}{owner}"

    def __repr__(self) -> str:  # never show the password
        return f"HadoopToken(alias={self.alias!r}, kind={self.kind!r}, service={self.service!r})"


@dataclass(frozen=True)
class DelegationIdentifier:
    owner: str
    renewer: str
    real_user: str
    issue_date_ms: int
    max_date_ms: int
    sequence_number: int

    @classmethod
    def parse(cls, data: bytes) -> "DelegationIdentifier":
        stream = io.BytesIO(data)
        version = _read_exact(stream, 1)[0]
        if version != 0:
            raise ValueError(f"unknown delegation token identifier version {version}")
        owner, renewer, real_user = (_read_bytes(stream).decode() for _ in range(3))
        issue, max_date, sequence = read_vlong(stream), read_vlong(stream), read_vlong(stream)
        return cls(owner, renewer, real_user, issue, max_date, sequence)


def utc_text(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def token_storage_bytes(tokens: Sequence[HadoopToken]) -> bytes:
    """A token storage file (version 0, Writable, as Hadoop writes by default) with no secrets."""
    out = io.BytesIO()
    out.write(MAGIC + b"\x00")
    write_vlong(out, len(tokens))
    for token in tokens:
        for field in (token.alias.encode(), token.identifier, token.password, token.kind.encode(),
                      token.service.encode()):
            _write_bytes(out, field)
    write_vlong(out, 0)
    return out.getvalue()


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


def select_hdfs_token(tokens: Sequence[HadoopToken], authorities: Sequence[str] = ()) -> Optional[HadoopToken]:
    """An HDFS delegation token, preferring one whose service names one of ``authorities``;
    among equals the one that lives longest (tarn-am's re-obtained one over YARN's first)."""
    candidates = sorted((t for t in tokens if t.kind in HDFS_TOKEN_KINDS), key=_max_date, reverse=True)
    for token in candidates:
        if any(a and (token.service == a or token.service.endswith(":" + a) or a in token.service)
               for a in authorities):
            return token
    return candidates[0] if candidates else None


def _max_date(token: HadoopToken) -> int:
    ident = token.identifier_fields()
    return ident.max_date_ms if ident else 0


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
