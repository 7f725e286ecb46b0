"""The drain handshake's decisions, pure: given what has been seen, wait or stop Triton now.

DESIGN.md: the node-agent announces draining; gateway-sync takes the instance out of
HAProxy and ZooKeeper and announces it unrouted; the agent waits for that (bounded) and
for Triton to hold no request, then stops it. Until unrouted is seen (or its wait is over)
requests may still arrive, so idleness only counts after it. Stopping uses SIGTERM, on
which Triton itself finishes the requests still executing (up to --exit-timeout-secs).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

from .telemetry import Snapshot, in_flight, is_idle

IDLE_SNAPSHOTS = 3  # consecutive polls with nothing pending and no request finishing


@dataclass(frozen=True)
class DrainState:
    started_at: float
    timeout_s: float
    unrouted_timeout_s: float
    unrouted: bool = False
    unrouted_waited_out: bool = False
    recent: Tuple[Snapshot, ...] = ()


@dataclass(frozen=True)
class DrainDecision:
    stop: bool
    reason: str = ""


def drain_step(state: DrainState, now: float, *, unrouted_seen: bool,
               snapshot: Optional[Snapshot]) -> Tuple[DrainDecision, DrainState]:
    elapsed = now - state.started_at
    state = replace(state, unrouted=state.unrouted or unrouted_seen)
    if not state.unrouted and not state.unrouted_waited_out:
        if elapsed < state.unrouted_timeout_s:
            return DrainDecision(False), state
        state = replace(state, unrouted_waited_out=True, recent=())
    recent = state.recent + ((snapshot,) if snapshot is not None else ())
    state = replace(state, recent=recent[-IDLE_SNAPSHOTS:])
    routed_note = "unrouted" if state.unrouted else (
        f"gateway-sync did not confirm unrouted within {state.unrouted_timeout_s:g} s")
    if len(state.recent) >= IDLE_SNAPSHOTS and is_idle(state.recent):
        return DrainDecision(True, f"drained: {routed_note}, no request in flight"), state
    if elapsed >= state.timeout_s:
        pending = in_flight(state.recent[-1]) if state.recent else None
        detail = f"{pending:g} requests pending" if pending is not None else "Triton metrics unreadable"
        return DrainDecision(True, f"drain timeout after {state.timeout_s:g} s ({routed_note}; {detail})"), state
    return DrainDecision(False), state
