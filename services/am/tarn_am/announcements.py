"""What tarn-am announces on the lifecycle stream about what it observes, pure: container
transitions, stops on behalf of agents that can no longer say so (a lost container, an
orphan of an earlier application or attempt), and the membership: a delta on each change, a
full snapshot every ``full_every_s`` (or when a delta would be no smaller).

``Announcer`` holds who tarn-am announces as and what it has announced; the control loop
publishes the events it builds and keeps the returned copy (no I/O here).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from tarn_shared import events as ev
from tarn_shared.membership import Member

from .containers import FINISHED_STATES, ContainerLost, ObservedContainer

CONTAINER_ID_RE = re.compile(r"^container_(?:e\d+_)?(\d+_\d+_\d+)_\d+$")
REASON_MAX = 500
DIAGNOSTICS_MAX = 2000


def attempt_of(container_id: str) -> Optional[str]:
    """``container_[e<epoch>_]<ts>_<app>_<attempt>_<n>`` -> "<ts>_<app>_<attempt>"."""
    match = CONTAINER_ID_RE.match(container_id)
    return match.group(1) if match else None


def _announced_alive(member: Optional[Member]) -> bool:
    """The streams still show it serving: someone must announce its stop."""
    return member is not None and member.state is not ev.InstanceState.STOPPED and member.endpoints is not None


@dataclass(frozen=True)
class Announcer:
    deployment: str
    app_id: str
    attempt: Optional[str] = None  # this application attempt (from the AM's own container id)
    published: Mapping[str, str] = field(default_factory=dict)  # skein id -> container state announced
    snapshot_seq: int = 0  # numbers snapshots and deltas alike
    snapshot_version: int = -1  # the view's version the last snapshot or delta showed
    snapshot_at: float = 0.0  # when the last full snapshot went out
    full_seq: int = 0  # the last full snapshot's number; 0: none sent yet
    listed: Mapping[str, Member] = field(default_factory=dict)  # what the consumers were last told
    pending: Mapping[str, Member] = field(default_factory=dict)  # what they are told once sent() says so
    full_every_s: float = ev.FULL_SNAPSHOT_INTERVAL_S

    # -- containers ------------------------------------------------------------------
    def taken_over(self, containers: Sequence[ObservedContainer]) -> "Announcer":
        """A restarted tarn-am does not announce again what the containers were before it."""
        return replace(self, published={c.skein_id: c.state for c in containers})

    def changed(self, containers: Sequence[ObservedContainer]) -> List[ObservedContainer]:
        return [c for c in containers if self.published.get(c.skein_id) != c.state]

    def saw(self, container: ObservedContainer) -> "Announcer":
        return replace(self, published={**self.published, container.skein_id: container.state})

    def container_event(self, container: ObservedContainer, accounted: frozenset) -> Optional[ev.Event]:
        """Running, or completed on purpose (``accounted``: released or handled, not failed)."""
        common = dict(deployment=self.deployment, app_id=self.app_id, container_id=container.instance_id,
                      host=container.host or None, service=container.service)
        if container.state == "running":
            return ev.ContainerRunning(**common)
        if container.state in FINISHED_STATES and container.skein_id in accounted and container.state != "failed":
            return ev.ContainerCompleted(**common, diagnostics=container.exit_message[:DIAGNOSTICS_MAX])
        return None

    # -- stops on an agent's behalf --------------------------------------------------
    def lost(self, lost: ContainerLost, member: Optional[Member]) -> List[ev.Event]:
        events: List[ev.Event] = [ev.ContainerFailed(
            deployment=self.deployment, app_id=self.app_id, container_id=lost.instance_id, host=lost.host or None,
            service=lost.service, diagnostics=lost.exit_message[:DIAGNOSTICS_MAX], restarts=lost.failures_in_window)]
        if _announced_alive(member):
            # Its agent is gone and cannot say so: announce the stop on its behalf, one seq on.
            events.append(self._stopped(member, self.app_id, f"container lost: {lost.exit_message}"))
        return events

    def orphans(self, containers: Sequence[ObservedContainer],
                members: Mapping[str, Member]) -> List[Tuple[Member, ev.InstanceStopped]]:
        """Instances the streams still show alive but no container of ours runs (an earlier
        application of this deployment, a container that ended unseen), with their stop."""
        live = {c.instance_id for c in containers if c.active}
        known = {c.instance_id for c in containers}
        stops = []
        for member in members.values():
            if not _announced_alive(member) or member.instance_id in live:
                continue
            other_attempt = self.attempt is not None and attempt_of(member.instance_id) not in (None, self.attempt)
            if member.instance_id in known or other_attempt or member.app_id not in (None, self.app_id):
                stops.append((member, self._stopped(member, member.app_id or self.app_id,
                                                    "no running container holds it")))
        return stops

    def _stopped(self, member: Member, app_id: str, reason: str) -> ev.InstanceStopped:
        return ev.InstanceStopped(deployment=self.deployment, app_id=app_id, instance_id=member.instance_id,
                                  seq=member.seq + 1, endpoints=member.endpoints, models=list(member.models),
                                  reason=reason[:REASON_MAX])

    # -- the membership -------------------------------------------------------------
    def snapshot_due(self, changed: bool, version: int, now: float) -> bool:
        return changed or version != self.snapshot_version or self.full_due(now)

    def full_due(self, now: float) -> bool:
        return self.full_seq == 0 or now - self.snapshot_at >= self.full_every_s

    def snapshot(self, members: Mapping[str, Member], live: set, lifecycle_through: Optional[str],
                 desired: int) -> Tuple[ev.MembershipSnapshot, "Announcer"]:
        """The next full snapshot, and the announcer that numbered it: a number once handed out
        is never reused, even when publishing it fails (it may have reached Redis)."""
        seq = self.snapshot_seq + 1
        current = _listable(members, live)
        snapshot = ev.MembershipSnapshot(
            deployment=self.deployment, app_id=self.app_id, snapshot_seq=seq,
            lifecycle_through=lifecycle_through, desired_count=desired, interval_s=self.full_every_s,
            members=[_member_state(m) for m in current.values()])
        return snapshot, replace(self, snapshot_seq=seq, pending=current)

    def update(self, members: Mapping[str, Member], live: set, lifecycle_through: Optional[str], desired: int,
               now: float, full: bool = False) -> Tuple[Optional[Membership], "Announcer"]:
        """What to publish about the membership now: a full snapshot when ``full``, due, or
        no larger than the delta would be; else the delta (None: nothing changed)."""
        if full or self.full_due(now):
            return self.snapshot(members, live, lifecycle_through, desired)
        current = _listable(members, live)
        # The view replaces a member only when it changes: most are the very object last listed.
        changed = [m for i, m in current.items()
                   if (told := self.listed.get(i)) is not m and (told is None or _key(told) != _key(m))]
        removed = sorted(i for i in self.listed if i not in current)
        if len(changed) + len(removed) > len(current) / 2:
            return self.snapshot(members, live, lifecycle_through, desired)
        if not changed and not removed:
            return None, self
        seq = self.snapshot_seq + 1
        delta = ev.MembershipDelta(
            deployment=self.deployment, app_id=self.app_id, snapshot_seq=seq, full_seq=self.full_seq,
            lifecycle_through=lifecycle_through, desired_count=desired,
            members=[_member_state(m) for m in changed], removed=removed)
        return delta, replace(self, snapshot_seq=seq, pending=current)

    def sent(self, published: Optional[Membership], version: int, now: float) -> "Announcer":
        """After ``published`` reached Redis (None: nothing needed to)."""
        if published is None:
            return replace(self, snapshot_version=version)
        sent = replace(self, snapshot_version=version, listed=self.pending, pending={})
        if isinstance(published, ev.MembershipSnapshot):
            return replace(sent, snapshot_at=now, full_seq=published.snapshot_seq)
        return sent


Membership = Union[ev.MembershipSnapshot, ev.MembershipDelta]


def _listable(members: Mapping[str, Member], live: set) -> Dict[str, Member]:
    return {i: m for i, m in members.items() if m.state is not ev.InstanceState.STOPPED and i in live}


def _key(member: Member) -> tuple:
    """What a consumer learns of a member: a change in any of it goes in the next delta."""
    return member.state, member.seq, member.endpoints, tuple(member.models)


def _member_state(member: Member) -> ev.MemberState:
    return ev.MemberState(instance_id=member.instance_id, state=member.state, seq=member.seq,
                          endpoints=member.endpoints, models=list(member.models))
