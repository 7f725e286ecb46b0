"""Gateway demand for models (``--placement per-model``): the ModelDemanded events gateway-sync
publishes while a request waits at HAProxy for a model with no usable copy (scaled to zero).
Kept per model as the time tarn-am received the newest one, bounded; model_scaling.wake
turns a fresh one for a model at 0 copies into one copy."""
from __future__ import annotations

from typing import Dict

from tarn_shared import events as ev

MAX_DEMANDED = 1_000  # models remembered (a plan's models are far fewer; a flood of names stays bounded)
DEMAND_REPLAY_S = 300.0  # a ModelDemanded older than this (by its own clock) is history, not demand


class ModelDemands:
    def __init__(self) -> None:
        self.received: Dict[str, float] = {}  # model -> when tarn-am got its newest ModelDemanded

    def apply(self, event: ev.Event, now: float) -> None:
        """A lifecycle event; only ModelDemanded counts."""
        if not isinstance(event, ev.ModelDemanded) or now - event.ts > DEMAND_REPLAY_S:
            return
        # Timed by tarn-am's clock: the gateway's may differ from it.
        if event.model not in self.received and len(self.received) >= MAX_DEMANDED:
            del self.received[min(self.received, key=self.received.__getitem__)]  # the oldest goes
        self.received[event.model] = now
