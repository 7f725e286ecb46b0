"""The sequence rules every consumer of lifecycle events applies, as pure functions.

Shared by the AM and gateway-sync so both read the same stream the same way:

* an instance's state only moves forward: an update with a lower ``seq`` than the one
  already known is ignored, and at an equal ``seq`` only a later state in
  ``STATE_ORDER`` wins (gateway-sync's unrouted answers a draining at the same seq);
* stopped is terminal and kept as a tombstone, so a stale snapshot cannot resurrect it;
* a snapshot removes an instance it does not list only if everything known of that
  instance came from a stream entry the AM had already applied (``lifecycle_through``);
  a snapshot without that mark, or no snapshot at all, removes nothing, so an empty or
  restarted Redis never reads as an empty fleet;
* a delta lists what changed and which ids went; it removes only those, by the same rule
  (``lifecycle_through``), and never stands for the whole fleet.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, Mapping, Optional, Tuple

from .events import Endpoints, InstanceEvent, InstanceState, MemberState, MembershipDelta, MembershipSnapshot

STATE_ORDER = {
    InstanceState.REQUESTED: 0,
    InstanceState.STARTING: 1,
    InstanceState.READY: 2,
    InstanceState.UNREADY: 3,
    InstanceState.DRAINING: 4,
    InstanceState.UNROUTED: 5,
    InstanceState.STOPPED: 6,
}
ROUTABLE = frozenset({InstanceState.READY})


@dataclass(frozen=True)
class Member:
    instance_id: str
    state: InstanceState
    seq: int
    endpoints: Optional[Endpoints] = None
    models: Tuple[str, ...] = ()
    app_id: Optional[str] = None
    entry_id: Optional[str] = None  # the stream entry this knowledge came from

    @property
    def routable(self) -> bool:
        return self.state in ROUTABLE and self.endpoints is not None


@dataclass(frozen=True)
class MembershipView:
    members: Mapping[str, Member] = field(default_factory=dict)

    def routable(self) -> Dict[str, Member]:
        """Ready, non-draining instances keyed by ``host:port``."""
        return {m.endpoints.address: m for m in self.members.values() if m.routable and m.endpoints}


def stream_id_key(entry_id: str) -> Tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def supersedes(new: Member, old: Optional[Member]) -> bool:
    if old is None:
        return True
    if old.state is InstanceState.STOPPED:
        return False
    if new.seq != old.seq:
        return new.seq > old.seq
    return STATE_ORDER[new.state] > STATE_ORDER[old.state]


def member_from_event(event: InstanceEvent, entry_id: Optional[str] = None) -> Member:
    return Member(
        instance_id=event.instance_id,
        state=InstanceState(event.state),  # type: ignore[attr-defined]
        seq=event.seq,
        endpoints=event.endpoints,
        models=tuple(event.models),
        app_id=event.app_id,
        entry_id=entry_id,
    )


def apply_member(view: MembershipView, new: Member) -> MembershipView:
    members = dict(view.members)
    return MembershipView(members) if apply_into(members, new) else view


def apply_into(members: Dict[str, Member], new: Member) -> bool:
    """``apply_member`` in place, for a holder that owns ``members``; True if it changed."""
    old = members.get(new.instance_id)
    if not supersedes(new, old):
        return False
    if old is not None and new.endpoints is None:
        new = replace(new, endpoints=old.endpoints, models=new.models or old.models)
    members[new.instance_id] = new
    return True


def apply_event(view: MembershipView, event: InstanceEvent, entry_id: Optional[str] = None) -> MembershipView:
    return apply_member(view, member_from_event(event, entry_id))


def apply_snapshot(view: MembershipView, snapshot: MembershipSnapshot, entry_id: Optional[str] = None) -> MembershipView:
    members = dict(view.members)  # one copy for the whole snapshot, not one per member
    _apply_listed(members, snapshot.members, snapshot.app_id, entry_id)
    if snapshot.lifecycle_through is not None:
        listed = {s.instance_id for s in snapshot.members}
        _remove_seen(members, (i for i in list(members) if i not in listed), snapshot.lifecycle_through, entry_id)
    return MembershipView(members)


def apply_delta(view: MembershipView, delta: MembershipDelta, entry_id: Optional[str] = None) -> MembershipView:
    """Costs what the delta lists, never a pass over the whole fleet."""
    members = dict(view.members)
    _apply_listed(members, delta.members, delta.app_id, entry_id)
    if delta.lifecycle_through is not None:
        _remove_seen(members, delta.removed, delta.lifecycle_through, entry_id)
    return MembershipView(members)


def _apply_listed(members: Dict[str, Member], listed: Iterable[MemberState], app_id: str,
                  entry_id: Optional[str]) -> None:
    for state in listed:
        apply_into(members, Member(
            instance_id=state.instance_id, state=InstanceState(state.state), seq=state.seq,
            endpoints=state.endpoints, models=tuple(state.models), app_id=app_id, entry_id=entry_id,
        ))


def _remove_seen(members: Dict[str, Member], instance_ids: Iterable[str], lifecycle_through: str,
                 entry_id: Optional[str]) -> None:
    """Mark stopped those of ``instance_ids`` known only from entries at or before ``lifecycle_through``."""
    through = stream_id_key(lifecycle_through)
    for instance_id in instance_ids:
        member = members.get(instance_id)
        if member is None or member.state is InstanceState.STOPPED:
            continue
        if member.entry_id is not None and stream_id_key(member.entry_id) <= through:
            members[instance_id] = replace(member, state=InstanceState.STOPPED, entry_id=entry_id)


def forget_stopped(view: MembershipView, keep: int = 10_000) -> MembershipView:
    """Bound the tombstones: drop the oldest stopped members beyond ``keep``."""
    stopped = [m for m in view.members.values() if m.state is InstanceState.STOPPED]
    if len(stopped) <= keep:
        return view
    stopped.sort(key=lambda m: stream_id_key(m.entry_id) if m.entry_id else (0, 0))
    drop = {m.instance_id for m in stopped[: len(stopped) - keep]}
    return MembershipView({k: v for k, v in view.members.items() if k not in drop})
