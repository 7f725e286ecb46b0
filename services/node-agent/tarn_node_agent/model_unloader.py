"""An unload that loses no request: announce the instance ready without the model, follow
what gateway-sync says of it (``model.unrouted``: how many requests HAProxy still holds for
it here) and Triton's metrics until model_unload.py says go, then unload through Triton's
repository API. The model stays out of this instance's announcements until it is loaded
again, also when the wait timed out."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Dict, Optional, Set, Tuple

from redis.asyncio import Redis

from tarn_shared import events as ev

from .announcer import Announcer
from .errors import TritonError
from .lifecycle_watch import lifecycle_events
from .model_loads import ModelLoads
from .model_unload import NOT_ROUTED, TIMEOUT, UnloadWait, unload_step
from .settings import NodeAgentSettings
from .telemetry import MetricsParseError, parse_triton_metrics
from .triton import TritonApi

log = logging.getLogger(__name__)
POLL_S = 0.25


@dataclass(eq=False)
class ModelUnloader:
    settings: NodeAgentSettings
    api: TritonApi
    loads: ModelLoads
    announcer: Announcer
    redis: Redis
    outcomes: Dict[str, int] = field(default_factory=dict)  # unloads by how their wait ended, for /metrics
    _gateway_known: bool = field(default=False, init=False)  # gateway-sync answered an unload before
    _words: Dict[str, Optional[int]] = field(default_factory=dict, init=False)  # model -> latest count

    async def unload(self, model: str) -> Tuple[ev.ModelOnInstance, str]:
        """The model's state and how its wait ended; TritonError when Triton refuses the
        unload (the model is then announced again: it is still there)."""
        s = self.settings
        loop = asyncio.get_running_loop()
        routed = self.announcer.state == ev.InstanceState.READY  # else the gateways already left it
        self.announcer.withheld.add(model)
        entry = await self.announcer.ready() if routed else None
        self._words[model] = None
        watcher = asyncio.create_task(self._watch_gateway_sync(entry or "$", {model}))
        state = UnloadWait(model=model, started_at=loop.time(), timeout_s=s.model_unload_timeout_s,
                           first_word_s=min(s.model_unrouted_wait_s, s.model_unload_timeout_s),
                           gateway_known=self._gateway_known, gateways_done=None if routed else NOT_ROUTED)
        try:
            while True:
                snapshot = None
                try:
                    snapshot = parse_triton_metrics(await self.api.metrics_text())
                except (TritonError, MetricsParseError):
                    pass
                decision, state = unload_step(state, loop.time(), open_requests=self._words.get(model),
                                              snapshot=snapshot)
                if decision.go:
                    break
                await asyncio.sleep(POLL_S)
        finally:
            watcher.cancel()
            self._words.pop(model, None)
        self.outcomes[decision.outcome] = self.outcomes.get(decision.outcome, 0) + 1
        (log.warning if decision.outcome == TIMEOUT else log.info)(
            "unloading", extra={"model": model, "outcome": decision.outcome, "reason": decision.reason})
        try:
            return await self.loads.unload(model), decision.reason
        except TritonError:
            self.announcer.withheld.discard(model)
            raise

    def loaded(self, model: str) -> None:
        """A load of ``model`` succeeded: announce it again."""
        self.announcer.withheld.discard(model)

    async def _watch_gateway_sync(self, after_id: str, models: Set[str]) -> None:
        """gateway-sync's ModelUnrouted events for this instance, read after our announcement
        without the model. A plain XREAD, like the drain's: a bounded wait for replies."""
        async for event in lifecycle_events(self.redis, self.settings.deployment, after_id):
            if (isinstance(event, ev.ModelUnrouted) and event.model in models
                    and event.instance_id == self.settings.container_id):
                self._gateway_known = True
                self._words[event.model] = event.open_requests
