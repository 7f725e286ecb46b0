"""The one place the instance's lifecycle events are published, each numbered by the
Lifecycle (which holds the instance's state) and carrying the models Triton last listed,
less those being unloaded (model_unloader.py: the gateways route them away first)."""
from __future__ import annotations

import logging
from typing import List, Optional, Set

from tarn_shared import events as ev
from tarn_shared.errors import UnavailableError
from tarn_shared.streams import StreamPublisher

from .lifecycle import Lifecycle

log = logging.getLogger(__name__)
PUBLISH_RETRY_S = 30.0


class Announcer:
    def __init__(self, lifecycle: Lifecycle, publisher: StreamPublisher, deployment: str) -> None:
        self.lifecycle = lifecycle
        self.models: List[str] = []
        self.withheld: Set[str] = set()
        self._publisher = publisher
        self._stream = ev.lifecycle_stream(deployment)

    @property
    def state(self) -> ev.InstanceState:
        return self.lifecycle.state

    def announced(self) -> List[str]:
        return [m for m in self.models if m not in self.withheld]

    async def ready(self) -> Optional[str]:
        return await self._publish(self.lifecycle.ready(self.announced()))

    async def unready(self, reason: str) -> Optional[str]:
        return await self._publish(self.lifecycle.unready(self.announced(), reason))

    async def draining(self, command_id: Optional[str], timeout_s: Optional[float]) -> Optional[str]:
        return await self._publish(self.lifecycle.draining(self.announced(), command_id, timeout_s))

    async def stopped(self, exit_code: Optional[int], reason: str) -> Optional[str]:
        return await self._publish(self.lifecycle.stopped(self.announced(), exit_code, reason))

    async def _publish(self, event: ev.InstanceEvent) -> Optional[str]:
        """The entry id, or None when Redis stayed down past the retry."""
        try:
            return await self._publisher.publish(self._stream, event, retry_for_s=PUBLISH_RETRY_S)
        except UnavailableError as exc:
            # Heartbeats carry the state, so the AM still learns it once Redis is back.
            log.error("lifecycle event not published", extra={"event_type": event.type, "error": str(exc)})
            return None
