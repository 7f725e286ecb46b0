"""Each node's slot as an operator looks at it: serving, starting, blocked (restart backoff
while the fleet is short, or YARN did not fill its request: unfilled.py), crash-looping
(restarts paused) or idle, with its last failure and why. Pure: the view feeds
``FailureNotes`` from the lifecycle stream; ``slot_views`` reads them with skein's
containers and the reconcile decision.

The reason is what the node-agent said when it stopped (e.g. "hdfs path /x does not
exist"), else YARN's diagnostics of the container: the agent knows why, YARN only how.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Mapping, Optional, Sequence

from pydantic import BaseModel

from tarn_shared import events as ev
from tarn_shared.membership import Member

from .containers import ObservedContainer, Slot

SlotState = Literal["serving", "starting", "blocked", "crash_loop", "idle"]
REASON_MAX = 500
STOP_REASONS_KEPT = 1000
# Up and holding the node, on the way in or out of the gateways.
HOLDING = frozenset({ev.InstanceState.READY, ev.InstanceState.DRAINING, ev.InstanceState.UNROUTED})


class SlotView(BaseModel):
    node: str
    service: str
    state: SlotState
    last_failure: Optional[str] = None  # one line
    last_failure_at: Optional[float] = None  # epoch seconds
    blocked_reason: Optional[str] = None  # why YARN's allocation is blocked here, when it is


@dataclass(frozen=True)
class Failure:
    at: float
    instance_id: str
    reason: str


@dataclass
class FailureNotes:
    """The last container each slot lost, and the reason each instance's stop gave (kept by
    instance: the agent's stop and skein's report of the container's end come in either order)."""

    lost: Dict[str, Failure] = field(default_factory=dict)  # service -> its latest failure
    stop_reasons: Dict[str, str] = field(default_factory=dict)  # instance id -> reason

    def apply(self, event: ev.Event) -> None:
        if isinstance(event, ev.ContainerFailed) and event.service:
            latest = self.lost.get(event.service)
            if latest is None or event.ts >= latest.at:
                self.lost[event.service] = Failure(event.ts, event.container_id, event.diagnostics)
        elif isinstance(event, ev.InstanceStopped) and event.reason:
            self.stop_reasons.pop(event.instance_id, None)
            self.stop_reasons[event.instance_id] = event.reason
            while len(self.stop_reasons) > STOP_REASONS_KEPT:
                del self.stop_reasons[next(iter(self.stop_reasons))]

    def last_failure(self, service: str) -> Optional[Failure]:
        """The slot's latest failure, its reason the agent's when it gave one."""
        failure = self.lost.get(service)
        if failure is None:
            return None
        reason = self.stop_reasons.get(failure.instance_id) or failure.reason or "container failed"
        return Failure(failure.at, failure.instance_id, one_line(reason))


def one_line(text: str, limit: int = REASON_MAX) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(frozen=True)
class SlotInputs:
    """What the control loop knows this round, for ``slot_views``."""

    slots: Sequence[Slot]
    containers: Sequence[ObservedContainer]
    members: Mapping[str, Member]
    crash_looping: Sequence[str] = ()
    short: bool = False  # the fleet has fewer instances than its target (the decision's ``blocked``)
    next_start_at: Mapping[str, float] = field(default_factory=dict)  # service -> restart backoff end
    unfilled: Mapping[str, str] = field(default_factory=dict)  # service -> why YARN did not fill its request


def slot_state(slot: Slot, inputs: SlotInputs, now: float) -> SlotState:
    active = [c for c in inputs.containers if c.service == slot.service and c.active]
    if any((m := inputs.members.get(c.instance_id)) is not None and m.state in HOLDING for c in active):
        return "serving"
    if slot.service in inputs.crash_looping:
        return "crash_loop"
    if slot.service in inputs.unfilled and not any(c.state == "running" for c in active):
        return "blocked"
    if active:
        return "starting"
    if inputs.short and inputs.next_start_at.get(slot.service, 0.0) > now:
        return "blocked"
    return "idle"


def slot_views(inputs: SlotInputs, notes: FailureNotes, now: float) -> List[SlotView]:
    views = []
    for slot in inputs.slots:
        failure = notes.last_failure(slot.service)
        state = slot_state(slot, inputs, now)
        views.append(SlotView(node=slot.host, service=slot.service, state=state,
                              last_failure=failure.reason if failure else None,
                              last_failure_at=failure.at if failure else None,
                              blocked_reason=inputs.unfilled.get(slot.service) if state == "blocked" else None))
    return views
