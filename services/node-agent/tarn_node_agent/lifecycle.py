"""The instance's lifecycle events, numbered: ``seq`` grows with each one the agent emits.

It starts from the wall clock in milliseconds, so an agent restarted in the same container
still numbers after its predecessor and a consumer never takes its events for stale ones.
"""
from __future__ import annotations

import time
from typing import Callable, List, Optional

from tarn_shared import events as ev


class Lifecycle:
    def __init__(self, deployment: str, app_id: str, instance_id: str, endpoints: ev.Endpoints,
                 clock: Callable[[], float] = time.time) -> None:
        self.deployment = deployment
        self.app_id = app_id
        self.instance_id = instance_id
        self.endpoints = endpoints
        self.state = ev.InstanceState.STARTING
        self._clock = clock
        self.seq = int(clock() * 1000)

    def _next(self) -> int:
        self.seq = max(self.seq + 1, int(self._clock() * 1000))
        return self.seq

    def _common(self, models: List[str]) -> dict:
        return dict(deployment=self.deployment, app_id=self.app_id, instance_id=self.instance_id,
                    seq=self._next(), endpoints=self.endpoints, models=list(models))

    def ready(self, models: List[str]) -> ev.InstanceReady:
        self.state = ev.InstanceState.READY
        return ev.InstanceReady(**self._common(models))

    def unready(self, models: List[str], reason: str) -> ev.InstanceUnready:
        self.state = ev.InstanceState.UNREADY
        return ev.InstanceUnready(**self._common(models), reason=reason)

    def draining(self, models: List[str], command_id: Optional[str], timeout_s: Optional[float]) -> ev.InstanceDraining:
        self.state = ev.InstanceState.DRAINING
        return ev.InstanceDraining(**self._common(models), command_id=command_id, timeout_s=timeout_s)

    def stopped(self, models: List[str], exit_code: Optional[int], reason: str) -> ev.InstanceStopped:
        self.state = ev.InstanceState.STOPPED
        return ev.InstanceStopped(**self._common(models), exit_code=exit_code, reason=reason)

    def heartbeat(self) -> ev.InstanceHeartbeat:
        return ev.InstanceHeartbeat(deployment=self.deployment, app_id=self.app_id, instance_id=self.instance_id,
                                    seq=self.seq, state=self.state, endpoints=self.endpoints)
