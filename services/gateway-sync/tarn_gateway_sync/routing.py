"""One deployment's desired routing, built from lifecycle events with the shared sequence
rules. Pure: no I/O, no clock."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Mapping, Optional, Set, Tuple

from tarn_shared import events as ev
from tarn_shared.membership import Member, MembershipView, apply_delta, apply_event, apply_snapshot, forget_stopped

DRAINING_STATES = frozenset({ev.InstanceState.DRAINING, ev.InstanceState.UNROUTED})
# Unready is alive but failing its probes (slow, not dead): taken out as gently as a drain,
# no new traffic and its open requests finish; never `shutdown sessions`.
LEAVING_STATES = DRAINING_STATES | {ev.InstanceState.UNREADY}


@dataclass(frozen=True)
class Fleet:
    """``authoritative`` turns true once a snapshot with ``lifecycle_through`` was applied:
    before that, an address nobody told us about is left alone (an empty Redis is not an
    empty fleet)."""

    view: MembershipView = field(default_factory=MembershipView)
    authoritative: bool = False

    def routable(self) -> Dict[str, Member]:
        return self.view.routable()

    def draining(self) -> Dict[str, Member]:
        """Draining, unrouted or unready instances whose address no ready instance has taken
        over: out gently (drain, removed once empty)."""
        routable = self.routable()
        return {m.endpoints.address: m for m in self.view.members.values()
                if m.state in LEAVING_STATES and m.endpoints and m.endpoints.address not in routable}

    def gone(self) -> FrozenSet[str]:
        """Addresses known to be stopped, and not taken over by another instance."""
        keep = set(self.routable()) | set(self.draining())
        return frozenset(m.endpoints.address for m in self.view.members.values()
                         if m.endpoints and m.endpoints.address not in keep
                         and m.state not in LEAVING_STATES and not m.routable)

    def addresses(self) -> Set[str]:
        return {m.endpoints.address for m in self.view.members.values() if m.endpoints}


def apply_lifecycle(fleet: Fleet, event: ev.Event, entry_id: Optional[str] = None) -> Fleet:
    """The fleet after one lifecycle entry; events that do not concern routing change nothing."""
    if isinstance(event, ev.MembershipSnapshot):
        view = forget_stopped(apply_snapshot(fleet.view, event, entry_id))
        return Fleet(view, fleet.authoritative or event.lifecycle_through is not None)
    if isinstance(event, ev.MembershipDelta):  # never authoritative: it does not list the whole fleet
        return Fleet(apply_delta(fleet.view, event, entry_id), fleet.authoritative)
    if isinstance(event, ev.InstanceEvent):
        return Fleet(apply_event(fleet.view, event, entry_id), fleet.authoritative)
    return fleet


def changed_addresses(old: Fleet, new: Fleet) -> Set[str]:
    """Addresses whose routing may differ between two fleets (the scope of an immediate sync)."""
    changed: Set[str] = set()
    for instance_id in set(old.view.members) | set(new.view.members):
        before, after = old.view.members.get(instance_id), new.view.members.get(instance_id)
        if before == after:
            continue
        for member in (before, after):
            if member is not None and member.endpoints is not None:
                changed.add(member.endpoints.address)
    return changed


def znode_data(deployment: str, member: Member) -> bytes:
    """What a znode holds: what Knox's URL manager and operators read."""
    endpoints = member.endpoints
    assert endpoints is not None
    return json.dumps({
        "url": f"http://{endpoints.address}",
        "host": endpoints.host,
        "port": endpoints.http_port,
        "grpc_port": endpoints.grpc_port,
        "metrics_port": endpoints.metrics_port,
        "container_id": member.instance_id,
        "app_id": member.app_id,
        "models": list(member.models),
        "deployment": deployment,
    }, sort_keys=True, separators=(",", ":")).encode()


SentUnrouted = Mapping[str, Tuple[int, Optional[int]]]  # instance id -> (draining seq, open requests sent)


def due_unrouted(fleet: Fleet, scope: Optional[Set[str]], sent: SentUnrouted,
                 open_requests: Mapping[str, Optional[int]]) -> Dict[str, Tuple[Member, Optional[int]]]:
    """Draining members (in scope) to announce unrouted, with the requests still open at the
    gateways (``open_requests`` by address; None: not counted this time): once per draining
    sequence, then again whenever that count changes, so the node-agent waits for zero. The
    caller announces them only after both gateways took them out."""
    due: Dict[str, Tuple[Member, Optional[int]]] = {}
    for address, m in fleet.draining().items():
        if m.state not in DRAINING_STATES or (scope is not None and address not in scope):
            continue
        count = open_requests.get(address)
        sent_seq, sent_count = sent.get(m.instance_id, (-1, None))
        if sent_seq > m.seq:
            continue
        fresh = sent_seq < m.seq
        # An unrouted one seen fresh was announced by an earlier replica: only counts follow.
        if (fresh and m.state is ev.InstanceState.DRAINING) or (count is not None and (fresh or count != sent_count)):
            due[address] = (m, count)
    return due
