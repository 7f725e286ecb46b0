"""Staging: the model repository from HDFS into a local directory, verified, swapped in
atomically, and skipped when nothing changed since the last staging.

Files come from the node cache (node_cache.py), which outlives containers: each is linked from
there when the node already holds it, else downloaded into it (transfer.py: parallel byte
ranges, verified) and then linked. Layout of ``staging_dir``, this container's view:
``current`` (a symlink, replaced atomically) -> ``repo-<n>`` (directories of hard links);
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
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from tarn_shared.repository_layout import RemoteEntry, check_layout, checked_relative

from .node_cache import NodeCache, content_key, make_dir
from .checksums import RemoteChecksum
from .errors import DiskFull, StagingError
from .hdfs import Hdfs
from .repository import Manifest, is_unchanged
from .staging_progress import ProgressReporter, StagingProgress
from .transfer import FileDownload, download, run_all

__all__ = ["CURRENT", "StagedRepository", "Stager", "StagingProgress", "use_in_place"]
log = logging.getLogger(__name__)
CURRENT = "current"
MANIFEST = "manifest.json"
RANGE_BYTES = 128 << 20
DEFAULT_CACHE_BYTES = 100 << 30


@dataclass(frozen=True)
class StagedRepository:
    path: Path  # what tritonserver is given
    models: List[str]
    downloaded_bytes: int
    duration_s: float
    unchanged: bool
    cached_files: int = 0  # linked from the node cache, not downloaded


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
    def __init__(self, hdfs: Hdfs, staging_dir: Path, *, cache: Optional[NodeCache] = None, parallelism: int = 4,
                 verify: bool = True, progress: Optional[StagingProgress] = None, range_bytes: int = RANGE_BYTES,
                 disk_free: Callable[[Path], int] = lambda p: shutil.disk_usage(p).free) -> None:
        self._hdfs = hdfs
        self._dir = staging_dir
        self._cache = cache
        self._parallelism = parallelism
        self._verify = verify
        self.progress = progress or StagingProgress()
        self._range_bytes = range_bytes
        self._disk_free = disk_free
        self._abort = threading.Event()

    def stage(self, source: str, hdfs_root: str) -> StagedRepository:
        started = time.monotonic()
        make_dir(self._dir, "staging directory")
        cache = self._cache or NodeCache(self._dir / ".cache", DEFAULT_CACHE_BYTES)
        listing = self._hdfs.list_tree(hdfs_root)
        models = check_layout(listing, source)
        previous = self._previous_manifest()
        if is_unchanged(source, listing, previous) and previous is not None:
            current = self._dir / previous.directory
            if current.is_dir() and (self._dir / CURRENT).resolve() == current.resolve():
                duration = time.monotonic() - started
                self.progress.skipped_unchanged = True
                self.progress.duration_s = duration
                log.info("model repository unchanged; not downloaded again",
                         extra={"source": source, "files": len(listing), "duration_s": round(duration, 3)})
                return StagedRepository(current, models, 0, duration, True, sum(not e.is_dir for e in listing))
        try:
            incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self._dir))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"disk full: no space left to create a directory in {self._dir}") from None
            raise StagingError(f"cannot create a directory in {self._dir}: {exc.strerror}") from None
        self._abort.clear()
        reporter = ProgressReporter(self.progress)
        try:
            for directory in (e for e in listing if e.is_dir):
                make_dir(incoming / checked_relative(directory.path), "staging directory")
            files = sorted((e for e in listing if not e.is_dir), key=lambda e: -e.size)  # big ones start first
            with ThreadPoolExecutor(self._parallelism, "stage-file") as files_pool, \
                    ThreadPoolExecutor(self._parallelism, "stage-range") as ranges_pool:
                linked = self._parallel(files_pool, lambda e: self._link_cached(cache, source, hdfs_root, e, incoming),
                                        files)
                missing = [(e, remote) for e, (label, remote) in zip(files, linked) if label is None]
                needed = sum(e.size for e, _ in missing)
                self.progress.files_total, self.progress.bytes_total = len(missing), needed
                self._make_room(cache, source, needed)
                fetched = self._parallel(files_pool, lambda item: self._fetch(
                    cache, source, hdfs_root, item[0], item[1], incoming, ranges_pool), missing)
            labels = {e.path: label for e, (label, _) in zip(files, linked) if label is not None}
            labels.update({e.path: label for (e, _), label in zip(missing, fetched)})
            manifest = Manifest(source, "", tuple(sorted(listing, key=lambda e: e.path)), labels)
            final = self._swap_in(incoming, manifest)
        except BaseException:
            self._abort.set()
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        finally:
            reporter.final()
        duration = time.monotonic() - started
        self.progress.duration_s = duration
        log.info("model repository staged", extra={
            "source": source, "path": str(final), "files": len(files), "downloaded": len(missing),
            "from_cache": len(files) - len(missing), "bytes": needed, "cache": str(cache.root),
            "duration_s": round(duration, 3), "mb_per_s": round(needed / 1e6 / duration, 1) if duration > 0 else None})
        return StagedRepository(final, models, needed, duration, False, len(files) - len(missing))

    # -- steps
    def _parallel(self, pool: Executor, job: Callable, items: List) -> List:
        return run_all(pool, job, items, self._abort)

    def _link_cached(self, cache: NodeCache, source: str, root: str, entry: RemoteEntry,
                     incoming: Path) -> Tuple[Optional[str], Optional[RemoteChecksum]]:
        """(label, None) when linked from the cache (or empty), else (None, the checksum if read)."""
        rel = checked_relative(entry.path)
        if entry.size == 0:
            self._write_empty(incoming / rel)
            return "size:0", None
        key_path = _join(source, rel)
        label = cache.remembered_checksum(key_path, entry.size, entry.mtime_ms)
        remote = None
        if label is None:
            remote, label = self._label(_join(root, rel), entry)
            cache.remember_checksum(key_path, entry.size, entry.mtime_ms, label)
        if cache.link_into(content_key(key_path, entry.size, label), entry.size, incoming / rel):
            return label, None
        return None, remote

    def _label(self, remote_path: str, entry: RemoteEntry) -> Tuple[Optional[RemoteChecksum], str]:
        """HDFS's checksum of the file and its label, or unverified, a label of size and mtime."""
        if not self._verify:
            return None, f"size:{entry.size}:mtime:{entry.mtime_ms}"
        remote = self._hdfs.checksum(remote_path)
        return remote, remote.label

    def _make_room(self, cache: NodeCache, source: str, needed: int) -> None:
        cache.make_room(needed)
        free = self._disk_free(cache.root)
        if needed > free:
            raise DiskFull(f"disk full: staging {source} needs {needed} bytes, {cache.root} has {free} bytes free")

    def _fetch(self, cache: NodeCache, source: str, root: str, entry: RemoteEntry, remote: Optional[RemoteChecksum],
               incoming: Path, ranges_pool: Executor) -> str:
        rel = checked_relative(entry.path)
        remote_path, key_path = _join(root, rel), _join(source, rel)
        if remote is None:  # the label was remembered (or is unverified): the download needs HDFS's word
            remote, label = self._label(remote_path, entry)
            cache.remember_checksum(key_path, entry.size, entry.mtime_ms, label)
        else:
            label = remote.label
        file = FileDownload(remote_path, entry.size, entry.block_size, remote,
                            lambda n: self.progress.add(nbytes=n), self._abort)
        cache.fill(content_key(key_path, entry.size, label), entry.size, incoming / rel,
                   lambda partial: download(self._hdfs, file, partial, ranges_pool, self._range_bytes))
        self.progress.add(files=1)
        return label

    def _write_empty(self, path: Path) -> None:
        try:
            path.touch()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"disk full: no space left to create {path}") from None
            raise StagingError(f"cannot create {path}: {exc.strerror}") from None

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
                raise DiskFull(f"disk full: no space left to write {path}") from None
            raise


def _join(root: str, relative: str) -> str:
    return f"{root.rstrip('/')}/{relative}"
