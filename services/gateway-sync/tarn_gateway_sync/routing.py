"""One deployment's desired routing, built from lifecycle events with the shared sequence
rules. Pure: no I/O, no clock.

A Fleet is kept in place and indexed by address, so an event costs work for the addresses
it touched only: each address is classified (routable, draining, gone) when one of its
members changes, never by a pass over the fleet or its tombstones: a membership delta
costs the members it lists. Full snapshots (periodic) rebuild the index."""
from __future__ import annotations

import json
from collections import deque
from typing import Deque, Dict, FrozenSet, Iterable, Mapping, Optional, Set, Tuple

from tarn_shared import events as ev
from tarn_shared.membership import (Member, MembershipView, apply_delta, apply_into, apply_snapshot,
                                    forget_stopped, member_from_event, stream_id_key)

DRAINING_STATES = frozenset({ev.InstanceState.DRAINING, ev.InstanceState.UNROUTED})
# Unready is alive but failing its probes (slow, not dead): taken out as gently as a drain,
# no new traffic and its open requests finish; never `shutdown sessions`.
LEAVING_STATES = DRAINING_STATES | {ev.InstanceState.UNREADY}
ROUTABLE, DRAINING, GONE = "routable", "draining", "gone"
KEEP_STOPPED = 10_000  # tombstones kept, as membership.forget_stopped


def _address(member: Optional[Member]) -> Optional[str]:
    return member.endpoints.address if member is not None and member.endpoints is not None else None


def classify(members: Iterable[Member]) -> Optional[Tuple[str, Member]]:
    """What one address is, from the members at it (in the order they came): routable if
    any is ready, else draining if any is leaving, else gone if any is stopped or not yet
    ready; the last such member speaks for it."""
    found: Dict[str, Member] = {}
    for m in members:
        kind = ROUTABLE if m.routable else DRAINING if m.state in LEAVING_STATES else GONE
        found[kind] = m
    for kind in (ROUTABLE, DRAINING, GONE):
        if kind in found:
            return kind, found[kind]
    return None


