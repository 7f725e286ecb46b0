"""Which live deployment owns each HAProxy backend and ZooKeeper path (tarn_shared.claims),
so that gateway-sync writes a place only for its owner and cleans a place nobody owns any
more (a removed deployment's, or the old one of a record that moved).

The rule: an owner keeps its place while its record is live and still claims it; a free
place goes to the earliest claim (record ``ts``: its AM's start; then name). A later
claimant of an owned place (or of a ZooKeeper path inside it, or around it) is refused
that place: nothing is written there for it, and it is counted and logged, once. The
decision is ``decide_ownership``, pure; ``Claims`` keeps its result between calls."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Mapping, Optional, Set, Tuple

from tarn_shared import events as ev
from tarn_shared.claims import HAPROXY, ZOOKEEPER, Place, claim_order, overlaps, places_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ownership:
    owners: Mapping[Place, str] = field(default_factory=dict)  # place -> deployment
    refused: Mapping[str, Mapping[Place, str]] = field(default_factory=dict)  # deployment -> place -> owner

    def refused_places(self, deployment: str) -> FrozenSet[Place]:
        return frozenset(self.refused.get(deployment, {}))


def decide_ownership(records: Mapping[str, ev.DeploymentRecord], previous: Ownership,
                     default_ensemble: Optional[str]) -> Tuple[Ownership, FrozenSet[Place]]:
    """The new ownership, and the places to clean: owned before, owned by nobody now."""
    claims: List[Tuple[Tuple[int, float, str], str, Place]] = []
    for name, record in records.items():
        if record.removed:
            continue
        for place in places_of(record, default_ensemble):
            kept = 0 if previous.owners.get(place) == name else 1
            claims.append(((kept,) + claim_order(record), name, place))
    owners: Dict[Place, str] = {}
    refused: Dict[str, Dict[Place, str]] = {}
    for _, name, place in sorted(claims):
        owner = next((who for theirs, who in owners.items() if who != name and overlaps(place, theirs)), None)
        if owner is None:
            owners[place] = name
        else:
            refused.setdefault(name, {})[place] = owner
    released = frozenset(p for p in previous.owners if p not in owners)
    return Ownership(owners, refused), released


class Claims:
    """The current Ownership and the places still to clean (until a cleaning succeeds)."""

    def __init__(self, default_ensemble: Optional[str], on_refused=lambda deployment, place: None) -> None:
        self.ownership = Ownership()
        self.to_clean: Set[Place] = set()
        self.default_ensemble = default_ensemble
        self._on_refused = on_refused

    def refresh(self, records: Mapping[str, ev.DeploymentRecord]) -> None:
        before = self.ownership
        self.ownership, released = decide_ownership(records, before, self.default_ensemble)
        self.to_clean = (self.to_clean | released) - set(self.ownership.owners)
        for name, places in self.ownership.refused.items():
            for place, owner in places.items():
                if before.refused.get(name, {}).get(place) != owner:
                    log.warning(f"deployment {name} refused {place.describe()}: deployment {owner} owns it",
                                extra={"deployment": name, "owner": owner, "app_id": records[name].app_id})
                    self._on_refused(name, place)
        for place in released:
            log.info(f"{place.describe()} is no longer owned; cleaning it",
                     extra={"deployment": before.owners[place]})

    def owns(self, deployment: str, place: Place) -> bool:
        return self.ownership.owners.get(place) == deployment

    def refused(self, deployment: str) -> FrozenSet[Place]:
        return self.ownership.refused_places(deployment)

    def cleaned(self, place: Place) -> None:
        self.to_clean.discard(place)

    def saved(self) -> Dict[Place, str]:
        """What a replica started later needs: every owned place and its owner, and the
        places still to clean (owner "")."""
        return {**{place: "" for place in self.to_clean}, **self.ownership.owners}

    def restore(self, saved: Mapping[Place, str]) -> None:
        """Take ``saved`` as the previous ownership: owners keep their places, and what
        nobody claims any more (moved or removed while no replica ran) is cleaned."""
        self.ownership = Ownership({**saved, **self.ownership.owners}, self.ownership.refused)


def place_key(place: Place) -> str:
    return json.dumps([place.kind, place.ensemble, place.name])


def place_from_key(key: str) -> Optional[Place]:
    """None for a field this version does not understand (it is left alone, never cleaned)."""
    try:
        kind, ensemble, name = json.loads(key)
    except (ValueError, TypeError):
        return None
    if kind not in (HAPROXY, ZOOKEEPER) or not all(isinstance(v, str) for v in (ensemble, name)) or not name:
        return None
    return Place(kind, ensemble, name)
