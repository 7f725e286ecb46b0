"""The reconcile decision, pure: ``decide(desired, observed, now, state) -> (actions, state)``.

No I/O and no clock: the control loop observes skein's containers and the node-agents'
events, calls ``decide``, and hands the returned actions to the adapters. Everything the
decision remembers between rounds (restart backoff, crash loops, drains in progress,
completions already handled) lives in the returned ``FleetState``.

Placement: one skein service per eligible node ("slot", see cli/spec.py), each with at most
one container, so "at most one Triton container per node" holds by construction and
an instance that cannot be placed is reported as blocked by anti-affinity, and so is a request
YARN leaves unfilled past the blocked timeout, which is re-placed (unfilled.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from tarn_shared.events import InstanceState
from tarn_shared.membership import Member

from . import unfilled
from .bus_health import BusHealth, silent_since
from .containers import (FINISHED_STATES, Action, ContainerLost, ObservedContainer, ReleaseContainer, SendDrain,
                         Slot, StartContainer)
from .policy_config import CRASH_LOOP_FAILURES, CRASH_LOOP_WINDOW_S, HEARTBEAT_TIMEOUT_S, START_TIMEOUT_S
from .policy_config import BLOCKED_TIMEOUT_S, check as check_policy


# ---------------------------------------------------------------- inputs

@dataclass(frozen=True)
class ReconcileTimings:
    """Timing knobs of the reconcile decision (seconds)."""

    restart_backoff_initial_s: float = 2.0
    restart_backoff_max_s: float = 60.0
    crash_loop_failures: int = CRASH_LOOP_FAILURES  # this many failures of one slot within the window...
    crash_loop_window_s: float = CRASH_LOOP_WINDOW_S  # ...mark it crash-looping until the window clears
    drain_timeout_s: float = 60.0
    drain_grace_s: float = 15.0  # after the drain timeout the agent had: release anyway
    command_resend_s: float = 2.0
    start_timeout_s: float = START_TIMEOUT_S  # running but never ready: released and counted as a failure
    heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S  # ready, then silent this long: released, counted
    blocked_timeout_s: float = BLOCKED_TIMEOUT_S  # a request YARN leaves unfilled this long: blocked, re-placed

    def __post_init__(self) -> None:
        check_policy(self.__dict__)  # the rules tarn submit and tarn-am's settings apply


@dataclass(frozen=True)
class Observation:
    containers: Tuple[ObservedContainer, ...]
    members: Mapping[str, Member] = field(default_factory=dict)  # by instance id
    last_heartbeat: Mapping[str, float] = field(default_factory=dict)  # by instance id
    acked_commands: FrozenSet[str] = frozenset()
    # Our own bus: heartbeats and readiness reach us only through it, so silence measured
    # while it was down, reconnecting or behind says nothing of an instance (bus_health.py).
    bus: BusHealth = BusHealth(True)
    release_first: FrozenSet[str] = frozenset()  # emptied by model placement: drained before other ready ones


# ---------------------------------------------------------------- remembered state

@dataclass(frozen=True)
class Drain:
    skein_id: str
    instance_id: str
    command_id: str
    started_at: float
    last_sent_at: float
    reason: str


@dataclass(frozen=True)
class FleetState:
    failures: Mapping[str, Tuple[float, ...]] = field(default_factory=dict)  # service -> failure times
    next_start_at: Mapping[str, float] = field(default_factory=dict)  # service -> backoff end
    drains: Mapping[str, Drain] = field(default_factory=dict)  # skein id -> drain
    released: FrozenSet[str] = frozenset()  # skein ids we killed on purpose
    handled: FrozenSet[str] = frozenset()  # finished skein ids already accounted for
    restarts: int = 0  # containers started to replace a failed one
    command_seq: int = 0
    pending_since: Mapping[str, float] = field(default_factory=dict)  # skein id -> first seen pending
    unfilled: Mapping[str, unfilled.Unfilled] = field(default_factory=dict)  # service -> YARN did not fill it


def takeover_state(containers: Sequence[ObservedContainer]) -> FleetState:
    """The state a restarted tarn-am starts from: completions that happened before it
    are history, not new failures, and running containers are left as they are."""
    return FleetState(handled=frozenset(c.skein_id for c in containers if c.state in FINISHED_STATES))


@dataclass(frozen=True)
class Blocked:
    count: int
    reason: str


# ---------------------------------------------------------------- restart policy

def restart_delay_s(failures_in_window: int, timings: ReconcileTimings) -> float:
    """Exponential backoff: 0 before the first failure, then initial, 2x, 4x ... capped."""
    if failures_in_window <= 0:
        return 0.0
    return min(timings.restart_backoff_max_s, timings.restart_backoff_initial_s * 2 ** (failures_in_window - 1))


def recent_failures(times: Sequence[float], now: float, timings: ReconcileTimings) -> Tuple[float, ...]:
    return tuple(t for t in times if now - t < timings.crash_loop_window_s)


def is_crash_looping(times: Sequence[float], now: float, timings: ReconcileTimings) -> bool:
    return len(recent_failures(times, now, timings)) >= timings.crash_loop_failures


def record_failure(state: FleetState, service: str, now: float, timings: ReconcileTimings) -> FleetState:
    times = recent_failures(state.failures.get(service, ()), now, timings) + (now,)
    failures = dict(state.failures)
    failures[service] = times
    next_start = dict(state.next_start_at)
    next_start[service] = now + restart_delay_s(len(times), timings)
    return replace(state, failures=failures, next_start_at=next_start)


# ---------------------------------------------------------------- the decision

@dataclass(frozen=True)
class Decision:
    actions: Tuple[Action, ...]
    blocked: Optional[Blocked]
    crash_looping: Tuple[str, ...]  # services (nodes) currently refused restarts

    def of_type(self, kind: type) -> List:
        return [a for a in self.actions if isinstance(a, kind)]


def decide(
    desired: int,
    slots: Sequence[Slot],
    observed: Observation,
    now: float,
    state: FleetState,
    timings: ReconcileTimings = ReconcileTimings(),
) -> Tuple[Decision, FleetState]:
    actions: List[Action] = []

    # 1. Completions: each finished container is accounted for once.
    for container in observed.containers:
        if container.state not in FINISHED_STATES or container.skein_id in state.handled:
            continue
        state = replace(state, handled=state.handled | {container.skein_id},
                        drains=_without(state.drains, container.skein_id))
        if container.skein_id in state.released:
            continue
        state = record_failure(state, container.service, now, timings)
        actions.append(_lost(container, container.exit_message or container.state, state, now, timings))

    # 2. Containers YARN still runs that we no longer trust: never ready in time, or silent.
    for container in observed.containers:
        if container.state != "running" or container.skein_id in state.drains or container.skein_id in state.released:
            continue
        why = _distrust(container, observed, now, timings)
        if why:
            state = replace(state, released=state.released | {container.skein_id})
            state = record_failure(state, container.service, now, timings)
            actions.append(ReleaseContainer(container.skein_id, container.instance_id, why))
            actions.append(_lost(container, why, state, now, timings))

    # 3. Drains in progress: re-send until acked, release once stopped or timed out.
    active = {c.skein_id: c for c in observed.containers if c.active and c.skein_id not in state.released}
    for skein_id, drain in list(state.drains.items()):
        container = active.get(skein_id)
        if container is None:
            state = replace(state, drains=_without(state.drains, skein_id))
            continue
        member = observed.members.get(drain.instance_id)
        stopped = member is not None and member.state is InstanceState.STOPPED
        overdue = now - drain.started_at >= timings.drain_timeout_s + timings.drain_grace_s
        if stopped or overdue:
            state = replace(state, drains=_without(state.drains, skein_id), released=state.released | {skein_id})
            actions.append(ReleaseContainer(skein_id, drain.instance_id,
                                            "drained" if stopped else "drain timed out"))
        elif drain.command_id not in observed.acked_commands and now - drain.last_sent_at >= timings.command_resend_s:
            drains = dict(state.drains)
            drains[skein_id] = replace(drain, last_sent_at=now)
            state = replace(state, drains=drains)
            actions.append(SendDrain(skein_id, drain.instance_id, drain.command_id, timings.drain_timeout_s, False))

    # 4. Count what serves (or will serve: not a stuck request) and move it toward ``desired``.
    since = unfilled.pending_since(state.pending_since, observed.containers, now)
    stuck = [c for c in unfilled.stuck_requests(observed.containers, since, now, timings.blocked_timeout_s)
             if c.skein_id not in state.released]
    state = replace(state, pending_since=since,
                    unfilled=unfilled.marked(state.unfilled, stuck, slots, observed.containers, since, now))
    released_now = {a.skein_id for a in actions if isinstance(a, ReleaseContainer)}
    serving = [c for c in observed.containers if c.active and c not in stuck and not
               {c.skein_id} & (state.released | set(state.drains) | released_now)]
    occupied = {c.service for c in observed.containers if c.active and c.skein_id not in released_now}
    looping = tuple(sorted(s.service for s in slots
                           if is_crash_looping(state.failures.get(s.service, ()), now, timings)))
    blocked: Optional[Blocked] = None

    if len(serving) < desired:
        missing = desired - len(serving)
        free = [s for s in slots if s.service not in occupied]
        startable = [s for s in free if s.service not in looping
                     and state.next_start_at.get(s.service, 0.0) <= now]
        # Prefer nodes YARN filled, then the fewest recent failures, then a stable order.
        startable.sort(key=lambda s: (s.service in state.unfilled,
                                      len(recent_failures(state.failures.get(s.service, ()), now, timings)), s.host))
        moved, stuck, startable = unfilled.re_place(stuck, startable, missing, state.unfilled)
        for request in moved:
            state = replace(state, released=state.released | {request.skein_id})
            actions.append(ReleaseContainer(request.skein_id, request.instance_id,
                                            "not allocated in time: re-placed on another node"))
        for slot in startable[:missing]:
            replacing = bool(state.failures.get(slot.service))
            actions.append(StartContainer(slot.service, slot.host,
                                          "replace a failed container" if replacing else "scale up"))
            if replacing:
                state = replace(state, restarts=state.restarts + 1)
        unplaced = missing - min(missing, len(startable))
        if unplaced:
            blocked = Blocked(unplaced, "; ".join(state.unfilled[c.service].reason for c in stuck)
                              or _blocked_reason(slots, free, looping, state, now))
    else:
        for request in stuck:  # enough serve without it
            state = replace(state, released=state.released | {request.skein_id})
            actions.append(ReleaseContainer(request.skein_id, request.instance_id, "not allocated in time; not needed"))
    if len(serving) > desired:
        for victim in _drain_order(serving, observed)[: len(serving) - desired]:
            member = observed.members.get(victim.instance_id)
            if victim.state != "running" or member is None or member.state is InstanceState.STOPPED:
                # Nothing routes to it yet: nothing to drain.
                state = replace(state, released=state.released | {victim.skein_id})
                actions.append(ReleaseContainer(victim.skein_id, victim.instance_id, "scale down (not serving)"))
                continue
            state = replace(state, command_seq=state.command_seq + 1)
            command_id = f"drain-{victim.instance_id}-{state.command_seq}"
            drains = dict(state.drains)
            drains[victim.skein_id] = Drain(victim.skein_id, victim.instance_id, command_id, now, now, "scale down")
            state = replace(state, drains=drains)
            actions.append(SendDrain(victim.skein_id, victim.instance_id, command_id, timings.drain_timeout_s, True))

    known = {c.skein_id for c in observed.containers}
    state = replace(state, handled=state.handled & known, released=state.released & known)  # bounded memory
    return Decision(tuple(actions), blocked, looping), state


def _lost(container: ObservedContainer, why: str, state: FleetState, now: float,
          timings: ReconcileTimings) -> ContainerLost:
    times = state.failures.get(container.service, ())
    return ContainerLost(container.skein_id, container.instance_id, container.service, container.host, why,
                         len(recent_failures(times, now, timings)), is_crash_looping(times, now, timings))


def _distrust(container: ObservedContainer, observed: Observation, now: float, timings: ReconcileTimings) -> str:
    member = observed.members.get(container.instance_id)
    if member is not None and member.state is InstanceState.STOPPED:
        return "instance stopped while its container runs"
    if not observed.bus.healthy:
        return ""  # the silence is ours: only YARN's word (step 1) or a stop event counts now
    started = container.started_at if container.started_at is not None else now
    ever_ready = member is not None and member.state is not InstanceState.REQUESTED and \
        member.state is not InstanceState.STARTING
    if not ever_ready and now - silent_since(started, observed.bus) > timings.start_timeout_s:
        return f"not ready {timings.start_timeout_s:.0f} s after start"
    beat = observed.last_heartbeat.get(container.instance_id)
    if ever_ready and beat is not None and now - silent_since(beat, observed.bus) > timings.heartbeat_timeout_s:
        return f"no heartbeat for {now - beat:.0f} s"
    return ""


def _drain_order(serving: Sequence[ObservedContainer], observed: Observation) -> List[ObservedContainer]:
    """Cheapest first: not yet allocated, not ready, emptied by model placement, the youngest ready."""

    def cost(c: ObservedContainer) -> Tuple[int, float]:
        member = observed.members.get(c.instance_id)
        if c.state != "running":
            return (0, 0.0)
        if member is None or member.state is not InstanceState.READY:
            return (1, 0.0)
        return (2 if c.instance_id in observed.release_first else 3, -(c.started_at or 0.0))

    return sorted(serving, key=cost)


def _blocked_reason(slots: Sequence[Slot], free: Sequence[Slot], looping: Sequence[str],
                    state: FleetState, now: float) -> str:
    if not free:
        return (f"anti-affinity: every eligible node ({len(slots)}) already holds an instance; "
                "add nodes or lower the target")
    if all(s.service in looping for s in free):
        return "crash loop: the free nodes' containers keep failing; restarts paused"
    waiting = [state.next_start_at.get(s.service, 0.0) - now for s in free if s.service not in looping]
    return f"restart backoff: next start in {max(0.0, min(waiting, default=0.0)):.0f} s"


def _without(mapping: Mapping[str, Drain], key: str) -> Dict[str, Drain]:
    return {k: v for k, v in mapping.items() if k != key}