class Fleet:
    """``authoritative`` turns true once a snapshot with ``lifecycle_through`` was applied:
    before that, an address nobody told us about is left alone (an empty Redis is not an
    empty fleet)."""

    def __init__(self, members: Optional[Mapping[str, Member]] = None, authoritative: bool = False) -> None:
        self.members: Dict[str, Member] = dict(members or {})
        self.authoritative = authoritative
        self._rebuild()

    def _rebuild(self) -> None:
        self._at: Dict[str, Dict[str, None]] = {}  # address -> instance ids, in the order they came
        self._routes: Dict[str, Tuple[str, Member]] = {}  # address -> (kind, member)
        self._kinds: Dict[str, Set[str]] = {ROUTABLE: set(), DRAINING: set(), GONE: set()}
        for member in self.members.values():
            address = _address(member)
            if address is not None:
                self._at.setdefault(address, {})[member.instance_id] = None
        for address in self._at:
            self._classify(address)
        stopped = [m for m in self.members.values() if m.state is ev.InstanceState.STOPPED]
        stopped.sort(key=lambda m: stream_id_key(m.entry_id) if m.entry_id else (0, 0))
        self._stopped: Deque[str] = deque(m.instance_id for m in stopped)

    @property
    def view(self) -> MembershipView:
        return MembershipView(self.members)

    def copy(self) -> "Fleet":
        return Fleet(self.members, self.authoritative)

    # ------------------------------------------------------------ changes

    def apply(self, event: ev.Event, entry_id: Optional[str] = None) -> Set[str]:
        """Apply one lifecycle entry in place; the addresses whose routing may have changed
        (empty: nothing did). Events that do not concern routing change nothing."""
        if isinstance(event, ev.MembershipSnapshot):
            return self._apply_snapshot(event, entry_id)
        if isinstance(event, ev.MembershipDelta):
            return self._apply_delta(event, entry_id)
        if not isinstance(event, ev.InstanceEvent):
            return set()
        new = member_from_event(event, entry_id)
        old = self.members.get(new.instance_id)
        if not apply_into(self.members, new):
            return set()
        return self._put(old, self.members[new.instance_id])

    def _apply_delta(self, delta: ev.MembershipDelta, entry_id: Optional[str]) -> Set[str]:
        """The shared delta rule applied to the members the delta names only, so it costs what
        it lists; never authoritative (it does not list the whole fleet)."""
        named = {m.instance_id for m in delta.members} | set(delta.removed)
        before = {i: self.members[i] for i in named if i in self.members}
        touched: Set[str] = set()
        for instance_id, new in apply_delta(MembershipView(before), delta, entry_id).members.items():
            if before.get(instance_id) != new:
                touched |= self._put(before.get(instance_id), new)
        return touched

    def _put(self, old: Optional[Member], new: Member) -> Set[str]:
        """Set one member that superseded ``old``; the addresses it touched."""
        self.members[new.instance_id] = new
        touched = {a for a in (_address(old), _address(new)) if a is not None}
        if _address(old) is not None and _address(old) != _address(new):
            self._at[_address(old)].pop(new.instance_id, None)
        if _address(new) is not None:
            self._at.setdefault(_address(new), {})[new.instance_id] = None
        for address in touched:
            self._classify(address)
        if new.state is ev.InstanceState.STOPPED:
            self._stopped.append(new.instance_id)
            self._forget_oldest_stopped()
        return touched

    def _apply_snapshot(self, snapshot: ev.MembershipSnapshot, entry_id: Optional[str]) -> Set[str]:
        before = self.members
        after = forget_stopped(apply_snapshot(MembershipView(before), snapshot, entry_id), KEEP_STOPPED).members
        changed = {a for i in set(before) | set(after) if before.get(i) != after.get(i)
                   for a in (_address(before.get(i)), _address(after.get(i))) if a is not None}
        self.members = dict(after)
        self.authoritative = self.authoritative or snapshot.lifecycle_through is not None
        self._rebuild()
        return changed

    def _forget_oldest_stopped(self) -> None:
        while len(self._stopped) > KEEP_STOPPED:
            instance_id = self._stopped.popleft()
            member = self.members.get(instance_id)
            if member is None or member.state is not ev.InstanceState.STOPPED:
                continue
            del self.members[instance_id]
            address = _address(member)
            if address is not None:
                self._at[address].pop(instance_id, None)
                self._classify(address)

    def _classify(self, address: str) -> None:
        ids = self._at.get(address, {})
        route = classify(self.members[i] for i in ids)
        previous = self._routes.pop(address, None)
        if previous is not None:
            self._kinds[previous[0]].discard(address)
        if route is None:
            self._at.pop(address, None)
            return
        self._routes[address] = route
        self._kinds[route[0]].add(address)

    # ------------------------------------------------------------ reads

    def routes(self, kind: str, scope: Optional[Set[str]] = None) -> Dict[str, Member]:
        """The addresses of one kind (in ``scope``; None: all), each with the member that speaks for it."""
        addresses = self._kinds[kind] if scope is None else self._kinds[kind] & scope
        return {a: self._routes[a][1] for a in addresses}

    def routable(self) -> Dict[str, Member]:
        return self.routes(ROUTABLE)

    def draining(self) -> Dict[str, Member]:
        """Draining, unrouted or unready instances whose address no ready instance has taken
        over: out gently (drain, removed once empty)."""
        return self.routes(DRAINING)

    def gone(self) -> FrozenSet[str]:
        """Addresses known to be stopped (or not ready yet), and not taken over by another instance."""
        return frozenset(self._kinds[GONE])

    def count(self, kind: str) -> int:
        return len(self._kinds[kind])

    def draining_addresses(self) -> Set[str]:
        return set(self._kinds[DRAINING])

    def addresses(self) -> Set[str]:
        return set(self._routes)


def apply_lifecycle(fleet: Fleet, event: ev.Event, entry_id: Optional[str] = None) -> Fleet:
    """A new fleet after one lifecycle entry (copies: for tests and one-off use; the
    service applies in place with ``Fleet.apply``)."""
    new = fleet.copy()
    new.apply(event, entry_id)
    return new


def changed_addresses(old: Fleet, new: Fleet) -> Set[str]:
    """Addresses whose routing may differ between two fleets."""
    changed: Set[str] = set()
    for instance_id in set(old.members) | set(new.members):
        before, after = old.members.get(instance_id), new.members.get(instance_id)
        if before != after:
            changed |= {a for a in (_address(before), _address(after)) if a is not None}
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


def due_unrouted(draining: Mapping[str, Member], sent: SentUnrouted,
                 open_requests: Mapping[str, Optional[int]]) -> Dict[str, Tuple[Member, Optional[int]]]:
    """Of the ``draining`` members (by address, as the gateways were just synced to), those
    to announce unrouted, with the requests still open at the gateways (``open_requests`` by
    address; None: not counted this time): once per draining sequence, then again whenever
    that count changes, so the node-agent waits for zero. The caller announces them only
    after both gateways took them out."""
    due: Dict[str, Tuple[Member, Optional[int]]] = {}
    for address, m in draining.items():
        if m.state not in DRAINING_STATES:
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
