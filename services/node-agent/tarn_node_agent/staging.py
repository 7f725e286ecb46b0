"""Staging: the model repository from HDFS into a local directory, verified, swapped in
atomically, and skipped when nothing changed since the last staging.

Layout of ``staging_dir``: ``current`` (a symlink, replaced atomically) -> ``repo-<n>``;
``manifest.json`` describes what ``current`` holds; ``.incoming-*`` are staging attempts.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .checksums import RemoteChecksum, UnsupportedChecksum, expected_hex, verifier_for
from .errors import ChecksumMismatch, DiskFull, StagingError
from .hdfs import Hdfs
from tarn_shared.repository_layout import RemoteEntry, check_layout, checked_relative

from .repository import Manifest, plan_staging

log = logging.getLogger(__name__)
CURRENT = "current"
MANIFEST = "manifest.json"
PROGRESS_LOG_INTERVAL_S = 2.0


@dataclass
class StagingProgress:
    """Shared with /metrics; updated by the download threads."""

    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    duration_s: Optional[float] = None
    skipped_unchanged: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        with self._lock:
            self.bytes_done += nbytes
            self.files_done += files


@dataclass(frozen=True)
class StagedRepository:
    path: Path  # what tritonserver is given
    models: List[str]
    downloaded_bytes: int
    duration_s: float
    unchanged: bool


def use_in_place(path: str) -> StagedRepository:
    """An absolute path (an NFS gateway mount): no copy, the same layout check."""
    root = Path(path)
    if not root.is_dir():
        raise StagingError(f"model repository {path} does not exist or is not a directory")
    entries = []
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            for name in dirnames:
                entries.append(RemoteEntry(name if rel == "." else f"{rel}/{name}", True))
            for name in filenames:
                entries.append(RemoteEntry(name if rel == "." else f"{rel}/{name}", False))
            dirnames[:] = [d for d in dirnames if rel == "."]  # two levels are all the layout needs
    except PermissionError as exc:
        raise StagingError(f"permission denied reading model repository {path}: {exc.filename}") from None
    models = check_layout(entries, path)
    return StagedRepository(root, models, 0, 0.0, True)


class Stager:
    def __init__(self, hdfs: Hdfs, staging_dir: Path, *, parallelism: int = 4, verify: bool = True,
                 progress: Optional[StagingProgress] = None,
                 disk_free: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free) -> None:
        self._hdfs = hdfs
        self._dir = staging_dir
        self._parallelism = parallelism
        self._verify = verify
        self.progress = progress or StagingProgress()
        self._disk_free = disk_free

    def stage(self, source: str, hdfs_root: str) -> StagedRepository:
        started = time.monotonic()
        self._make_dir(self._dir)
        listing = self._hdfs.list_tree(hdfs_root)
        models = check_layout(listing, source)
        previous = self._previous_manifest()
        plan = plan_staging(source, listing, previous)
        if plan.unchanged and previous is not None:
            current = (self._dir / previous.directory)
            if current.is_dir() and (self._dir / CURRENT).resolve() == current.resolve():
                duration = time.monotonic() - started
                self.progress.skipped_unchanged = True
                self.progress.duration_s = duration
                log.info("model repository unchanged; not downloaded again",
                         extra={"source": source, "files": len(listing), "duration_s": round(duration, 3)})
                return StagedRepository(current, models, 0, duration, True)
            plan = plan_staging(source, listing, None)

        needed = sum(e.size for e in plan.download)
        self.progress.files_total = len(plan.download)
        self.progress.bytes_total = needed
        free = self._disk_free(self._dir)
        if needed > free:
            raise DiskFull(f"disk full: staging {source} needs {needed} bytes, "
                           f"{self._dir} has {free} bytes free")
        incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self._dir))
        try:
            checksums = self._fill(incoming, plan, previous, hdfs_root)
            manifest = Manifest(source, "", tuple(sorted(listing, key=lambda e: e.path)), checksums)
            final = self._swap_in(incoming, manifest)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        duration = time.monotonic() - started
        self.progress.duration_s = duration
        log.info("model repository staged", extra={
            "source": source, "path": str(final), "files": len(plan.download), "reused": len(plan.reuse),
            "bytes": needed, "duration_s": round(duration, 3),
            "mb_per_s": round(needed / 1e6 / duration, 1) if duration > 0 else None})
        return StagedRepository(final, models, needed, duration, False)

    # -- steps
    def _fill(self, incoming: Path, plan, previous: Optional[Manifest], root: str) -> Dict[str, str]:
        for directory in plan.directories:
            self._make_dir(incoming / checked_relative(directory.path))
        checksums: Dict[str, str] = {}
        if previous is not None:
            old_root = self._dir / previous.directory
            for entry in plan.reuse:
                rel = checked_relative(entry.path)
                try:
                    os.link(old_root / rel, incoming / rel)
                    checksums[entry.path] = previous.checksums[entry.path]
                except OSError:
                    plan = plan.__class__(plan.unchanged, plan.download + (entry,), (), plan.directories)
        reporter = _ProgressReporter(self.progress)
        abort = threading.Event()
        try:
            with ThreadPoolExecutor(max_workers=self._parallelism, thread_name_prefix="stage") as pool:
                # Largest first, so one big file does not start last and run alone.
                ordered = sorted(plan.download, key=lambda e: -e.size)
                futures = {pool.submit(self._fetch, root, entry, incoming, abort): entry for entry in ordered}
                done, not_done = wait(futures, return_when=FIRST_EXCEPTION)
                if not_done:
                    abort.set()
                    for future in not_done:
                        future.cancel()
                errors = [f.exception() for f in done if f.exception() is not None]
                if errors:
                    raise errors[0]
                for future in done:
                    checksums[futures[future].path] = future.result()
        finally:
            reporter.final()
        return checksums

    def _fetch(self, root: str, entry: RemoteEntry, incoming: Path, abort: threading.Event) -> str:
        rel = checked_relative(entry.path)
        remote_path = f"{root.rstrip('/')}/{rel}"
        remote: Optional[RemoteChecksum] = None
        verifier = None
        if self._verify and entry.size > 0:
            remote = self._hdfs.checksum(remote_path)
            try:
                verifier = verifier_for(remote, entry.block_size)
            except UnsupportedChecksum as exc:
                raise StagingError(f"cannot verify {remote_path}: {exc}") from None
        target = incoming / rel
        received = 0
        try:
            with open(target, "wb") as out, self._hdfs.open(remote_path) as chunks:
                for chunk in chunks:
                    if abort.is_set():
                        raise StagingError("staging aborted")
                    out.write(chunk)
                    if verifier is not None:
                        verifier.update(chunk)
                    received += len(chunk)
                    self.progress.add(nbytes=len(chunk))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"disk full: no space left in {self._dir} while writing {rel}") from None
            raise StagingError(f"cannot write {target}: {exc.strerror}") from None
        if received != entry.size:
            raise ChecksumMismatch(f"{remote_path}: received {received} bytes, HDFS lists {entry.size}")
        label = f"size:{entry.size}"
        if verifier is not None and remote is not None:
            got, want = verifier.digest_hex(), expected_hex(remote)
            if got != want:
                raise ChecksumMismatch(f"{remote_path}: checksum {remote.algorithm} of the downloaded bytes "
                                       f"is {got}, HDFS says {want}")
            label = remote.label
        self.progress.add(files=1)
        return label

    def _swap_in(self, incoming: Path, manifest: Manifest) -> Path:
        final = self._dir / f"repo-{time.time_ns()}"
        incoming.rename(final)
        manifest = Manifest(manifest.source, final.name, manifest.entries, manifest.checksums)
        link = self._dir / f".{CURRENT}-{os.getpid()}"
        if link.is_symlink():
            link.unlink()
        os.symlink(final.name, link)
        self._write_json(self._dir / MANIFEST, manifest.to_json())
        os.replace(link, self._dir / CURRENT)  # the atomic swap
        self._remove_stale(keep=final.name)
        return final

    def _remove_stale(self, keep: str) -> None:
        for child in self._dir.iterdir():
            if child.name != keep and (child.name.startswith("repo-") or child.name.startswith(".incoming-")):
                shutil.rmtree(child, ignore_errors=True)

    def _previous_manifest(self) -> Optional[Manifest]:
        try:
            return Manifest.from_json(json.loads((self._dir / MANIFEST).read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, StagingError) as exc:
            log.warning("ignoring an unreadable staging manifest", extra={"error": str(exc)})
            return None

    def _write_json(self, path: Path, data: Dict) -> None:
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"disk full: cannot write {path}") from None
            raise

    def _make_dir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"disk full: cannot create {path}") from None
            raise StagingError(f"cannot create staging directory {path}: {exc.strerror}") from None


class _ProgressReporter:
    """Logs progress every few seconds from a timer thread, and once at the end."""

    def __init__(self, progress: StagingProgress) -> None:
        self._progress = progress
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stage-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(PROGRESS_LOG_INTERVAL_S):
            self._log("staging progress")

    def _log(self, message: str) -> None:
        p = self._progress
        elapsed = max(time.monotonic() - self._started, 1e-9)
        log.info(message, extra={"files_done": p.files_done, "files_total": p.files_total,
                                  "bytes_done": p.bytes_done, "bytes_total": p.bytes_total,
                                  "mb_per_s": round(p.bytes_done / 1e6 / elapsed, 1)})

    def final(self) -> None:
        self._stop.set()
        self._thread.join()
