"""bench/placement's fleets: what every system shares (instances of copies, the step, the
tally), and TARN's: per-model scaling (tarn_am.model_scaling.decide) and memory-aware
placement (tarn_am.model_placement.decide), the real functions, on the queueing model.

TARN's round, every telemetry interval, as model_round runs it: each model's reading from
its ready copies (served rate, queue time per request, pending) → copies wanted → placement
over the instances' memory (a copy loading counts as held, an unloading one still holds its
memory) → loads, unloads and the instance count (model_commands.instance_count). Requests
go round robin to a model's ready copies (per-model routing); an unloaded copy is first
routed away and serves what it holds (the unload handshake).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from tarn_am.model_commands import instance_count
from tarn_am.model_copies import ModelTarget
from tarn_am.model_placement import Consolidation, FleetBounds, InstanceMemory, ModelDemand, decide, desired_copies
from tarn_am.model_scaling import CopiesState, ModelReading
from tarn_am.model_scaling import decide as scale

from placement_queues import Copy, Waits, mean_wait
from placement_workload import GIB, Workload

DECISION_S = 2.0  # the agents' telemetry interval (tarn_shared.defaults.TELEMETRY_INTERVAL_S)


@dataclass
class Instance:
    instance_id: str
    ready_at: float
    copies: Dict[str, Copy] = field(default_factory=dict)
    leaving: bool = False

    def used_gib(self) -> float:
        return sum(c.model.size_gib for c in self.copies.values())


@dataclass
class Tally:
    served: float = 0.0
    offered: float = 0.0
    instance_s: float = 0.0
    loads: int = 0
    unloads: int = 0
    peak_instances: int = 0
    over_capacity: int = 0  # steps where an instance held more than its memory (must stay 0)


class Fleet:
    """Instances of copies on the queueing model; subclasses route and decide."""

    name = "fleet"

    def __init__(self, workload: Workload, max_instances: int) -> None:
        self.w = workload
        self.max_instances = max_instances
        self.instances: Dict[str, Instance] = {}
        self.waits = Waits()
        self.tally = Tally()
        self.started = 0
        self.trace: List[tuple] = []  # (t, instances, {model: copies}, {model: mean wait s})

    def start_instance(self, ready_at: float) -> Instance:
        self.started += 1
        inst = Instance(f"i{self.started:03d}", ready_at)
        self.instances[inst.instance_id] = inst
        return inst

    def copies_of(self, model: str, ready_only: bool, now: float) -> List[Copy]:
        return [i.copies[model] for i in self.instances.values() if model in i.copies
                and not i.copies[model].leaving and (not ready_only or i.copies[model].ready(now))]

    def route(self, now: float, rates) -> Dict[Copy, float]:  # arrivals/s per copy
        raise NotImplementedError

    def decide(self, now: float) -> None:
        raise NotImplementedError

    def start_measuring(self) -> None:
        """The end of the warm-up: counts from zero, and no backlog carried into the measurement."""
        self.waits, self.tally = Waits(), Tally()
        for inst in self.instances.values():
            for copy in inst.copies.values():
                copy.queued = min(copy.queued, copy.settled_queue())

    def step(self, now: float, rates, dt: float, record: bool) -> None:
        routed = self.route(now, rates)
        per_model: Dict[str, list] = {}
        for inst in self.instances.values():
            for copy in inst.copies.values():
                first = len(self.waits.rows)
                self.tally.served += copy.step(now, routed.get(copy, 0.0), dt, self.waits)
                per_model.setdefault(copy.model.name, []).extend(self.waits.rows[first:])
        self.tally.offered += float(sum(rates)) * dt
        for inst in list(self.instances.values()):
            for name, copy in list(inst.copies.items()):
                if copy.leaving and copy.queued < 0.5:
                    del inst.copies[name]
            if inst.leaving and not inst.copies:
                del self.instances[inst.instance_id]
            elif inst.used_gib() > self.w.capacity_gib + 1e-6:
                self.tally.over_capacity += 1
        self.tally.instance_s += len(self.instances) * dt
        self.tally.peak_instances = max(self.tally.peak_instances, len(self.instances))
        if record:
            copies = {m.name: len(self.copies_of(m.name, True, now)) for m in self.w.models}
            self.trace.append((now, len(self.instances), copies,
                               {m: mean_wait(rows) for m, rows in per_model.items()}))


class Tarn(Fleet):
    name = "tarn"

    def __init__(self, workload: Workload, max_instances: int = 16, min_copies: int = 1,
                 max_copies: int = 16, target_queue_ms: float = 100.0) -> None:
        super().__init__(workload, max_instances)
        self.targets = {m.name: ModelTarget(min_copies=min_copies, max_copies=max_copies,
                                            memory_bytes=m.size_bytes, target_queue_time_us=target_queue_ms * 1000)
                        for m in workload.models}
        self.wanted = {name: t.min_copies for name, t in self.targets.items()}
        self.states: Dict[str, CopiesState] = {}
        self.last_reason: Dict[str, str] = {}
        self.consolidation = Consolidation()  # placement's own state, carried as tarn-am carries it

    def route(self, now: float, rates) -> Dict[Copy, float]:
        routed = {}
        for model, rate in zip(self.w.models, rates):
            copies = self.copies_of(model.name, True, now) or self.copies_of(model.name, False, now)
            if not copies and rate > 0:
                raise RuntimeError(f"{model.name} has no copy at {now:.0f}s: placement dropped its min copy")
            for c in copies:
                routed[c] = rate / len(copies)
        return routed

    def reading(self, model: str, now: float) -> Optional[ModelReading]:
        copies = self.copies_of(model, True, now)
        if not copies:
            return None
        served = sum(c.served_rate for c in copies)
        queue_s = sum(c.queue_time_s() * c.served_rate for c in copies) / served if served > 0 else 0.0
        return ModelReading(len(copies), now, served, queue_s * 1e6, sum(c.queued for c in copies),
                            tuple((c.served_rate, c.queue_time_s() * 1e6) for c in copies))

    def decide(self, now: float) -> None:
        for name, target in self.targets.items():
            decision, self.states[name] = scale(target, self.wanted[name], self.reading(name, now), now,
                                                self.states.get(name, CopiesState()), 3 * DECISION_S)
            self.wanted[name], self.last_reason[name] = decision.copies, decision.reason
        demands = [ModelDemand(m.name, m.size_bytes, desired_copies(self.wanted[m.name], t.min_copies, t.max_copies))
                   for m, t in ((m, self.targets[m.name]) for m in self.w.models)]
        ready = [i for i in self.instances.values() if i.ready_at <= now and not i.leaving]
        memory = [InstanceMemory(i.instance_id, i.instance_id, int(self.w.capacity_gib * GIB),
                                 sum(c.model.size_bytes for c in i.copies.values()),
                                 frozenset(n for n, c in i.copies.items() if not c.leaving), frozenset(),
                                 {n: c.model.size_bytes for n, c in i.copies.items()},
                                 frozenset(n for n, c in i.copies.items() if not c.ready(now))) for i in ready]
        placement = decide(demands, memory, FleetBounds(1, self.max_instances, int(self.w.capacity_gib * GIB)),
                           self.consolidation)
        self.consolidation = placement.consolidation
        for move in placement.unloads:
            self.instances[move.instance_id].copies[move.model].leaving = True
            self.tally.unloads += 1
        models = {m.name: m for m in self.w.models}
        for move in placement.loads:
            model = models[move.model]
            self.instances[move.instance_id].copies[move.model] = Copy(model, now + model.load_s, last_used=now)
            self.tally.loads += 1
        serving = [i for i in self.instances.values() if not i.leaving]
        count = instance_count(placement.instance_count, len(serving), len(ready))
        for _ in range(count - len(serving)):
            self.start_instance(now + self.w.startup_s)
        for instance_id in placement.release[:max(0, len(serving) - count)]:
            self.instances[instance_id].leaving = True
