"""What tarn-am announces on the lifecycle stream about what it observes, pure: container
transitions, stops on behalf of agents that can no longer say so (a lost container, an
orphan of an earlier application or attempt), and the membership snapshot.

``Announcer`` holds who tarn-am announces as and what it has announced; the control loop
publishes the events it builds and keeps the returned copy (no I/O here).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import List, Mapping, Optional, Sequence, Tuple

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
    snapshot_seq: int = 0
    snapshot_version: int = -1  # the view's version the last snapshot showed
    snapshot_at: float = 0.0

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

    # -- the membership snapshot -----------------------------------------------------
    def snapshot_due(self, changed: bool, version: int, now: float) -> bool:
        return changed or version != self.snapshot_version or now - self.snapshot_at >= ev.SNAPSHOT_INTERVAL_S

    def snapshot(self, members: Mapping[str, Member], live: set, lifecycle_through: Optional[str],
                 desired: int) -> Tuple[ev.MembershipSnapshot, "Announcer"]:
        """The next snapshot, and the announcer that numbered it: a number once handed out is
        never reused, even when publishing it fails (it may have reached Redis)."""
        seq = self.snapshot_seq + 1
        snapshot = ev.MembershipSnapshot(
            deployment=self.deployment, app_id=self.app_id, snapshot_seq=seq,
            lifecycle_through=lifecycle_through, desired_count=desired,
            members=[ev.MemberState(instance_id=m.instance_id, state=m.state, seq=m.seq, endpoints=m.endpoints,
                                    models=list(m.models))
                     for m in members.values() if m.state is not ev.InstanceState.STOPPED and m.instance_id in live])
        return snapshot, replace(self, snapshot_seq=seq)

    def snapshot_sent(self, version: int, now: float) -> "Announcer":
        return replace(self, snapshot_version=version, snapshot_at=now)
