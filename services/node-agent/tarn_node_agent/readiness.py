"""Whether Triton serves. First readiness: probe with backoff; past the deadline announce
unready and keep probing. Then a probe every health interval: unready after repeated
failures, ready again (with the models Triton lists) once it answers."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from tarn_shared import events as ev

from .agent_metrics import AgentStatus
from .announcer import Announcer
from .errors import TritonError
from .settings import NodeAgentSettings
from .triton import Health, TritonApi

log = logging.getLogger(__name__)
READY_BACKOFF_S = (0.1, 2.0)
UNREADY_AFTER_FAILURES = 2


@dataclass(eq=False)
class Readiness:
    settings: NodeAgentSettings
    api: TritonApi
    announcer: Announcer
    status: AgentStatus

    async def become_ready(self) -> None:
        """Returns once Triton is ready and that is announced."""
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.ready_timeout_s
        delay = READY_BACKOFF_S[0]
        while True:
            health = await self.api.health()
            if health is Health.READY:
                break
            if loop.time() >= deadline:
                if self.announcer.state != ev.InstanceState.UNREADY:
                    await self.announcer.unready(
                        f"tritonserver not ready within {s.ready_timeout_s:g} s ({health.value})")
                delay = s.health_interval_s
            await asyncio.sleep(delay)
            delay = min(delay * 2, READY_BACKOFF_S[1])
        await self.announce_ready()

    async def announce_ready(self) -> None:
        """Ready, with the models Triton lists now (also after a load or an unload)."""
        try:
            self.announcer.models = await self.api.ready_models()
        except TritonError as exc:
            log.warning("cannot list Triton's models", extra={"error": str(exc)})
        self.status.triton_up = True
        await self.announcer.ready()
        log.info("instance ready", extra={"models": self.announcer.models,
                                          "host": self.announcer.lifecycle.endpoints.host})

    async def monitor(self) -> None:
        """Until the instance drains or stops."""
        failures = 0
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            if self.announcer.state in (ev.InstanceState.DRAINING, ev.InstanceState.STOPPED):
                return
            health = await self.api.health()
            if health is Health.READY:
                failures = 0
                if self.announcer.state == ev.InstanceState.UNREADY:
                    await self.announce_ready()
                continue
            failures += 1
            self.status.triton_up = False
            if failures >= UNREADY_AFTER_FAILURES and self.announcer.state == ev.InstanceState.READY:
                await self.announcer.unready(f"tritonserver {health.value}")
