"""The drain's decisions, pure: given what has been seen, wait or stop Triton now.

A drain ends when no request is executing, not merely when none is pending: Triton's pending
gauge counts requests waiting for a model instance, not those running on one. In order:
1. routing: gateway-sync announced the instance unrouted (HAProxy drains its server, the znode
   is gone: no new request reaches it), or that wait is over;
2. the gateways: the requests HAProxy still holds for it reached 0. gateway-sync counts them
   (its server's ``scur`` + ``qcur``, summed over every HAProxy) and sends each change on the
   unrouted event: the agent cannot read HAProxy itself (the Runtime API is gateway-sync's,
   and only gateway-sync knows every HAProxy and which server is ours). Without any count
   within COUNT_WAIT_S of unrouted (an older gateway-sync) only Triton's figures decide;
3. Triton: nothing pending, and its success and failure counters standing still over
   IDLE_SNAPSHOTS polls (requests that came another way, e.g. through Knox, finish and
   count in between).
All of it bounded by the drain timeout: a DrainCommand's, or on SIGTERM what the NodeManager's
kill delay leaves (``terminate_timeout_s``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

from .telemetry import Snapshot, in_flight, is_idle

IDLE_SNAPSHOTS = 3  # consecutive polls with nothing pending and no request finishing
COUNT_WAIT_S = 5.0  # gateway-sync counts every second while an instance drains
STOP_RESERVE_S = 10.0  # of the NodeManager's kill delay, kept for stopping Triton


@dataclass(frozen=True)
class DrainState:
    started_at: float
    timeout_s: float
    unrouted_timeout_s: float
    unrouted_at: Optional[float] = None
    unrouted_waited_out: bool = False
    open_requests: Optional[int] = None  # gateway-sync's latest count
    recent: Tuple[Snapshot, ...] = ()


@dataclass(frozen=True)
class DrainDecision:
    stop: bool
    reason: str = ""


def drain_step(state: DrainState, now: float, *, unrouted_seen: bool, open_requests: Optional[int],
               snapshot: Optional[Snapshot]) -> Tuple[DrainDecision, DrainState]:
    if unrouted_seen and state.unrouted_at is None:
        state = replace(state, unrouted_at=now)
    if open_requests is not None:
        state = replace(state, open_requests=open_requests)
    waiting, state = _gateways(state, now)
    if waiting is None:
        recent = state.recent + ((snapshot,) if snapshot is not None else ())
        state = replace(state, recent=recent[-IDLE_SNAPSHOTS:])
        if len(state.recent) >= IDLE_SNAPSHOTS and is_idle(state.recent):
            return DrainDecision(True, f"drained: {_routed_note(state)}, no request in Triton"), state
    else:
        state = replace(state, recent=())  # Triton's quiet counts only once the gateways are empty
    if now - state.started_at >= state.timeout_s:
        left = waiting or f"{_routed_note(state)}; {_triton_left(state.recent[-1] if state.recent else snapshot)}"
        return DrainDecision(True, f"drain timeout after {state.timeout_s:g} s ({left})"), state
    return DrainDecision(False), state


def with_deadline(state: DrainState, deadline: float) -> DrainState:
    """A drain under way when SIGTERM comes must end by the kill delay."""
    return replace(state, timeout_s=min(state.timeout_s, max(0.0, deadline - state.started_at)))


def terminate_timeout_s(configured_s: Optional[float], kill_delay_ms: Optional[float]) -> float:
    """How long a SIGTERM drain may take: as configured, else the NodeManager's kill delay
    (``yarn.nodemanager.sleep-delay-before-sigkill.ms``, Hadoop's default 250 ms when unset)
    less the time kept for stopping Triton; 0 means stop at once."""
    if configured_s is not None:
        return configured_s
    delay_s = (kill_delay_ms if kill_delay_ms is not None else 250.0) / 1000.0
    return max(0.0, delay_s - STOP_RESERVE_S)


def _gateways(state: DrainState, now: float) -> Tuple[Optional[str], DrainState]:
    """What the drain still waits for on the gateways' side, None when nothing."""
    if state.unrouted_at is None:
        if state.unrouted_waited_out:
            return None, state
        if now - state.started_at < state.unrouted_timeout_s:
            return "waiting for gateway-sync to unroute the instance", state
        return None, replace(state, unrouted_waited_out=True, recent=())
    if state.open_requests == 0:
        return None, state
    if state.open_requests is None:
        if now - state.unrouted_at >= COUNT_WAIT_S:
            return None, state
        return "waiting for gateway-sync's count of open requests", state
    return f"{state.open_requests} requests open at the gateways", state


def _routed_note(state: DrainState) -> str:
    if state.unrouted_at is None:
        return f"gateway-sync did not confirm unrouted within {state.unrouted_timeout_s:g} s"
    if state.open_requests is None:
        return f"unrouted, no count of open requests from gateway-sync within {COUNT_WAIT_S:g} s"
    return f"unrouted, {state.open_requests} requests open at the gateways"


def _triton_left(snapshot: Optional[Snapshot]) -> str:
    if snapshot is None:
        return "Triton metrics unreadable"
    pending = in_flight(snapshot)
    return f"{pending:g} requests pending in Triton" if pending else "Triton still finishing requests"
