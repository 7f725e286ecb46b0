"""Memory-aware model placement (``--placement per-model``): a pure function.

``decide(models, instances, bounds) -> Placement`` does no I/O and reads no clock. Given
each instance's memory (capacity, used, the models it holds, the models whose files its
node already has), each model's footprint (measured by the agents, declared until then)
and its desired copies, it says which copies to load and unload and how many instances
the fleet needs. The rules, in the order they rank a candidate instance:

- never over capacity: a copy goes only where ``used + planned + footprint <= capacity``.
  Memory freed by this round's unloads is not counted as free until the agents report it
  (an unload is asynchronous; counting it early could overcommit a GPU);
- never two copies of a model on one instance;
- spread: a node that already holds a copy is chosen only when no other node has room;
- prefer an instance whose node already has the model's files (no staging);
- least loaded first (fraction of capacity used after the load), then the instance id.

Copies are placed largest model first (first-fit decreasing, a good bin packer). Copies
that fit nowhere are packed onto imagined new instances of ``new_instance_capacity_bytes``
to size the request for more instances; the count stays within min/max instances, and a
copy larger than a whole instance is reported, never asked for. Instances left empty are
offered for release down to ``min_instances``. Surplus copies are unloaded where a copy is
still loading first, then from the node with most copies of that model, then the fullest instance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple

__all__ = ["FleetBounds", "InstanceMemory", "ModelDemand", "Move", "Placement", "decide",
           "desired_copies", "footprint_bytes"]


@dataclass(frozen=True)
class InstanceMemory:
    instance_id: str
    node: str
    capacity_bytes: int
    used_bytes: int  # measured; includes the models it holds
    models: FrozenSet[str] = frozenset()  # loaded, or loading (a load command in flight)
    cached: FrozenSet[str] = frozenset()  # models whose files the node's cache already has
    held_bytes: Mapping[str, int] = field(default_factory=dict, compare=False)  # measured, per model
    loading: FrozenSet[str] = frozenset()  # of ``models``, those not serving yet


@dataclass(frozen=True)
class ModelDemand:
    name: str
    footprint_bytes: int
    copies: int  # desired, already within the model's min/max (desired_copies)


@dataclass(frozen=True)
class FleetBounds:
    min_instances: int
    max_instances: int
    new_instance_capacity_bytes: int  # what a newly requested instance will offer


@dataclass(frozen=True, order=True)
class Move:
    instance_id: str
    model: str


@dataclass(frozen=True)
class Placement:
    loads: Tuple[Move, ...]
    unloads: Tuple[Move, ...]
    instance_count: int  # what the fleet should have, within min/max instances
    release: Tuple[str, ...] = ()  # empty instances the count no longer needs
    missing: Mapping[str, int] = field(default_factory=dict)  # copies not placed this round
    reasons: Tuple[str, ...] = ()


def footprint_bytes(declared_bytes: int, measured_bytes: Optional[int]) -> int:
    """The measured footprint once an agent has reported one, the declared one until then."""
    return measured_bytes if measured_bytes is not None and measured_bytes > 0 else declared_bytes


def desired_copies(wanted: int, min_copies: int, max_copies: int) -> int:
    return max(min_copies, min(max_copies, wanted))


@dataclass
class _Plan:
    """The fleet as this round's decisions leave it (private scratch state)."""

    instances: Dict[str, InstanceMemory]
    planned: Dict[str, int]  # bytes loaded this round, per instance
    holds: Dict[str, Set[str]]  # models per instance once this round's moves are applied
    freed: Dict[str, int] = field(default_factory=dict)  # counted only when sizing the fleet

    def free(self, instance_id: str) -> int:
        i = self.instances[instance_id]
        return i.capacity_bytes - i.used_bytes - self.planned[instance_id] + self.freed.get(instance_id, 0)

    def nodes_holding(self, model: str) -> Set[str]:
        return {self.instances[k].node for k, held in self.holds.items() if model in held}


def _fill(i: InstanceMemory, plan: _Plan) -> float:
    return (i.used_bytes + plan.planned[i.instance_id]) / max(i.capacity_bytes, 1)


def _candidate(model: ModelDemand, plan: _Plan) -> Optional[str]:
    spread = plan.nodes_holding(model.name)
    fits = [i for k, i in plan.instances.items()
            if model.name not in plan.holds[k] and plan.free(k) >= model.footprint_bytes]
    if not fits:
        return None
    best = min(fits, key=lambda i: (i.node in spread, model.name not in i.cached,
                                    (i.used_bytes + plan.planned[i.instance_id] + model.footprint_bytes)
                                    / max(i.capacity_bytes, 1), i.instance_id))
    return best.instance_id


