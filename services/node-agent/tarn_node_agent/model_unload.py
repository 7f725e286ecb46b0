"""An unload's decisions, pure (issue 16, item 5): given what has been seen since the agent
announced itself ready without the model, wait or unload now.

In order:
1. the gateways: gateway-sync's ``model.unrouted`` for this instance and model said 0 open
   requests (the server left the model's slot backend on every HAProxy; only the leading
   replica of the group that owns the deployment syncs and publishes, and it sums over every
   HAProxy it keeps, as for an instance drain). A gateway-sync that serves the deployment
   answers within one apply even where HAProxy has no model slots (it counts 0 there), so
   when no word at all comes within ``first_word_s`` no gateway-sync serves it and the unload
   does not wait out the whole timeout. Once an agent has heard gateway-sync on any unload
   (``gateway_known``) silence no longer means "none": it waits up to the timeout;
2. Triton: nothing pending for the model and its success and failure counters standing still
   over IDLE_SNAPSHOTS polls (Triton 2.51 has no per-model executing gauge: a request still
   executing finishes, and counts, in between);
all of it bounded by ``timeout_s``: then unload anyway, and say what was left.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Tuple

from .drain import IDLE_SNAPSHOTS
from .telemetry import Snapshot, in_flight, is_idle

ROUTED = "routed"  # gateway-sync confirmed 0 open requests
NO_GATEWAY = "no_gateway_sync"  # no word within first_word_s: nothing routes this deployment per model
TIMEOUT = "timeout"  # unloaded with something still open
NOT_ROUTED = "not_routed"  # the instance was not ready: no gateway routes to it


@dataclass(frozen=True)
class UnloadWait:
    model: str
    started_at: float
    timeout_s: float
    first_word_s: float
    gateway_known: bool = False
    open_requests: Optional[int] = None  # gateway-sync's latest count; None: no word yet
    gateways_done: Optional[str] = None  # ROUTED, NO_GATEWAY or NOT_ROUTED once the gateways' wait is over
    recent: Tuple[Snapshot, ...] = ()


@dataclass(frozen=True)
class UnloadDecision:
    go: bool
    outcome: str = ""  # the gateways' outcome, or TIMEOUT
    reason: str = ""


def model_snapshot(snapshot: Snapshot, model: str) -> Snapshot:
    """Only ``model``'s counters (every version)."""
    return {key: counters for key, counters in snapshot.items() if key[0] == model}


def unload_step(state: UnloadWait, now: float, *, open_requests: Optional[int],
                snapshot: Optional[Snapshot]) -> Tuple[UnloadDecision, UnloadWait]:
    if open_requests is not None:
        state = replace(state, open_requests=open_requests)
    waited = now - state.started_at
    if state.gateways_done is None:
        if state.open_requests == 0:
            state = replace(state, gateways_done=ROUTED)
        elif state.open_requests is None and not state.gateway_known and waited >= state.first_word_s:
            state = replace(state, gateways_done=NO_GATEWAY)
    if state.gateways_done is not None:
        if snapshot is not None:
            recent = state.recent + (model_snapshot(snapshot, state.model),)
            state = replace(state, recent=recent[-IDLE_SNAPSHOTS:])
        if len(state.recent) >= IDLE_SNAPSHOTS and is_idle(state.recent):
            return UnloadDecision(True, state.gateways_done,
                                  f"{_gateways_note(state)}, no request in Triton after {waited:.1f} s"), state
    if waited >= state.timeout_s:
        return UnloadDecision(True, TIMEOUT, f"unload wait timeout after {state.timeout_s:g} s "
                                             f"({_left(state)})"), state
    return UnloadDecision(False), state


def _gateways_note(state: UnloadWait) -> str:
    if state.gateways_done == NO_GATEWAY:
        return f"no word from gateway-sync within {state.first_word_s:g} s (not routed per model)"
    if state.gateways_done == NOT_ROUTED:
        return "instance not ready, not routed"
    return "routed away by gateway-sync"


def _left(state: UnloadWait) -> str:
    if state.gateways_done is None:
        if state.open_requests is None:
            return "gateway-sync did not confirm the model routed away"
        return f"{state.open_requests} requests open at the gateways"
    last = state.recent[-1] if state.recent else None
    if last is None:
        return f"{_gateways_note(state)}; Triton metrics unreadable"
    pending = in_flight(last)
    return f"{_gateways_note(state)}; " + (f"{pending:g} requests pending in Triton" if pending
                                           else "Triton still finishing requests")
