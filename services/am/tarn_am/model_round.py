"""One round of ``--placement per-model`` (pure): the fleet's latest per-model telemetry and
the plan in, placement (model_placement) run over them with the commands in flight, out
come the commands to send (model_commands), the instance count placement asks for, and
each model's line for /api/state and `tarn status` (copies wanted, held, missing and why).

Copies wanted are per-model scaling's answer on each model's queue time (model_scaling),
within its min/max; an operator's count (POST /model-copies) wins while it is set.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Collection, Dict, List, Mapping, Optional, Sequence, Tuple

from pydantic import BaseModel

from tarn_shared import events as ev

from .model_commands import LOAD, CommandBook, CommandTimings, Send, commands, instance_count, settle, \
    with_commands_in_flight
from .model_copies import ModelPlan
from .model_fleet import instances_from, measured_footprints, model_demands
from .model_placement import Consolidation, FleetBounds, Placement, decide
from .model_scaling import STALE_AFTER_S, CopiesState, ScalingMemory, readings
from .model_scaling import decide as scale, wake


class ModelLine(BaseModel):
    """One model as placement sees it this round."""

    name: str
    wanted: int
    held: List[str] = []  # instances where it is loaded (or loading, per their telemetry)
    loading: List[str] = []  # instances a load command is in flight to
    unloading: List[str] = []
    missing: int = 0  # copies wanted but not placed this round
    footprint_bytes: int = 0
    why: List[str] = []
    queue_time_us: Optional[float] = None  # per request, across its ready copies; None: no reading
    wanted_reason: str = ""  # why this many copies: scaling's reason, or the operator's count


@dataclass(frozen=True)
class FleetInputs:
    samples: Sequence[ev.TelemetrySample]  # fresh, of ready instances
    node_of: Mapping[str, str]  # instance -> node, for the ready instances placement may use
    acks: Mapping[str, ev.CommandAck]  # the load/unload acks seen, by command id
    live: Collection[str]  # instances a container still holds
    desired: int  # the current target instance count
    container_memory_bytes: int  # an instance's capacity where no GPU is readable
    stale_after_s: float = STALE_AFTER_S  # a model reading older than this is none (3 telemetry intervals)
    demanded: Mapping[str, float] = field(default_factory=dict)  # model -> newest gateway demand (ModelDemanded)


@dataclass(frozen=True)
class ModelRound:
    placement: Placement
    sends: List[Send]
    book: CommandBook
    desired: int  # the target instance count placement asks for
    lines: List[ModelLine]
    scaling: ScalingMemory = ScalingMemory()


Scaled = Tuple[Dict[str, int], Dict[str, str], Dict[str, Optional[float]], ScalingMemory]


def scale_copies(plan: ModelPlan, samples: Sequence[ev.TelemetrySample], operator: Mapping[str, int],
                 memory: ScalingMemory, now: float, stale_after_s: float,
                 demanded: Optional[Mapping[str, float]] = None) -> Scaled:
    """(copies wanted per model, why, queue time per model, the memory for the next round)."""
    seen, demanded = readings(samples), demanded or {}
    wanted, why, queue, states = {}, {}, {}, dict(memory.states)
    for name in sorted(set(plan.models) | set(seen)):
        target = plan.target_for(name)
        if target is None:
            continue
        # A model starts with one copy even at min 0 (Knative's initial scale 1): scale to zero is
        # for a model idle past its window, and one never loaded would never be measured or served.
        before = memory.wanted.get(name, max(1, target.min_copies))
        decision, states[name] = scale(target, before, seen.get(name), now, states.get(name) or CopiesState(),
                                       stale_after_s)
        decision, states[name] = wake(target, decision, demanded.get(name), now, states[name])
        wanted[name], why[name], queue[name] = decision.copies, decision.reason, decision.queue_time_us
        if name in operator:  # the operator's count wins; scaling keeps measuring beside it
            wanted[name], why[name] = operator[name], f"set by an operator (scaling: {decision.reason})"
    return wanted, why, queue, ScalingMemory(states, wanted)


def plan_round(plan: ModelPlan, fleet: FleetInputs, wanted: Mapping[str, int], book: CommandBook,
               min_instances: int, max_instances: int, now: float,
               timings: CommandTimings = CommandTimings(), scaling: ScalingMemory = ScalingMemory(),
               consolidation: Consolidation = Consolidation()) -> ModelRound:
    samples = [s for s in fleet.samples if s.instance_id in fleet.node_of]
    measured = measured_footprints(samples)
    wanted, why, queue, scaling = scale_copies(plan, samples, wanted, scaling, now, fleet.stale_after_s,
                                                 fleet.demanded)
    demands = model_demands(plan, (), wanted, measured)
    footprints = {d.name: d.footprint_bytes for d in demands}
    seen = instances_from(samples, fleet.node_of, fleet.container_memory_bytes, footprints)
    book = settle(book, fleet.acks, fleet.live, now, timings, {i.instance_id: i.models for i in seen})
    inputs = with_commands_in_flight(seen, book, footprints)
    # A new instance offers what the largest one seen offers (its GPUs), the container's memory before any
    new_capacity = max((i.capacity_bytes for i in seen), default=fleet.container_memory_bytes)
    if len(seen) < fleet.desired:  # instances still start: the fleet is growing, not one to consolidate
        consolidation = Consolidation()
    placement = decide(demands, inputs, FleetBounds(min_instances, max_instances, new_capacity), consolidation)
    silent = sorted(set(fleet.node_of) - {i.instance_id for i in seen})
    if silent:
        # A ready instance that has not reported may hold models (a restarted tarn-am): wait for its word.
        waiting = f"waiting for the first telemetry of {', '.join(silent)}"
        placement = replace(placement, loads=(), unloads=(), release=(), consolidation=consolidation,
                            reasons=placement.reasons + (waiting,))
    sends, book = commands(placement, book, now, timings)
    count = fleet.desired if silent else instance_count(placement.instance_count, fleet.desired, len(seen))
    lines = [_line(d.name, d.copies, d.footprint_bytes, seen, book, placement, bool(silent))
             .model_copy(update={"queue_time_us": queue.get(d.name), "wanted_reason": why.get(d.name, "")})
             for d in demands]
    return ModelRound(placement, sends, book, count, lines, scaling)


def _line(name: str, copies: int, footprint: int, seen, book: CommandBook, placement: Placement,
          waiting: bool) -> ModelLine:
    in_flight: Dict[str, List[str]] = {LOAD: [], "unload": []}
    for (instance_id, model), command in sorted(book.outstanding.items()):
        if model == name:
            in_flight[command.kind].append(instance_id)
    why = [f"load on {i} failed: {f.message} (retried after a delay)"
           for (i, m), f in sorted(book.failures.items()) if m == name]
    missing = placement.missing.get(name, 0)
    if missing or waiting:
        why += list(placement.reasons)
    return ModelLine(name=name, wanted=copies, held=[i.instance_id for i in seen if name in i.models],
                     loading=in_flight[LOAD], unloading=in_flight["unload"], missing=missing,
                     footprint_bytes=footprint, why=why)
