"""Notices an HAProxy that restarted or reloaded (it lost its runtime servers) and asks for a
full reconcile."""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Dict, Optional, Sequence

from tarn_shared.errors import UnavailableError

from .haproxy import RuntimeApi
from .pending import pause

log = logging.getLogger(__name__)


class RestartWatch:
    """A restarted or reloaded HAProxy (a new process identity) lost its runtime servers:
    ``on_restart`` asks for a full reconcile."""

    def __init__(self, apis: Sequence[RuntimeApi], on_restart: Callable[[], None], interval_s: float) -> None:
        self.identity: Dict[str, Optional[str]] = {}  # by address; None: unreachable
        self._apis = list(apis)
        self._on_restart = on_restart
        self._interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.look()
            await pause(stop, self._interval_s)

    async def look(self) -> None:
        for api in self._apis:
            try:
                identity: Optional[str] = await api.identity()
            except UnavailableError:
                identity = None
            before = self.identity.get(api.address, "")
            self.identity[api.address] = identity
            if identity is not None and before != "" and before != identity:
                log.warning("haproxy restarted or reloaded; reconciling", extra={"haproxy": api.address})
                self._on_restart()
