"""The one adapter to /proc for memory: the resident memory of Triton's process group
(tritonserver runs in a session of its own; the python backend's stub processes join its
group), read from each process's ``stat``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def group_rss_bytes(pgid: Optional[int], proc: Path = Path("/proc")) -> Optional[int]:
    """Sum of RSS over the live processes of group ``pgid``; None when it has none or /proc
    cannot be read (not Linux)."""
    if pgid is None:
        return None
    total, found = 0, False
    try:
        entries = [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        # "pid (comm) state ppid pgrp ..." -- comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 21 and int(fields[2]) == pgid:
            total += int(fields[21]) * _PAGE_BYTES
            found = True
    return total if found else None
