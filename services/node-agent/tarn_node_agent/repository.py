"""Pure rules about model repositories: which listed paths are safe to stage, what a Triton
layout is, and whether a staged copy is still current (where one is: tarn_shared.locations).
No I/O here."""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from tarn_shared.locations import FORBIDDEN_CHARS

from .errors import LayoutError, StagingError

# Triton ignores version directories that are not a number or that start with 0.
VERSION_DIR = re.compile(r"^[1-9][0-9]*$")


def checked_relative(path: str) -> str:
    """A relative path from a listing, safe to join under the staging directory."""
    if not path or path.startswith("/") or any(c in path for c in FORBIDDEN_CHARS):
        raise StagingError(f"unsafe path in the repository listing: {path!r}")
    for component in path.split("/"):
        if component in ("", ".", ".."):
            raise StagingError(f"unsafe path in the repository listing: {path!r}")
    return path


# ---------------------------------------------------------------- listing and manifest

@dataclass(frozen=True)
class RemoteEntry:
    """One file or directory of the repository, ``path`` relative to its root."""

    path: str
    is_dir: bool
    size: int = 0
    mtime_ms: int = 0
    block_size: int = 0

    def key(self) -> Tuple:
        return (self.path, self.is_dir, self.size, self.mtime_ms)


@dataclass(frozen=True)
class Manifest:
    """What was staged: the source, the directory it went to, and per path (size, mtime, checksum)."""

    source: str
    directory: str
    entries: Tuple[RemoteEntry, ...]
    checksums: Dict[str, str]

    def to_json(self) -> Dict:
        return {
            "source": self.source,
            "directory": self.directory,
            "entries": [
                {"path": e.path, "dir": e.is_dir, "size": e.size, "mtime_ms": e.mtime_ms,
                 "checksum": self.checksums.get(e.path)}
                for e in self.entries
            ],
        }

    @classmethod
    def from_json(cls, data: Dict) -> "Manifest":
        entries = tuple(
            RemoteEntry(path=checked_relative(e["path"]), is_dir=bool(e["dir"]), size=int(e["size"]),
                        mtime_ms=int(e["mtime_ms"]))
            for e in data["entries"]
        )
        checksums = {e["path"]: e["checksum"] for e in data["entries"] if e.get("checksum")}
        return cls(source=str(data["source"]), directory=str(data["directory"]), entries=entries,
                   checksums=checksums)


@dataclass(frozen=True)
class StagingPlan:
    """``unchanged``: nothing to do. Otherwise ``download`` these files and ``reuse`` (hard-link)
    those identical in the previous copy."""

    unchanged: bool
    download: Tuple[RemoteEntry, ...]
    reuse: Tuple[RemoteEntry, ...]
    directories: Tuple[RemoteEntry, ...]


def plan_staging(source: str, listing: Iterable[RemoteEntry], previous: Optional[Manifest]) -> StagingPlan:
    entries = sorted(listing, key=lambda e: e.path)
    directories = tuple(e for e in entries if e.is_dir)
    files = [e for e in entries if not e.is_dir]
    if previous is None or previous.source != source:
        return StagingPlan(False, tuple(files), (), directories)
    known = {e.path: e.key() for e in previous.entries}
    if sorted(known.values()) == sorted(e.key() for e in entries):
        return StagingPlan(True, (), (), directories)
    reuse = tuple(f for f in files if known.get(f.path) == f.key() and f.path in previous.checksums)
    reused = {f.path for f in reuse}
    return StagingPlan(False, tuple(f for f in files if f.path not in reused), reuse, directories)


# ---------------------------------------------------------------- Triton layout

def check_layout(entries: Iterable[RemoteEntry], where: str) -> List[str]:
    """The model names of a valid Triton repository, or LayoutError naming every problem:
    each top-level entry must be a model directory with at least one numeric version directory."""
    entries = list(entries)
    tops: Dict[str, bool] = {}
    versions: Dict[str, List[str]] = {}
    for entry in entries:
        head, _, rest = entry.path.partition("/")
        if head.startswith("."):
            continue  # hidden entries (.crc files, editors' leftovers) are not models
        if not rest:
            tops[head] = entry.is_dir
            continue
        child, _, below = rest.partition("/")
        if not below and entry.is_dir and VERSION_DIR.match(child):
            versions.setdefault(head, []).append(child)
    problems = []
    if not tops:
        problems.append("it holds no model directory")
    for name, is_dir in sorted(tops.items()):
        if not is_dir:
            problems.append(f"{name!r} is a file; each top-level entry must be a model directory")
        elif name not in versions:
            problems.append(f"model {name!r} has no numeric version directory (e.g. {name}/1/)")
    if problems:
        raise LayoutError(f"invalid Triton model repository {where}: " + "; ".join(problems))
    return sorted(tops)


def relative_to(root: str, path: str) -> str:
    """``path`` below ``root`` as a relative POSIX path."""
    rel = posixpath.relpath(path, root)
    return checked_relative(rel)
