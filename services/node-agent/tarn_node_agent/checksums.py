"""HDFS file checksums recomputed over downloaded bytes, so a staged file is proven equal
to the file on HDFS.

WebHDFS answers GETFILECHECKSUM with ``{"algorithm", "bytes", "length"}``:
- ``COMPOSITE-CRC32C`` / ``COMPOSITE-CRC32`` (``dfs.checksum.combine.mode=COMPOSITE_CRC``,
  where the server honours it): the CRC of the whole file, independent of block size.
- ``MD5-of-<n>MD5-of-<b>CRC32C`` / ``...CRC32``: what Hadoop 3.4's DataNode WebHDFS handler
  returns whatever the combine mode (it calls DFSClient.getFileChecksum(path, length)).
  Per block, MD5 over the big-endian CRCs of each ``b``-byte chunk; then MD5 over the
  block MD5s as they sit in Hadoop's DataOutputBuffer, whose backing array (32 bytes,
  doubling) is hashed whole, trailing zeros included.
"""
from __future__ import annotations

import hashlib
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import crc32c as _crc32c

_MD5MD5 = re.compile(r"^MD5-of-(\d+)MD5-of-(\d+)(CRC32C|CRC32)$")
_COMPOSITE = re.compile(r"^COMPOSITE-(CRC32C|CRC32)$")
CRC_FUNCTIONS: Dict[str, Callable[..., int]] = {
    "CRC32C": _crc32c.crc32c,
    "CRC32": lambda data, value=0: zlib.crc32(data, value),
}


class UnsupportedChecksum(ValueError):
    pass


@dataclass(frozen=True)
class RemoteChecksum:
    algorithm: str
    bytes_hex: str
    length: int

    @classmethod
    def from_webhdfs(cls, payload: Dict) -> "RemoteChecksum":
        return cls(str(payload["algorithm"]), str(payload["bytes"]).lower(), int(payload["length"]))

    @property
    def label(self) -> str:
        return f"{self.algorithm}:{self.bytes_hex[: 2 * self.length]}"


class Verifier:
    def update(self, data) -> None:
        raise NotImplementedError

    def digest_hex(self) -> str:
        raise NotImplementedError


class CompositeCrcVerifier(Verifier):
    def __init__(self, kind: str) -> None:
        self._crc = CRC_FUNCTIONS[kind]
        self._value = 0

    def update(self, data) -> None:
        self._value = self._crc(data, self._value)

    def digest_hex(self) -> str:
        return f"{self._value & 0xFFFFFFFF:08x}"


class Md5Md5CrcVerifier(Verifier):
    """Streaming MD5-of-MD5-of-CRC; chunks arriving in any sizes. ``block_lengths``: the file's
    (or a range's) real block lengths, from GETFILEBLOCKLOCATIONS; blocks past them are
    ``block_size`` long. A block shorter than nominal (concat, append) ends its last CRC chunk
    early, as the DataNode's per-block checksum does."""

    def __init__(self, kind: str, bytes_per_crc: int, block_size: int = 0,
                 block_lengths: Sequence[int] = ()) -> None:
        if bytes_per_crc <= 0 or (block_size <= 0 and not block_lengths):
            raise UnsupportedChecksum(f"no block size to verify {kind} chunks of {bytes_per_crc} bytes with")
        self._crc = CRC_FUNCTIONS[kind]
        self._chunk = bytes_per_crc
        self._block_size = block_size
        self._lengths = list(block_lengths)
        self._block = self._next_length()
        self._in_block = 0
        self._block_md5 = hashlib.md5()
        self._block_digests: List[bytes] = []
        self._partial = b""
        self._slices: Dict[int, List[slice]] = {}

    def _next_length(self) -> int:
        return self._lengths.pop(0) if self._lengths else self._block_size

    def update(self, data) -> None:
        view = memoryview(data)
        while len(view):
            room = self._block - self._in_block
            if room <= 0:
                raise UnsupportedChecksum("more bytes than the file's listed blocks hold")
            chunk = min(self._chunk, room)
            if self._partial or len(view) < chunk:
                need = chunk - len(self._partial)
                self._partial += bytes(view[:need])
                view = view[need:]
                if len(self._partial) == chunk:
                    partial, self._partial = self._partial, b""
                    self._crcs(memoryview(partial))
                continue
            whole = min(len(view), room) // self._chunk * self._chunk or chunk
            self._crcs(view[:whole])
            view = view[whole:]

    def _crcs(self, view: memoryview) -> None:
        n = len(view)
        slices = self._slices.get(n)
        if slices is None:
            slices = [slice(i, i + self._chunk) for i in range(0, n, self._chunk)]
            if len(self._slices) < 8:
                self._slices[n] = slices
        values = list(map(self._crc, map(view.__getitem__, slices)))
        self._block_md5.update(struct.pack(f">{len(values)}I", *values))
        self._in_block += n
        if self._in_block >= self._block:
            self._end_block()
            self._block = self._next_length()

    def _end_block(self) -> None:
        self._block_digests.append(self._block_md5.digest())
        self._block_md5 = hashlib.md5()
        self._in_block = 0

    def block_digests(self) -> List[bytes]:
        """Ends the stream: the MD5 of each block's CRCs, in order (a range's share of the file)."""
        if self._partial:
            self._block_md5.update(struct.pack(">I", self._crc(self._partial)))
            self._in_block += len(self._partial)
            self._partial = b""
        if self._in_block:
            self._end_block()
        return list(self._block_digests)

    def digest_hex(self) -> str:
        return md5_of_block_digests(self.block_digests())


def md5_of_block_digests(digests: Sequence[bytes]) -> str:
    """The file's MD5 over its block MD5s, as Hadoop hashes its DataOutputBuffer: the backing
    array (32 bytes, doubling) whole, trailing zeros included."""
    data = b"".join(digests)
    capacity = 32
    while capacity < len(data):
        capacity *= 2
    return hashlib.md5(data + bytes(capacity - len(data))).hexdigest()


def verifier_for(remote: RemoteChecksum, block_size: int, block_lengths: Sequence[int] = ()) -> Verifier:
    composite = _COMPOSITE.match(remote.algorithm)
    if composite:
        return CompositeCrcVerifier(composite.group(1))
    md5 = _MD5MD5.match(remote.algorithm)
    if md5:
        return Md5Md5CrcVerifier(md5.group(3), int(md5.group(2)), block_size, block_lengths)
    raise UnsupportedChecksum(f"unsupported HDFS checksum algorithm {remote.algorithm!r}")


def expected_hex(remote: RemoteChecksum) -> str:
    """The part of ``bytes`` a verifier's digest is compared with."""
    raw = remote.bytes_hex[: 2 * remote.length]
    if _COMPOSITE.match(remote.algorithm):
        return raw[-8:]
    if _MD5MD5.match(remote.algorithm):
        # int bytesPerCRC, long crcPerBlock, then the 16-byte MD5.
        return raw[24:56]
    raise UnsupportedChecksum(f"unsupported HDFS checksum algorithm {remote.algorithm!r}")


def matches(remote: RemoteChecksum, verifier: Verifier) -> bool:
    return verifier.digest_hex() == expected_hex(remote)

