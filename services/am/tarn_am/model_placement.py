"""Memory-aware model placement (``--placement per-model``): a pure function.

``decide(models, instances, bounds, state) -> Placement`` does no I/O and reads no clock. Given
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

Consolidation: spreading leaves instances part full, and only empty ones are released. After
``CALM_ROUNDS`` rounds in a row with nothing to move, nothing missing and nothing loading, with
the fleet above min instances, the emptiest instance whose copies all fit on the others (the
same rules: capacity, one copy of a model per instance, no model on fewer nodes than before)
is emptied, provided the fleet's memory in use stays under ``CONSOLIDATE_BELOW`` of what the
others offer (headroom for the next scale-up, so it never flaps with it). One instance at a
time, make-before-break: it takes no new copy, its copies are loaded elsewhere, and each is
unloaded from it only once the copies elsewhere that serve (loaded, not loading) reach the
model's desired count; emptied, it is offered for release. Should a copy no longer fit
elsewhere (a scale-up took the room), the instance takes copies again. The instance being
emptied and the calm rounds are ``Placement.consolidation``, passed to the next round's
``decide``: the function stays pure.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import List, Mapping, Optional, Sequence, Set, Tuple

from .model_packing import InstanceMemory, ModelDemand, Move, Plan, new_instances_for, place, surplus

__all__ = ["CALM_ROUNDS", "CONSOLIDATE_BELOW", "Consolidation", "FleetBounds", "InstanceMemory", "ModelDemand",
           "Move", "Placement", "decide", "desired_copies", "footprint_bytes"]


@dataclass(frozen=True)
class FleetBounds:
    min_instances: int
    max_instances: int
    new_instance_capacity_bytes: int  # what a newly requested instance will offer


CALM_ROUNDS = 5  # rounds in a row with nothing to move before an instance is emptied
CONSOLIDATE_BELOW = 0.7  # the fleet's memory in use over what the instances left offer, at most


@dataclass(frozen=True)
class Consolidation:
    """What consolidation carries from one round to the next (decide's own state)."""

    emptying: Optional[str] = None  # the instance whose copies move away, make-before-break
    calm_rounds: int = 0  # rounds in a row with nothing to move, nothing missing


@dataclass(frozen=True)
class Placement:
    loads: Tuple[Move, ...]
    unloads: Tuple[Move, ...]
    instance_count: int  # what the fleet should have, within min/max instances
    release: Tuple[str, ...] = ()  # empty instances the count no longer needs
    missing: Mapping[str, int] = field(default_factory=dict)  # copies not placed this round
    reasons: Tuple[str, ...] = ()
    consolidation: Consolidation = Consolidation()  # pass to the next round's decide


def footprint_bytes(declared_bytes: int, measured_bytes: Optional[int]) -> int:
    """The measured footprint once an agent has reported one, the declared one until then."""
    return measured_bytes if measured_bytes is not None and measured_bytes > 0 else declared_bytes


def desired_copies(wanted: int, min_copies: int, max_copies: int) -> int:
    return max(min_copies, min(max_copies, wanted))


def decide(models: Sequence[ModelDemand], instances: Sequence[InstanceMemory], bounds: FleetBounds,
           state: Consolidation = Consolidation()) -> Placement:
    """This round's loads, unloads and instance count; ``state`` is the last round's
    ``Placement.consolidation`` (the instance being emptied, the calm rounds seen)."""
    ids = {i.instance_id for i in instances}
    if state.emptying in ids and len(instances) > bounds.min_instances:
        moving = _decide(models, instances, bounds, state.emptying)
        if moving is not None:
            return moving
        # Something no longer fits beside it: the instance takes copies again (no flap with scale-up).
    placement = _decide(models, instances, bounds, None)
    assert placement is not None
    if not _calm(placement, instances, bounds):
        return placement
    calm_rounds = state.calm_rounds + 1
    if calm_rounds < CALM_ROUNDS:
        return replace(placement, consolidation=Consolidation(None, calm_rounds))
    used = sum(i.used_bytes for i in instances)
    for emptiest in sorted(instances, key=lambda i: (i.used_bytes, i.instance_id)):
        left = sum(i.capacity_bytes for i in instances if i is not emptiest)
        if used > CONSOLIDATE_BELOW * left:
            continue  # the others would run too full to take the next scale-up
        moving = _decide(models, instances, bounds, emptiest.instance_id)
        if moving is not None and _keeps_spread(instances, moving, emptiest):
            return replace(moving, reasons=moving.reasons + (
                f"emptying {emptiest.instance_id} to release it: the fleet would use "
                f"{used / max(left, 1):.0%} of the others' memory",))
    return replace(placement, consolidation=Consolidation(None, calm_rounds))


def _calm(placement: Placement, instances: Sequence[InstanceMemory], bounds: FleetBounds) -> bool:
    """Nothing moving, nothing missing, nothing loading, and an instance to spare."""
    return (not placement.loads and not placement.unloads and not placement.missing and not placement.release
            and placement.instance_count == len(instances) > bounds.min_instances
            and not any(i.loading for i in instances))


def _keeps_spread(instances: Sequence[InstanceMemory], moving: Placement, emptied: InstanceMemory) -> bool:
    """Emptying must not leave a model on fewer nodes than it is on now."""
    holds = {i.instance_id: set(i.models) for i in instances if i is not emptied}
    for move in moving.loads:
        holds[move.instance_id].add(move.model)
    node = {i.instance_id: i.node for i in instances}
    for model in emptied.models:
        before = {i.node for i in instances if model in i.models}
        if len({node[k] for k, held in holds.items() if model in held}) < len(before):
            return False
    return True


def _decide(models: Sequence[ModelDemand], instances: Sequence[InstanceMemory], bounds: FleetBounds,
            emptying: Optional[str]) -> Optional[Placement]:
    """One round; with ``emptying``, that instance takes no copy, its copies are loaded elsewhere
    and each is unloaded once enough copies elsewhere serve (None: they do not all fit)."""
    wanted = {m.name: m for m in models}
    closed = frozenset({emptying} if emptying else ())
    plan = Plan({i.instance_id: i for i in instances}, {i.instance_id: 0 for i in instances},
                 {i.instance_id: set(i.models) for i in instances}, closed)
    reasons: List[str] = []

    unloads: List[Move] = []
    for i in sorted(instances, key=lambda i: i.instance_id):  # models no longer deployed
        unloads += [Move(i.instance_id, name) for name in sorted(i.models - wanted.keys())]
    for model in sorted(models, key=lambda m: m.name):
        holders = [i for i in instances if model.name in i.models and i.instance_id not in closed]
        unloads += surplus(model, holders, plan)
    for move in unloads:
        plan.holds[move.instance_id].discard(move.model)

    loads, pending = place(models, plan)
    missing = {m.name: n for m, n in pending}
    if emptying:
        if missing:
            return None
        unloads += _moved_away(emptying, wanted, plan, set(loads))
    # Copies that fit once this round's unloads give their memory back wait for the next
    # round; only the rest are worth new instances.
    size = {m.name: m.footprint_bytes for m in models}
    plan.freed = {k: 0 for k in plan.instances}
    for move in unloads:
        measured = plan.instances[move.instance_id].held_bytes.get(move.model)
        plan.freed[move.instance_id] += measured if measured is not None else size.get(move.model, 0)
    _, pending = place([ModelDemand(m.name, m.footprint_bytes, m.copies) for m, _ in pending], plan)

    current = len(instances)
    waiting = sum(missing.values()) - sum(n for _, n in pending)
    if waiting:
        reasons.append(f"{waiting} copies wait for unloads to free memory")
    too_big = [m.name for m, _ in pending if m.footprint_bytes > bounds.new_instance_capacity_bytes]
    if too_big:
        reasons.append(f"larger than an instance ({bounds.new_instance_capacity_bytes} bytes): "
                       + ", ".join(sorted(too_big)))
    extra = new_instances_for(pending, bounds.new_instance_capacity_bytes)
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
    if emptying and plan.holds[emptying]:
        reasons.append(f"emptying {emptying}: {', '.join(sorted(plan.holds[emptying]))} wait for their "
                       "copies elsewhere to be ready")
    count = max(bounds.min_instances, min(bounds.max_instances, count))
    return Placement(tuple(loads), tuple(unloads), count, release, missing, tuple(reasons),
                     Consolidation(emptying))


def _moved_away(emptying: str, wanted: Mapping[str, ModelDemand], plan: Plan, loads: Set[Move]) -> List[Move]:
    """Make before break: a copy leaves the emptied instance only once enough copies elsewhere
    serve (loaded, not loading), so moving it never leaves the model short."""
    out = []
    for name in sorted(plan.holds[emptying]):
        serving = sum(1 for k, held in plan.holds.items() if k != emptying and name in held
                      and name not in plan.instances[k].loading and Move(k, name) not in loads)
        if serving >= wanted[name].copies:
            out.append(Move(emptying, name))
            plan.holds[emptying].discard(name)
    return out
