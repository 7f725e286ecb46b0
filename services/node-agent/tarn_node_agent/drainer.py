"""One drain carried out: announce draining, follow what gateway-sync says of the instance
(unrouted, then the requests HAProxy still holds for it) and Triton's metrics, until drain.py
says stop. The caller stops Triton."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable, Optional

from redis.asyncio import Redis

from tarn_shared import events as ev

from .announcer import Announcer
from .drain import DrainState, drain_step, with_deadline
from .errors import TritonError
from .lifecycle_watch import lifecycle_events
from .settings import NodeAgentSettings
from .telemetry import MetricsParseError, parse_triton_metrics
from .triton import TritonApi, TritonProcess

log = logging.getLogger(__name__)
DRAIN_POLL_S = 0.25


@dataclass
class GatewayWord:
    """What gateway-sync said of this instance since its draining entry."""

    unrouted: bool = False
    open_requests: Optional[int] = None


@dataclass(eq=False)
class Drainer:
    settings: NodeAgentSettings
    api: TritonApi
    process: TritonProcess
    announcer: Announcer
    redis: Redis

    async def run(self, command_id: Optional[str], timeout_s: float,
                  deadline: Callable[[], Optional[float]] = lambda: None) -> str:
        """Why the drain ended. ``deadline``: the loop time it must end by (SIGTERM's), if any."""
        loop = asyncio.get_running_loop()
        entry = await self.announcer.draining(command_id, timeout_s)
        word = GatewayWord()
        watcher = asyncio.create_task(self._watch_gateway_sync(entry or "$", word))
        state = DrainState(started_at=loop.time(), timeout_s=timeout_s,
                           unrouted_timeout_s=min(self.settings.drain_unrouted_timeout_s, timeout_s))
        try:
            while True:
                cap = deadline()
                if cap is not None:
                    state = with_deadline(state, cap)
                snapshot = None
                try:
                    snapshot = parse_triton_metrics(await self.api.metrics_text())
                except (TritonError, MetricsParseError):
                    pass
                decision, state = drain_step(state, loop.time(), unrouted_seen=word.unrouted,
                                             open_requests=word.open_requests, snapshot=snapshot)
                if decision.stop:
                    return decision.reason
                if self.process.exit_code() is not None:
                    return "tritonserver exited while draining"
                await asyncio.sleep(DRAIN_POLL_S)
        finally:
            watcher.cancel()

    async def _watch_gateway_sync(self, after_id: str, word: GatewayWord) -> None:
        """gateway-sync's InstanceUnrouted events for this instance, read after our draining
        entry: the first says no new request comes, each later one how many are still open.
        A plain XREAD: a bounded wait for replies, not a consumer of the stream."""
        async for event in lifecycle_events(self.redis, self.settings.deployment, after_id):
            if isinstance(event, ev.InstanceUnrouted) and event.instance_id == self.settings.container_id:
                if not word.unrouted:
                    log.info("gateway-sync confirmed the instance unrouted")
                word.unrouted = True
                if event.open_requests is not None:
                    word.open_requests = event.open_requests
