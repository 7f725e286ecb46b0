"""Pure rules about staged copies of a model repository: the manifest of what was staged and
whether it is still current (where a copy is: tarn_shared.locations). The layout rule and
the listing entries are tarn_shared.repository_layout's, shared with `tarn submit`. No I/O."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

from tarn_shared.repository_layout import RemoteEntry, checked_relative


# ---------------------------------------------------------------- manifest and plan

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
