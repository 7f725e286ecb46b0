"""A per-container overlay of the model repository, the one adapter that writes model files.

The repository itself is never written: on an NFS mount it is every instance's source, and
it may be read-only. The overlay mirrors it with symbolic links (Triton follows them) and
holds a real copy of each rewritten file only; the directories on a rewritten file's path
are real directories whose other entries link back to the repository.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Dict, Mapping

from .errors import StagingError


def build_overlay(repository: Path, overlay: Path, rewrites: Mapping[Path, str]) -> Path:
    """``overlay`` made anew: ``repository`` linked, with ``rewrites`` (path inside the
    repository -> text) written in place of those files. Built beside and renamed into place."""
    building = overlay.with_name(f".{overlay.name}.building-{os.getpid()}")
    try:
        shutil.rmtree(building, ignore_errors=True)
        building.parent.mkdir(parents=True, exist_ok=True)
        _mirror(repository, building, {Path(p): text for p, text in rewrites.items()})
        if overlay.is_symlink():
            overlay.unlink()
        elif overlay.exists():
            shutil.rmtree(overlay)
        building.rename(overlay)
    except OSError as exc:
        shutil.rmtree(building, ignore_errors=True)
        raise StagingError(f"cannot build the model overlay in {overlay.parent}: {exc}") from None
    return overlay


def _mirror(source: Path, target: Path, rewrites: Dict[Path, str]) -> None:
    target.mkdir()
    here = {p.parts[0] for p in rewrites}
    for entry in sorted(source.iterdir()) if source.is_dir() else []:
        if entry.name not in here:
            (target / entry.name).symlink_to(entry.absolute())
    for name in sorted(here):
        inside = {Path(*p.parts[1:]): text for p, text in rewrites.items() if p.parts[0] == name}
        if Path() in inside:
            (target / name).write_text(inside[Path()])
        else:
            _mirror(source / name, target / name, inside)
