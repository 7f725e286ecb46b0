"""What a Triton model repository looks like: one rule for `tarn submit`'s check and the
node-agent's staging, so a repository submit accepts is one every container accepts.

Which listed paths are safe, how a WebHDFS FileStatus reads as an entry, and whether a
listing is a valid layout. Pure: no I/O.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Tuple

from .errors import TarnError
from .locations import FORBIDDEN_CHARS

# Triton ignores version directories that are not a number or that start with 0.
VERSION_DIR = re.compile(r"^[1-9][0-9]*$")
# Model directories and their version directories: all the layout rule reads.
LAYOUT_DEPTH = 2


class RepositoryError(TarnError):
    """The model repository cannot be used (listed, staged, read); the message says why and where."""


class LayoutError(RepositoryError):
    """The repository is not a Triton model repository."""


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


def checked_relative(path: str) -> str:
    """A relative path from a listing, safe to join under a staging directory."""
    if not path or path.startswith("/") or any(c in path for c in FORBIDDEN_CHARS):
        raise RepositoryError(f"unsafe path in the repository listing: {path!r}")
    for component in path.split("/"):
        if component in ("", ".", ".."):
            raise RepositoryError(f"unsafe path in the repository listing: {path!r}")
    return path


def relative_to(root: str, path: str) -> str:
    """``path`` below ``root`` as a relative POSIX path."""
    return checked_relative(posixpath.relpath(path, root))


def entry_from_status(relative: str, status: Mapping) -> RemoteEntry:
    """A WebHDFS FileStatus (LISTSTATUS / GETFILESTATUS) as an entry at ``relative``."""
    mtime_ms = int(status.get("modificationTime") or 0)
    if status.get("type") == "DIRECTORY":
        return RemoteEntry(relative, True, 0, mtime_ms)
    return RemoteEntry(relative, False, int(status.get("length") or 0), mtime_ms,
                       int(status.get("blockSize") or 0))


def is_hidden(name: str) -> bool:
    """Hidden entries (.crc files, editors' leftovers) are not models."""
    return name.startswith(".")


def layout_problems(entries: Iterable[RemoteEntry]) -> Tuple[List[str], List[str]]:
    """(model names, problems): each top-level entry must be a model directory with at least
    one numeric version directory. Reads the top two levels only."""
    tops: Dict[str, bool] = {}
    versions: Dict[str, List[str]] = {}
    for entry in entries:
        head, _, rest = entry.path.partition("/")
        if is_hidden(head):
            continue
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
    return sorted(tops), problems


def check_layout(entries: Iterable[RemoteEntry], where: str) -> List[str]:
    """The model names of a valid Triton repository, or LayoutError naming every problem."""
    models, problems = layout_problems(entries)
    if problems:
        raise LayoutError(f"invalid Triton model repository {where}: " + "; ".join(problems))
    return models
