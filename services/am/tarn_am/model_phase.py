"""The control loop's placement phase in ``--placement per-model`` (in place of the fleet-wide
autoscaler): gathers model_round's inputs from the view, sends its load and unload
commands through the bus, keeps what it decided for /api/state. The decision is model_round's."""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Collection, Dict, FrozenSet, List, Optional, Tuple

from tarn_shared import events as ev
from tarn_shared.errors import ConfigError

from . import target as tg
from .autoscale import Autoscaler
from .bus import RedisBus
from .model_commands import LOAD, CommandBook, Send
from .model_copies import ModelPlan
from .model_copies_store import CopiesStore
from .model_demand import ModelDemands
from .model_placement import Consolidation
from .model_round import FleetInputs, ModelLine, ModelRound, plan_round
from .model_scaling import ScalingMemory
from .settings import AmSettings
from .view import FleetView
from .yarn import YarnAdapter

log = logging.getLogger("tarn_am.controller")


@dataclass
class Policy:
    """What moves the target: the fleet-wide autoscaler, or in --placement per-model the model
    placer in its place."""

    autoscaler: Autoscaler
    models: Optional["ModelPlacer"] = None


def placer_for(settings: AmSettings, bus: RedisBus, yarn: YarnAdapter) -> Optional["ModelPlacer"]:
    """In --placement per-model, the placer, keeping operators' copies in skein's store and Redis."""
    return ModelPlacer(settings, bus, yarn.app_id, CopiesStore(yarn, bus)) if settings.placement == "per-model" \
        else None


class ModelPlacer:
    def __init__(self, settings: AmSettings, bus: RedisBus, app_id: str,
                 store: Optional[CopiesStore] = None) -> None:
        if settings.model_plan is None:
            raise ConfigError("TARN_AM_PLACEMENT per-model needs TARN_AM_MODEL_PLAN (tarn submit --models)")
        self.settings = settings
        self.plan: ModelPlan = settings.model_plan
        self.bus = bus
        self.app_id = app_id
        self.book = CommandBook()
        self.wanted: Dict[str, int] = {}  # operators' copies (POST /model-copies), within min/max
        self.last: Optional[ModelRound] = None
        self.store = store
        self.restored = store is None  # a previous tarn-am's copies are read before the first round
        self.scaling = ScalingMemory()  # per-model scaling's windows, across rounds
        self.demands = ModelDemands()  # the gateways' ModelDemanded, fed by the lifecycle consumer

    async def set_copies(self, model: str, copies: int) -> int:
        """Stored before it is answered, so a restarted tarn-am keeps it."""
        target = self.plan.target_for(model)
        if target is None:
            raise tg.Refusal(f"model {model!r} is not one of this deployment's models")
        if not target.min_copies <= copies <= target.max_copies:
            raise tg.Refusal(f"model {model!r}: copies must be within {target.min_copies}..{target.max_copies}")
        await self.restore()  # else storing this one would forget the others a previous tarn-am kept
        wanted = {**self.wanted, model: copies}
        if self.store is not None:
            await self.store.store(wanted)
        self.wanted = wanted
        return copies

    async def restore(self) -> None:
        """Take the copies a previous tarn-am stored, once; counts set since in this process win."""
        if self.restored:
            return
        stored = await self.store.restored()
        if stored is None:  # neither skein's store nor Redis could say: asked again next round
            return
        kept = {m: c for m, c in stored.items() if self.plan.target_for(m) is not None}
        self.wanted = {**kept, **self.wanted}
        self.restored = True
        if kept:
            log.info("model copies kept from the previous tarn-am", extra={"copies": kept})

    def release_first(self) -> FrozenSet[str]:
        """The instances placement emptied to release: the ones a scale-down drains first."""
        return frozenset(self.last.placement.release) if self.last else frozenset()

    def lines(self) -> List[ModelLine]:
        return list(self.last.lines) if self.last else []

    def inputs(self, view: FleetView, draining: Collection[str], desired: int) -> FleetInputs:
        node_of = {}
        for member in view.membership.routable().values():
            if member.instance_id in draining:
                continue
            container = view.container_for(member.instance_id)
            node_of[member.instance_id] = container.host if container and container.host else member.endpoints.host
        # Each instance's latest sample, however old: a stale one still says what it holds.
        samples = [t.sample for i, t in view.telemetry.items() if i in node_of]
        # Demand for models not in the plan is dropped here: an unknown model is never loaded.
        demanded = {m: t for m, t in self.demands.received.items() if self.plan.target_for(m) is not None}
        return FleetInputs(samples, node_of, view.acks, view.live_instances(), desired,
                           self.settings.container_memory_mb << 20, 3 * self.settings.telemetry_interval_s,
                           demanded)

    async def step(self, view: FleetView, draining: Collection[str], desired: int,
                   now: float) -> Tuple[int, str]:
        """Sends this round's commands; returns the instance count placement asks for, and why."""
        s = self.settings
        await self.restore()
        decided = plan_round(self.plan, self.inputs(view, draining, desired), self.wanted, self.book,
                             max(1, s.min_instances), s.max_instances, now,  # no scale to zero yet
                             scaling=self.scaling,
                             consolidation=self.last.placement.consolidation if self.last else Consolidation())
        self.book, self.last, self.scaling = decided.book, decided, decided.scaling
        for send in decided.sends:
            try:
                await self.bus.send_command(self._command(send))
            except Exception as exc:  # not sent: the next round decides (and sends) again
                outstanding = {k: v for k, v in self.book.outstanding.items() if v.command_id != send.command_id}
                self.book = replace(self.book, outstanding=outstanding)
                log.warning("could not send a model command", extra={"model": send.model, "error": repr(exc)})
                continue
            if send.first:
                log.info("model " + send.kind + " commanded", extra={
                    "container_id": send.instance_id, "model": send.model, "command_id": send.command_id})
        reasons = "; ".join(decided.placement.reasons)
        return decided.desired, "model placement" + (f": {reasons}" if reasons else "")

    def _command(self, send: Send) -> ev.Command:
        common = dict(deployment=self.settings.deployment, app_id=self.app_id, container_id=send.instance_id,
                      command_id=send.command_id, model=send.model)
        return ev.LoadModelCommand(**common) if send.kind == LOAD else ev.UnloadModelCommand(**common)
