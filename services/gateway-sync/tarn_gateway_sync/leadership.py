"""The leader election on one Ensemble: kazoo's Lock recipe, in a thread of its own."""
from __future__ import annotations

import logging
import threading
from typing import Callable

from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from .zookeeper import Ensemble

log = logging.getLogger(__name__)


class Leadership:
    """kazoo's Lock recipe: the holder is the leader; only it writes. Runs in its own
    thread because acquiring blocks; a lost session ends the term and it queues again."""

    def __init__(self, ensemble: Ensemble, path: str, identifier: str,
                 on_change: Callable[[bool], None]) -> None:
        self.ensemble = ensemble
        self.path = path
        self.identifier = identifier
        self._on_change = on_change
        self._stop = threading.Event()
        self._elected = False
        self._lock = None
        self._thread = threading.Thread(target=self._run, name="gateway-sync-election", daemon=True)

    @property
    def is_leader(self) -> bool:
        return self._elected and not self.ensemble.lost.is_set() and self.ensemble.writable

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        lock = self._lock
        if lock is not None:
            try:
                lock.cancel()
                lock.release()
            except KazooException:
                pass
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            lock = self._lock = self.ensemble.client.Lock(self.path, self.identifier)
            try:
                acquired = lock.acquire(blocking=True)
            except (KazooException, KazooTimeoutError) as exc:
                log.warning("leader election failed; retrying", extra={"error": repr(exc)})
                self._stop.wait(1.0)
                continue
            if not acquired or self._stop.is_set():
                continue
            self._set(True)
            # A term ends when the session is lost: the lock node went with it.
            while not self._stop.is_set() and not self.ensemble.lost.wait(0.2):
                pass
            self._set(False)
            while not self._stop.is_set() and self.ensemble.lost.is_set():
                self._stop.wait(0.1)

    def _set(self, elected: bool) -> None:
        if elected != self._elected:
            self._elected = elected
            log.warning("leadership " + ("gained" if elected else "lost"), extra={"replica": self.identifier})
            self.ensemble._loop.call_soon_threadsafe(self._on_change, elected)
