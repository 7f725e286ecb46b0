"""What tarn-am knows of its fleet: the containers skein reports, and the instances the
streams announce, built with the shared sequence rules.

``FleetView`` is plain data (no I/O): the bus adapter feeds it the streams through
``apply_*``, the control loop's observe phase sets ``containers``; the control loop and
the REST API read it.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Deque, Dict, List, Optional, Set, Tuple

from tarn_shared import events as ev
from tarn_shared.membership import Member, MembershipView, apply_into, member_from_event, stream_id_key

from .containers import ObservedContainer
from .slot_views import FailureNotes

RECENT_EVENTS = 200
RECENT_DECISIONS = 100
MAX_ACKS = 10_000
KEEP_STOPPED = 10_000  # tombstones kept, as membership.forget_stopped
FORGET_SLACK = 1_000  # tombstones beyond KEEP_STOPPED go in batches, not one per stop


@dataclass(frozen=True)
class Roster(MembershipView):
    """The membership with its tombstones in the order they came, so bounding them never
    scans the fleet per event."""

    stopped: Deque[str] = field(default_factory=deque, repr=False, compare=False)


@dataclass
class Telemetry:
    sample: ev.TelemetrySample
    received_at: float


@dataclass
class RecentEvent:
    ts: float
    kind: str
    instance_id: str
    text: str


@dataclass
class TargetChange:
    """One move of the target instance count, as the dashboard lists it."""

    ts: float
    source: str  # "autoscale", "api", "cli", "reconcile", "start"
    previous: int
    target: int
    reason: str


@dataclass
class FleetView:
    deployment: str
    membership: MembershipView = field(default_factory=Roster)
    lifecycle_through: Optional[str] = None
    telemetry: Dict[str, Telemetry] = field(default_factory=dict)
    heartbeats: Dict[str, float] = field(default_factory=dict)
    acks: Dict[str, ev.CommandAck] = field(default_factory=dict)  # by command id
    recent: Deque[RecentEvent] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    decisions: Deque[TargetChange] = field(default_factory=lambda: deque(maxlen=RECENT_DECISIONS))
    version: int = 0  # bumps whenever membership changes: a snapshot is due
    policy_reason: Optional[str] = None  # the autoscaling policy's latest word, even when it holds
    containers: Tuple[ObservedContainer, ...] = ()  # as skein reported them in the last round
    failures: FailureNotes = field(default_factory=FailureNotes)  # each slot's last failure and why

    @property
    def members(self) -> Dict[str, Member]:
        return dict(self.membership.members)

    @property
    def acked(self) -> Set[str]:
        """The command ids acknowledged (a drain's, a load's...)."""
        return set(self.acks)

    def apply_lifecycle(self, entry_id: str, event: ev.Event, now: float) -> None:
        if self.lifecycle_through is None or stream_id_key(entry_id) > stream_id_key(self.lifecycle_through):
            self.lifecycle_through = entry_id
        if isinstance(event, ev.InstanceEvent):
            if self._apply(member_from_event(event, entry_id)):
                self.version += 1
                self.failures.apply(event)  # a stale stop is no news of why it stopped
                self.recent.append(RecentEvent(event.ts, event.type, event.instance_id,
                                               _describe_instance(event)))
            if isinstance(event, ev.InstanceReady):
                self.heartbeats[event.instance_id] = now
        elif isinstance(event, (ev.ContainerRunning, ev.ContainerCompleted, ev.ContainerFailed)):
            self.failures.apply(event)
            self.recent.append(RecentEvent(event.ts, event.type, event.container_id, _describe_container(event)))
        elif isinstance(event, ev.ContainerRequested):
            self.recent.append(RecentEvent(event.ts, event.type, event.service,
                                           f"requested on {event.service}: {event.reason}"))

    def apply_telemetry(self, event: ev.Event, now: float) -> None:
        if isinstance(event, ev.InstanceHeartbeat):
            self.heartbeats[event.instance_id] = now
        elif isinstance(event, ev.TelemetrySample):
            self.heartbeats[event.instance_id] = now
            self.telemetry[event.instance_id] = Telemetry(event, now)

    def apply_ack(self, event: ev.Event) -> None:
        if isinstance(event, ev.CommandAck):
            if len(self.acks) >= MAX_ACKS:
                self.acks.clear()  # what still waits for its ack is re-sent and acked again
            self.acks[event.command_id] = event

    def fresh_telemetry(self, now: float, max_age_s: float) -> List[ev.TelemetrySample]:
        """Samples of live instances no older than ``max_age_s``."""
        live = {i for i, m in self.membership.members.items() if m.state is not ev.InstanceState.STOPPED}
        return [t.sample for i, t in self.telemetry.items() if i in live and now - t.received_at <= max_age_s]

    def live_instances(self) -> Set[str]:
        """Instances a container of ours still holds (waiting, requested or running)."""
        return {c.instance_id for c in self.containers if c.active}

    def running_count(self) -> int:
        return sum(1 for c in self.containers if c.state == "running")

    def container_for(self, instance_id: str) -> Optional[ObservedContainer]:
        return next((c for c in self.containers if c.instance_id == instance_id), None)

    def mark_stopped(self, member: Member) -> None:
        """Applied at once, ahead of the stream, so the next round does not announce it again."""
        self._apply(replace(member, state=ev.InstanceState.STOPPED, seq=member.seq + 1))
        self.version += 1

    def _apply(self, new: Member) -> bool:
        """One member, in place: a copy and a scan of the fleet per event made 10,000 instances
        cost 6 ms an event. Readers are synchronous; one that awaits takes ``members`` (a copy)."""
        roster = self._roster()
        if not apply_into(roster.members, new):  # type: ignore[arg-type]  a dict of ours
            return False
        if new.state is ev.InstanceState.STOPPED:
            roster.stopped.append(new.instance_id)
            if len(roster.stopped) > KEEP_STOPPED + FORGET_SLACK:
                self._forget_oldest_stopped()
        return True

    def _roster(self) -> Roster:
        if not isinstance(self.membership, Roster):  # replaced wholesale (bootstrap): order its tombstones
            self.reindex_stopped()
        return self.membership  # type: ignore[return-value]

    def _forget_oldest_stopped(self) -> None:
        members, stopped = self.membership.members, self._roster().stopped
        while len(stopped) > KEEP_STOPPED:
            instance_id = stopped.popleft()
            member = members.get(instance_id)
            if member is not None and member.state is ev.InstanceState.STOPPED:
                del members[instance_id]  # type: ignore[attr-defined]

    def reindex_stopped(self) -> None:
        """After the membership was replaced wholesale (a snapshot or a delta at bootstrap):
        order its tombstones again, and bound them."""
        stopped = [m for m in self.membership.members.values() if m.state is ev.InstanceState.STOPPED]
        stopped.sort(key=lambda m: stream_id_key(m.entry_id) if m.entry_id else (0, 0))
        self.membership = Roster(self.membership.members, deque(m.instance_id for m in stopped))
        self._forget_oldest_stopped()

    def forget_instance_data(self, keep: Set[str]) -> None:
        for table in (self.telemetry, self.heartbeats):
            for instance_id in [i for i in table if i not in keep]:
                del table[instance_id]


def _describe_instance(event: ev.InstanceEvent) -> str:
    text = f"{event.instance_id} {event.state.value if hasattr(event.state, 'value') else event.state}"
    text += f" at {event.endpoints.address}"
    reason = getattr(event, "reason", "")
    return f"{text}: {reason}" if reason else text


def _describe_container(event: ev.ContainerEvent) -> str:
    where = f" on {event.host}" if event.host else ""
    text = f"container {event.container_id} {event.type.split('.', 1)[1]}{where}"
    diagnostics = getattr(event, "diagnostics", "")
    return f"{text}: {diagnostics[:200]}" if diagnostics else text
