"""The node cache: staged files kept on the node, outside YARN's container directories, so a
replacement container (or another deployment) on the node links them instead of downloading.

Layout of the cache directory:
- ``objects/<k[:2]>/<k>``: one file per content key ``k`` = sha256 of (HDFS path, length,
  checksum). Written as ``.partial-*`` beside it and renamed into place once complete and
  verified, so a partial file is never visible under its key.
- ``locks/<k>``: flock(2) lock files; a key's holder downloads it, the others wait, then link.
- ``checksums/<m>``: the checksum label HDFS gave for (path, length, mtime), so an unchanged
  repository restages from its listing alone, without one GETFILECHECKSUM per file.

Containers get hard links (a view), never the cache's own names: YARN deleting a container
directory drops its links, and an object with no link but its own (st_nlink == 1) is
unused. Eviction removes unused objects, least recently used first, under the size cap.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

from .errors import DiskFull, StagingError

log = logging.getLogger(__name__)
STALE_PARTIAL_S = 3600.0  # a partial untouched this long belongs to a writer that died
MEMO_TTL_S = 30 * 86400.0  # a remembered checksum not used for this long is forgotten


@dataclass(frozen=True)
class CachedObject:
    key: str
    path: Path
    size: int
    last_used: float
    in_use: bool  # linked into a view


def node_cache_dir(staging_dir: Path, local_dirs: Optional[str],
                   same_filesystem: Optional[Callable[[Path, Path], bool]] = None) -> Path:
    """The default cache: ``<NodeManager local dir>/usercache/<user>/tarn-cache``, beside the
    application directories YARN deletes ($LOCAL_DIRS lists ``.../usercache/<user>/appcache/<app>``),
    on the disk that holds ``staging_dir`` (hard links need one filesystem). Outside YARN, or
    where that directory is not the application directory's filesystem (a Docker container,
    which sees only its mounts): ``<staging_dir>/.cache``, which lasts as long as the staging
    directory."""
    same = same_filesystem or _same_filesystem
    app_dirs = [Path(d) for d in (local_dirs or "").split(",") if d and Path(d).parent.name == "appcache"]
    chosen = next((d for d in app_dirs if staging_dir.is_relative_to(d)), app_dirs[0] if app_dirs else None)
    if chosen is None or not same(chosen.parent.parent, chosen):
        return staging_dir / ".cache"
    return chosen.parent.parent / "tarn-cache"


def _same_filesystem(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def content_key(hdfs_path: str, size: int, checksum: str) -> str:
    return hashlib.sha256(f"{hdfs_path}\0{size}\0{checksum}".encode()).hexdigest()


def eviction_order(objects: List[CachedObject], max_bytes: int, incoming_bytes: int) -> List[CachedObject]:
    """The unused objects to remove, least recently used first, so that what stays plus
    ``incoming_bytes`` fits under ``max_bytes`` (as near as unused objects allow)."""
    excess = sum(o.size for o in objects) + incoming_bytes - max_bytes
    chosen: List[CachedObject] = []
    for candidate in sorted((o for o in objects if not o.in_use), key=lambda o: o.last_used):
        if excess <= 0:
            break
        chosen.append(candidate)
        excess -= candidate.size
    return chosen


class NodeCache:
    def __init__(self, root: Path, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._clock = clock
        for sub in ("objects", "locks", "checksums"):
            make_dir(root / sub)

    def object_path(self, key: str) -> Path:
        return self.root / "objects" / key[:2] / key

    # -- checksum memo
    def remembered_checksum(self, hdfs_path: str, size: int, mtime_ms: int) -> Optional[str]:
        path = self._memo(hdfs_path, size, mtime_ms)
        try:
            label = path.read_text() or None
            now = self._clock()
            os.utime(path, (now, now))  # still in use: kept by the pruning in make_room
            return label
        except OSError:
            return None

    def remember_checksum(self, hdfs_path: str, size: int, mtime_ms: int, label: str) -> None:
        path = self._memo(hdfs_path, size, mtime_ms)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        try:
            tmp.write_text(label)
            os.replace(tmp, path)
        except OSError as exc:  # only a lost shortcut: the next staging asks HDFS again
            log.warning("cannot remember a checksum in the node cache", extra={"error": str(exc)})

    def _memo(self, hdfs_path: str, size: int, mtime_ms: int) -> Path:
        return self.root / "checksums" / hashlib.sha256(f"{hdfs_path}\0{size}\0{mtime_ms}".encode()).hexdigest()

    # -- objects
    def link_into(self, key: str, size: int, target: Path) -> bool:
        """Hard-links the object into ``target`` if the cache holds it complete."""
        with self._locked(key):
            return self._link_if_present(key, size, target)

    def fill(self, key: str, size: int, target: Path, write: Callable[[Path], None]) -> bool:
        """Links the object into ``target``, first downloading it with ``write(partial)`` unless
        another container did while this one waited for the key's lock. True if written here."""
        with self._locked(key):
            if self._link_if_present(key, size, target):
                return False
            final = self.object_path(key)
            make_dir(final.parent)
            partial = final.with_name(f".partial-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            try:
                write(partial)
                os.chmod(partial, 0o444)  # views share the inode: nothing may write through them
                os.replace(partial, final)
            except OSError as exc:
                raise StagingError(f"cannot publish {final} in the node cache: {exc.strerror}") from None
            finally:
                if partial.exists():
                    partial.unlink()
            self._link_if_present(key, size, target)
            return True

    def _link_if_present(self, key: str, size: int, target: Path) -> bool:
        path = self.object_path(key)
        try:
            if path.stat().st_size != size:  # cut short by a crash: not the object
                path.unlink()
                return False
            os.link(path, target)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise StagingError(f"the node cache {self.root} and the staging directory {target.parent} "
                                   "must be on one filesystem (staged files are hard links)") from None
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"disk full: no space left to link {target}") from None
            raise StagingError(f"cannot link {path} to {target}: {exc.strerror}") from None
        now = self._clock()
        os.utime(path, (now, now))  # the LRU clock: last use
        return True

    @contextmanager
    def _locked(self, key: str, blocking: bool = True) -> Iterator[bool]:
        try:
            fd = os.open(self.root / "locks" / key, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"disk full: no space left for a lock file in {self.root}") from None
            raise StagingError(f"cannot lock in the node cache {self.root}: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock

    # -- eviction
    def objects(self) -> List[CachedObject]:
        found = []
        for path in (self.root / "objects").glob("*/*"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if path.name.startswith(".partial-"):
                if self._clock() - st.st_mtime > STALE_PARTIAL_S:
                    path.unlink(missing_ok=True)
                continue
            found.append(CachedObject(path.name, path, st.st_size, st.st_mtime, st.st_nlink > 1))
        return found

    def make_room(self, incoming_bytes: int) -> Tuple[int, int]:
        """Evicts unused objects until ``incoming_bytes`` more fit under the cap; returns
        (objects evicted, bytes freed). One evictor at a time; the others skip."""
        with self._locked(".evict", blocking=False) as mine:
            if not mine:
                return 0, 0
            evicted = freed = 0
            for candidate in eviction_order(self.objects(), self.max_bytes, incoming_bytes):
                with self._locked(candidate.key, blocking=False) as held:
                    # Re-checked under the key's lock: a view may have linked it meanwhile.
                    if not held or _links(candidate.path) != 1:
                        continue
                    candidate.path.unlink(missing_ok=True)
                    (self.root / "locks" / candidate.key).unlink(missing_ok=True)
                    evicted += 1
                    freed += candidate.size
            self._forget_unused_checksums()
            if evicted:
                log.info("node cache evicted least recently used files",
                         extra={"cache": str(self.root), "files": evicted, "bytes": freed})
            return evicted, freed

    def _forget_unused_checksums(self) -> None:
        for memo in (self.root / "checksums").iterdir():
            try:
                if self._clock() - memo.stat().st_mtime > MEMO_TTL_S:
                    memo.unlink()
            except FileNotFoundError:
                continue


def _links(path: Path) -> int:
    try:
        return path.stat().st_nlink
    except FileNotFoundError:
        return 0


def make_dir(path: Path, what: str = "the node cache directory") -> None:
    """``path`` and its parents; a full disk is DiskFull, any other failure a StagingError."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"disk full: no space left to create {path}") from None
        raise StagingError(f"cannot create {what} {path}: {exc.strerror}") from None
