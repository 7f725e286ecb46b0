"""The packing primitives of model_placement (pure): the instances and models it packs, and
the round's scratch plan: the best instance for a copy, the surplus copies to drop, first fit
decreasing onto the instances there are and onto imagined new ones."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Set, Tuple

__all__ = ["InstanceMemory", "ModelDemand", "Move", "Plan", "candidate", "new_instances_for", "place", "surplus"]


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


@dataclass(frozen=True, order=True)
class Move:
    instance_id: str
    model: str


@dataclass
class Plan:
    """The fleet as this round's decisions leave it (private scratch state)."""

    instances: Dict[str, InstanceMemory]
    planned: Dict[str, int]  # bytes loaded this round, per instance
    holds: Dict[str, Set[str]]  # models per instance once this round's moves are applied
    closed: FrozenSet[str] = frozenset()  # instances that take no copy (the one being emptied)
    freed: Dict[str, int] = field(default_factory=dict)  # counted only when sizing the fleet

    def free(self, instance_id: str) -> int:
        i = self.instances[instance_id]
        return i.capacity_bytes - i.used_bytes - self.planned[instance_id] + self.freed.get(instance_id, 0)

    def nodes_holding(self, model: str) -> Set[str]:
        return {self.instances[k].node for k, held in self.holds.items() if model in held}


def fill(i: InstanceMemory, plan: Plan) -> float:
    return (i.used_bytes + plan.planned[i.instance_id]) / max(i.capacity_bytes, 1)


def candidate(model: ModelDemand, plan: Plan) -> Optional[str]:
    spread = plan.nodes_holding(model.name)
    fits = [i for k, i in plan.instances.items()
            if k not in plan.closed and model.name not in plan.holds[k] and plan.free(k) >= model.footprint_bytes]
    if not fits:
        return None
    best = min(fits, key=lambda i: (i.node in spread, model.name not in i.cached,
                                    (i.used_bytes + plan.planned[i.instance_id] + model.footprint_bytes)
                                    / max(i.capacity_bytes, 1), i.instance_id))
    return best.instance_id


def surplus(model: ModelDemand, holders: List[InstanceMemory], plan: Plan) -> List[Move]:
    """Which of ``holders`` give up their copy: one still loading first (dropping a serving copy
    for it would leave the model unserved until the load ends), crowded nodes, then the fullest."""
    moves: List[Move] = []
    holders = list(holders)
    while len(holders) > model.copies:
        per_node: Dict[str, int] = {}
        for i in holders:
            per_node[i.node] = per_node.get(i.node, 0) + 1
        drop = max(holders, key=lambda i: (model.name in i.loading, per_node[i.node], fill(i, plan), i.instance_id))
        holders.remove(drop)
        moves.append(Move(drop.instance_id, model.name))
    return moves


def new_instances_for(pending: Sequence[Tuple[ModelDemand, int]], capacity_bytes: int) -> int:
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


def place(models: Sequence[ModelDemand], plan: Plan) -> Tuple[List[Move], List[Tuple[ModelDemand, int]]]:
    """Largest model first, each copy to the best candidate; returns loads and what is left."""
    loads: List[Move] = []
    pending: List[Tuple[ModelDemand, int]] = []
    for model in sorted(models, key=lambda m: (-m.footprint_bytes, m.name)):
        short = model.copies - sum(model.name in held for k, held in plan.holds.items() if k not in plan.closed)
        placed = 0
        while placed < short:
            target = candidate(model, plan)
            if target is None:
                break
            plan.planned[target] += model.footprint_bytes
            plan.holds[target].add(model.name)
            loads.append(Move(target, model.name))
            placed += 1
        if short - placed > 0:
            pending.append((model, short - placed))
    return loads, pending

