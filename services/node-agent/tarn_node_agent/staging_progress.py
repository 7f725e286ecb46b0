"""How far a staging is: shared with /metrics, updated by the download threads, and logged
every few seconds while files download."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

log = logging.getLogger(__name__)
PROGRESS_LOG_INTERVAL_S = 2.0


@dataclass
class StagingProgress:
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


class ProgressReporter:
    """Logs progress every few seconds from a timer thread, until ``final``."""

    def __init__(self, progress: StagingProgress) -> None:
        self._progress = progress
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stage-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(PROGRESS_LOG_INTERVAL_S):
            p = self._progress
            elapsed = max(time.monotonic() - self._started, 1e-9)
            log.info("staging progress", extra={"files_done": p.files_done, "files_total": p.files_total,
                                                "bytes_done": p.bytes_done, "bytes_total": p.bytes_total,
                                                "mb_per_s": round(p.bytes_done / 1e6 / elapsed, 1)})

    def final(self) -> None:
        self._stop.set()
        self._thread.join()
