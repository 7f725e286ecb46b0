"""Per-model routing for HAProxy, pure: which models hold a slot backend, what the model map
must say, and which instances each slot backend serves. No I/O, no clock.

HAProxy 2.6 cannot add backends at run time, so a backend ``B`` routed per model declares N
slot backends ``B_model_0 .. B_model_{N-1}`` and an (empty) map file ``B.models.map``; its
frontend sends ``/v2/models/{m}/...`` to the map's backend for ``m`` and everything else to
``B`` (deploy/haproxy/render_model_routes.py). gateway-sync gives each model that has a
ready copy a slot, fills the slot with the instances holding it READY, and points the map
at it. A slot stays with its model while the model has no copy (its requests get 503, not
another model's answer) until a model with a copy needs it. A model left without a slot
(more models than slots) has no map entry: its requests go to ``B``, every instance, as
before per-model routing."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from tarn_shared.membership import Member

from .plan import RoutingIntent, Target

SLOT_INFIX = "_model_"
MAP_SUFFIX = ".models.map"
# Triton model names as map keys: no space (the Runtime API splits on it), no separators.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def map_file_name(backend: str) -> str:
    return backend + MAP_SUFFIX


def slot_backends(backend: str, names: Iterable[str]) -> Tuple[str, ...]:
    """``backend``'s slot backends among HAProxy's backend ``names``, by slot number."""
    prefix = backend + SLOT_INFIX
    found = [(int(n[len(prefix):]), n) for n in names if n.startswith(prefix) and n[len(prefix):].isdigit()]
    return tuple(n for _, n in sorted(found))


def is_slot_of(name: str, backends: Iterable[str]) -> bool:
    """Whether ``name`` is a slot backend of one of ``backends`` (what admission allowed)."""
    base, infix, number = name.rpartition(SLOT_INFIX)
    return bool(infix) and number.isdigit() and base in set(backends)


@dataclass(frozen=True)
class ModelLayout:
    """What one HAProxy declares for a backend routed per model."""

    map_path: str  # the map file's path as HAProxy names it (``show map``)
    slots: Tuple[str, ...]


def find_layout(backend: str, backend_names: Iterable[str], map_paths: Iterable[str]) -> Optional[ModelLayout]:
    """The layout HAProxy declares for ``backend`` (None: not routed per model): slot
    backends and a map file named after it, both needed."""
    slots = slot_backends(backend, backend_names)
    wanted = map_file_name(backend)
    paths = sorted(p for p in map_paths if p.rsplit("/", 1)[-1] == wanted)
    return ModelLayout(paths[0], slots) if slots and paths else None


class ModelHolders:
    """Which routable addresses hold each model READY, kept in place: a scoped update costs
    the addresses it names (as routing.Fleet)."""

    def __init__(self) -> None:
        self._of: Dict[str, Tuple[str, ...]] = {}  # address -> models
        self._at: Dict[str, Set[str]] = {}  # model -> addresses

    def update(self, routable: Mapping[str, Member], scope: Optional[Set[str]]) -> Set[str]:
        """Take ``routable`` (the ready members in ``scope``; None: all of them) as the truth
        for those addresses; the models whose holders may have changed."""
        addresses = set(self._of) | set(routable) if scope is None else scope
        touched: Set[str] = set()
        for address in addresses:
            old = self._of.pop(address, ())
            member = routable.get(address)
            new = tuple(sorted({m for m in member.models if MODEL_NAME.fullmatch(m)})) if member else ()
            for model in old:
                self._at[model].discard(address)
                if not self._at[model]:
                    del self._at[model]
            for model in new:
                self._at.setdefault(model, set()).add(address)
            if new:
                self._of[address] = new
            touched |= set(old) ^ set(new) if scope is not None else set(old) | set(new)
        return touched

    def models_of(self, address: str) -> Tuple[str, ...]:
        return self._of.get(address, ())

    def addresses(self) -> Set[str]:
        return set(self._of)

    def holding(self, model: str) -> Set[str]:
        return set(self._at.get(model, ()))

    def models(self) -> Set[str]:
        return set(self._at)


def assign_slots(held: Set[str], current: Mapping[str, str], slots: Sequence[str],
                 cold: Iterable[str] = ()) -> Tuple[Dict[str, str], Tuple[str, ...]]:
    """Model -> slot backend, and the held (or cold) models left without a slot. A model keeps
    its slot; a new one takes a free slot, else the slot of a model with no copy (the one first
    by name); a slot is never given twice. ``cold`` models (may scale to zero) with no copy get
    a free slot too, never another's, so their requests are held at the gateway, not sent to
    every instance."""
    kept: Dict[str, str] = {}
    for model in sorted(current, key=lambda m: (m not in held, m)):  # a held model wins a shared slot
        slot = current[model]
        if slot in slots and slot not in kept.values() and MODEL_NAME.fullmatch(model):
            kept[model] = slot
    free = [s for s in slots if s not in kept.values()]
    reclaimable = sorted(m for m in kept if m not in held)
    overflow: List[str] = []
    for model in sorted(held - set(kept)):
        if free:
            kept[model] = free.pop(0)
        elif reclaimable:
            kept[model] = kept.pop(reclaimable.pop(0))
        else:
            overflow.append(model)
    for model in sorted({m for m in cold if MODEL_NAME.fullmatch(m)} - set(kept) - held):
        if free:
            kept[model] = free.pop(0)
        else:
            overflow.append(model)
    return kept, tuple(overflow)


@dataclass(frozen=True)
class MapChange:
    """One Runtime API change to the model map: ``op`` is add, set or del."""

    op: str
    model: str
    slot: Optional[str] = None


def plan_map(current: Mapping[str, str], wanted: Mapping[str, str]) -> List[MapChange]:
    """What makes the map say ``wanted``: entries gone first, then new and changed ones."""
    changes = [MapChange("del", m) for m in sorted(current) if m not in wanted]
    for model in sorted(wanted):
        if model not in current:
            changes.append(MapChange("add", model, wanted[model]))
        elif current[model] != wanted[model]:
            changes.append(MapChange("set", model, wanted[model]))
    return changes


def slot_intent(holders: Mapping[str, Target], main: RoutingIntent) -> RoutingIntent:
    """A slot backend's intent: the instances holding its model (``holders``), with the
    leaving and gone ones of the deployment's own intent, and those routable that no longer
    hold it, taken out gently (drain: requests under way finish) before their copy unloads."""
    not_holding = {a: t for a, t in main.desired.items() if a not in holders}
    return RoutingIntent(desired=dict(holders), draining={**main.draining, **not_holding}, gone=main.gone,
                         authoritative=main.authoritative)


EMPTY_SLOT = RoutingIntent(desired={}, draining={}, gone={}, authoritative=True)  # a slot no model holds