def _surplus(model: ModelDemand, holders: List[InstanceMemory], plan: _Plan) -> List[Move]:
    """Which of ``holders`` give up their copy: one still loading first (dropping a serving copy
    for it would leave the model unserved until the load ends), crowded nodes, then the fullest."""
    moves: List[Move] = []
    holders = list(holders)
    while len(holders) > model.copies:
        per_node: Dict[str, int] = {}
        for i in holders:
            per_node[i.node] = per_node.get(i.node, 0) + 1
        drop = max(holders, key=lambda i: (model.name in i.loading, per_node[i.node], _fill(i, plan), i.instance_id))
        holders.remove(drop)
        moves.append(Move(drop.instance_id, model.name))
    return moves


def _new_instances_for(pending: Sequence[Tuple[ModelDemand, int]], capacity_bytes: int) -> int:
    """How many empty instances of ``capacity_bytes`` hold ``pending`` copies (first fit,
    one copy of a model per instance). Copies larger than an instance are left out."""
    bins: List[Tuple[int, Set[str]]] = []
    for model, copies in pending:
        if model.footprint_bytes > capacity_bytes:
            continue
        for _ in range(copies):
            for k, (used, names) in enumerate(bins):
                if model.name not in names and used + model.footprint_bytes <= capacity_bytes:
                    bins[k] = (used + model.footprint_bytes, names | {model.name})
                    break
            else:
                bins.append((model.footprint_bytes, {model.name}))
    return len(bins)


def _place(models: Sequence[ModelDemand], plan: _Plan) -> Tuple[List[Move], List[Tuple[ModelDemand, int]]]:
    """Largest model first, each copy to the best candidate; returns loads and what is left."""
    loads: List[Move] = []
    pending: List[Tuple[ModelDemand, int]] = []
    for model in sorted(models, key=lambda m: (-m.footprint_bytes, m.name)):
        short = model.copies - sum(model.name in held for held in plan.holds.values())
        placed = 0
        while placed < short:
            target = _candidate(model, plan)
            if target is None:
                break
            plan.planned[target] += model.footprint_bytes
            plan.holds[target].add(model.name)
            loads.append(Move(target, model.name))
            placed += 1
        if short - placed > 0:
            pending.append((model, short - placed))
    return loads, pending


def decide(models: Sequence[ModelDemand], instances: Sequence[InstanceMemory],
           bounds: FleetBounds) -> Placement:
    wanted = {m.name: m for m in models}
    plan = _Plan({i.instance_id: i for i in instances}, {i.instance_id: 0 for i in instances},
                 {i.instance_id: set(i.models) for i in instances})
    reasons: List[str] = []

    unloads: List[Move] = []
    for i in sorted(instances, key=lambda i: i.instance_id):  # models no longer deployed
        unloads += [Move(i.instance_id, name) for name in sorted(i.models - wanted.keys())]
    for model in sorted(models, key=lambda m: m.name):
        holders = [i for i in instances if model.name in i.models]
        unloads += _surplus(model, holders, plan)
    for move in unloads:
        plan.holds[move.instance_id].discard(move.model)

    loads, pending = _place(models, plan)
    missing = {m.name: n for m, n in pending}
    # Copies that fit once this round's unloads give their memory back wait for the next
    # round; only the rest are worth new instances.
    size = {m.name: m.footprint_bytes for m in models}
    plan.freed = {k: 0 for k in plan.instances}
    for move in unloads:
        measured = plan.instances[move.instance_id].held_bytes.get(move.model)
        plan.freed[move.instance_id] += measured if measured is not None else size.get(move.model, 0)
    _, pending = _place([ModelDemand(m.name, m.footprint_bytes, m.copies) for m, _ in pending], plan)

    current = len(instances)
    if missing and not pending:
        reasons.append(f"{sum(missing.values())} copies wait for unloads to free memory")
    too_big = [m.name for m, _ in pending if m.footprint_bytes > bounds.new_instance_capacity_bytes]
    if too_big:
        reasons.append(f"larger than an instance ({bounds.new_instance_capacity_bytes} bytes): "
                       + ", ".join(sorted(too_big)))
    extra = _new_instances_for(pending, bounds.new_instance_capacity_bytes)
    release: Tuple[str, ...] = ()
    if extra:
        count = min(bounds.max_instances, current + extra)
        if count < current + extra:
            reasons.append(f"{current + extra} instances needed, max is {bounds.max_instances}")
        reasons.append(f"{sum(n for _, n in pending)} copies wait for new instances")
    elif not missing:  # copies waiting for unloads may need the instances those unloads empty
        empty = sorted(k for k, held in plan.holds.items() if not held)
        releasable = max(0, current - bounds.min_instances)
        release = tuple(empty[:releasable])
        count = current - len(release)
    else:
        count = current
    count = max(bounds.min_instances, min(bounds.max_instances, count))
    return Placement(tuple(loads), tuple(unloads), count, release, missing, tuple(reasons))
