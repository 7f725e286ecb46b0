"""One file from HDFS to a local path as parallel byte ranges (WebHDFS ``offset``/``length``),
each retried from where it stopped, the whole file verified against HDFS's checksum.

A range is one or more whole blocks: HDFS's MD5-of-MD5-of-CRC is an MD5 per block, so each
range computes its blocks' MD5s alone and the file's MD5 joins them in order. Block lengths
come from GETFILEBLOCKLOCATIONS, so files whose blocks are not all ``blockSize`` long
(concat, append) verify too. COMPOSITE-CRC checksums are one CRC over the whole file: such a
file is read as one range.
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Executor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from tarn_shared.errors import UnavailableError

from .checksums import Md5Md5CrcVerifier, RemoteChecksum, UnsupportedChecksum, Verifier, expected_hex, \
    md5_of_block_digests, verifier_for
from .errors import ChecksumMismatch, DiskFull, RepositoryNotFound, RepositoryPermissionDenied, StagingError
from .hdfs import Hdfs

log = logging.getLogger(__name__)
RANGE_ATTEMPTS = 4
RETRY_BACKOFF_S = (0.5, 1.0, 2.0)


class StagingAborted(StagingError):
    """Stopped because another file or range of the same staging failed first."""


def run_all(pool: Executor, job: Callable, items: Sequence, abort: threading.Event) -> List:
    """``job`` over ``items`` in ``pool``, results in order. The first failure sets ``abort``
    and is raised once the others stopped: the failure itself, never an abort it caused."""
    futures = [pool.submit(job, item) for item in items]
    done, not_done = wait(futures, return_when=FIRST_EXCEPTION)
    if not_done:
        abort.set()
        for future in not_done:
            future.cancel()
        wait(not_done)
    errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
    if errors:
        raise next((e for e in errors if not isinstance(e, StagingAborted)), errors[0])
    return [f.result() for f in futures]


@dataclass(frozen=True)
class ByteRange:
    offset: int
    length: int
    blocks: Tuple[int, ...] = ()  # the lengths of the whole blocks it covers, when verified


def plan_ranges(size: int, block_lengths: Sequence[int], range_bytes: int) -> List[ByteRange]:
    """Consecutive blocks grouped into ranges of at least ``range_bytes`` (the last may be
    shorter). Without block lengths (nothing to verify per block): plain ``range_bytes`` cuts."""
    if not block_lengths:
        step = max(range_bytes, 1)
        return [ByteRange(o, min(step, size - o)) for o in range(0, size, step)] or [ByteRange(0, 0)]
    if sum(block_lengths) != size:
        raise StagingError(f"the file's blocks hold {sum(block_lengths)} bytes, its length is {size}")
    ranges: List[ByteRange] = []
    offset, group = 0, []
    for length in block_lengths:
        group.append(length)
        if sum(group) >= range_bytes:
            ranges.append(ByteRange(offset, sum(group), tuple(group)))
            offset, group = offset + sum(group), []
    if group:
        ranges.append(ByteRange(offset, sum(group), tuple(group)))
    return ranges


def is_transient(exc: BaseException) -> bool:
    """Errors worth another attempt at the same range: a cut or timed-out stream, a DataNode error."""
    if isinstance(exc, (RepositoryNotFound, RepositoryPermissionDenied, DiskFull, ChecksumMismatch)):
        return False
    return isinstance(exc, (UnavailableError, StagingError))


@dataclass
class FileDownload:
    """What ``download`` needs about one file; ``progress(nbytes)`` counts bytes as they arrive."""

    remote_path: str
    size: int
    block_size: int
    remote: Optional[RemoteChecksum]  # None: not verified
    progress: Callable[[int], None]
    abort: threading.Event


def download(hdfs: Hdfs, file: FileDownload, target: Path, ranges_pool: Executor, range_bytes: int,
             sleep: Callable[[float], None] = time.sleep) -> None:
    """Writes the file to ``target`` (created; fsynced) with its ranges read in ``ranges_pool``."""
    ranges, verifiers, assumed = _plan(hdfs, file, range_bytes)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        raise _write_error(exc, target, file.remote_path) from None
    try:
        if file.size:
            _disk_call(target, file, lambda: os.ftruncate(fd, file.size))
        run_all(ranges_pool, lambda rv: read_range(hdfs, file, rv[0], fd, rv[1], target, sleep),
                list(zip(ranges, verifiers)), file.abort)
        _disk_call(target, file, lambda: os.fsync(fd))
    finally:
        os.close(fd)
    if file.remote is not None:
        _check(file, verifiers, assumed)


def nominal_blocks(size: int, block_size: int) -> List[int]:
    """The block lengths a file has when every block but the last is ``block_size`` long."""
    full, rest = divmod(size, block_size)
    return [block_size] * full + ([rest] if rest else [])


def _plan(hdfs: Hdfs, file: FileDownload, range_bytes: int) -> Tuple[List[ByteRange], List[Optional[Verifier]], bool]:
    """The ranges, their verifiers, and whether the block lengths were only assumed."""
    if file.remote is None:
        ranges = plan_ranges(file.size, (), range_bytes)
        return ranges, [None] * len(ranges), False
    try:
        if not file.remote.algorithm.startswith("MD5-of-"):
            return [ByteRange(0, file.size)], [verifier_for(file.remote, file.block_size)], False
        blocks, assumed = _block_lengths(hdfs, file) if file.size else ([], False)
        ranges = plan_ranges(file.size, blocks, range_bytes) if blocks else [ByteRange(0, file.size)]
        return ranges, [verifier_for(file.remote, file.block_size, r.blocks) for r in ranges], assumed
    except UnsupportedChecksum as exc:
        raise StagingError(f"cannot verify {file.remote_path}: {exc}") from None


def _block_lengths(hdfs: Hdfs, file: FileDownload) -> Tuple[List[int], bool]:
    try:
        return hdfs.block_lengths(file.remote_path, file.size), False
    except (RepositoryNotFound, RepositoryPermissionDenied):
        raise
    except StagingError as exc:  # a WebHDFS without GETFILEBLOCKLOCATIONS (it came with Hadoop 3.4)
        log.warning("no block locations from WebHDFS; assuming every block is blockSize long",
                    extra={"path": file.remote_path, "error": str(exc)})
        return (nominal_blocks(file.size, file.block_size) if file.block_size > 0 else []), True


def read_range(hdfs: Hdfs, file: FileDownload, byte_range: ByteRange, fd: int, verifier: Optional[Verifier],
               target: Path, sleep: Callable[[float], None] = time.sleep) -> None:
    """Reads one range into ``fd`` at its offset; after a transient error, resumes where it stopped."""
    received = 0
    for attempt in range(RANGE_ATTEMPTS):
        try:
            with hdfs.open(file.remote_path, offset=byte_range.offset + received,
                           length=byte_range.length - received) as chunks:
                for chunk in chunks:
                    if file.abort.is_set():
                        raise StagingAborted("staging aborted")
                    _disk_call(target, file, lambda c=chunk: os.pwrite(fd, c, byte_range.offset + received))
                    if verifier is not None:
                        verifier.update(chunk)
                    received += len(chunk)
                    file.progress(len(chunk))
            if received >= byte_range.length:
                break
            raise StagingError(f"{file.remote_path}: the stream ended {byte_range.length - received} bytes "
                               f"early in the range at {byte_range.offset}")
        except Exception as exc:
            if file.abort.is_set() or not is_transient(exc) or attempt == RANGE_ATTEMPTS - 1:
                raise
            log.warning("retrying a range of a staged file", extra={
                "path": file.remote_path, "offset": byte_range.offset + received, "attempt": attempt + 2,
                "error": str(exc)})
            sleep(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
    if received != byte_range.length:
        raise ChecksumMismatch(f"{file.remote_path}: received {received} bytes of the range at "
                               f"{byte_range.offset}, expected {byte_range.length}")


def _check(file: FileDownload, verifiers: Sequence[Optional[Verifier]], assumed: bool) -> None:
    remote = file.remote
    assert remote is not None
    if len(verifiers) == 1 and verifiers[0] is not None:
        got = verifiers[0].digest_hex()
    else:
        digests: List[bytes] = []
        for verifier in verifiers:
            assert isinstance(verifier, Md5Md5CrcVerifier)
            digests.extend(verifier.block_digests())
        got = md5_of_block_digests(digests)
    want = expected_hex(remote)
    if got != want:
        hint = (" (block lengths assumed from blockSize: a concatenated or appended file cannot be "
                "verified without GETFILEBLOCKLOCATIONS; rewrite it, or set verify_checksums false)") if assumed else ""
        raise ChecksumMismatch(f"{file.remote_path}: checksum {remote.algorithm} of the downloaded bytes "
                               f"is {got}, HDFS says {want}{hint}")


def _disk_call(target: Path, file: FileDownload, fn: Callable[[], object]) -> None:
    try:
        fn()
    except OSError as exc:
        raise _write_error(exc, target, file.remote_path) from None


def _write_error(exc: OSError, target: Path, remote_path: str) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"disk full: no space left in {target.parent} while writing {remote_path}")
    return StagingError(f"cannot write {target} ({remote_path}): {exc.strerror}")
