"""Pure rules about staged copies of a model repository: the manifest of what was staged and
whether it is still current (where a copy is: tarn_shared.locations). The layout rule and
the listing entries are tarn_shared.repository_layout's, shared with `tarn submit`. No I/O."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

from tarn_shared.repository_layout import RemoteEntry, checked_relative


# ---------------------------------------------------------------- manifest

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


def is_unchanged(source: str, listing: Iterable[RemoteEntry], previous: Optional[Manifest]) -> bool:
    """True when ``previous`` staged this very listing of ``source`` (paths, sizes, mtimes).
    Anything else is staged again, each file linked from the node cache when it holds it."""
    if previous is None or previous.source != source:
        return False
    return sorted(e.key() for e in previous.entries) == sorted(e.key() for e in listing)
