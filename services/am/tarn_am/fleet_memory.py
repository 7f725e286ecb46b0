"""What the reconcile decision remembers (reconcile.FleetState), kept in Redis so a restarted
tarn-am goes on where the last one stopped: restart backoff and crash-loop counts hold, a
drain in progress completes as a drain (its container's end is not a failure), and command
ids keep counting. Pure: text in, state out; the bus stores the text."""
from __future__ import annotations

from typing import Optional, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError

from .containers import FINISHED_STATES, ObservedContainer
from .reconcile import Drain, FleetState, takeover_state
from .unfilled import Unfilled


class _Stored(BaseModel):
    """The stored form; unknown fields (a newer tarn-am's) are ignored."""

    model_config = ConfigDict(extra="ignore")
    failures: dict[str, list[float]] = {}
    next_start_at: dict[str, float] = {}
    drains: dict[str, Drain] = {}  # pydantic validates the dataclasses themselves
    released: list[str] = []
    restarts: int = 0
    command_seq: int = 0
    pending_since: dict[str, float] = {}
    unfilled: dict[str, Unfilled] = {}


def encode(state: FleetState) -> str:
    stored = _Stored(failures={s: list(t) for s, t in state.failures.items()}, next_start_at=dict(state.next_start_at),
                     drains=dict(state.drains), released=sorted(state.released), restarts=state.restarts,
                     command_seq=state.command_seq, pending_since=dict(state.pending_since),
                     unfilled=dict(state.unfilled))
    return stored.model_dump_json()


def decode(text: Optional[str]) -> Optional[_Stored]:
    """None when nothing is stored or it cannot be read (then tarn-am starts afresh, as before)."""
    if not text:
        return None
    try:
        return _Stored.model_validate_json(text)
    except (ValidationError, ValueError):
        return None


def resumed(text: Optional[str], containers: Sequence[ObservedContainer]) -> FleetState:
    """The state a restarted tarn-am starts from: takeover_state's (what ended before it is
    history), plus what the last one remembered: backoff, crash-loop counts, command ids and
    unfilled slots, and the drains, releases and pending times of containers still there."""
    fresh = takeover_state(containers)
    stored = decode(text)
    if stored is None:
        return fresh
    known = {c.skein_id for c in containers}
    running = {c.skein_id for c in containers if c.state not in FINISHED_STATES}
    drains = {k: d for k, d in stored.drains.items() if k in running}
    return FleetState(failures={s: tuple(t) for s, t in stored.failures.items()},
                      next_start_at=dict(stored.next_start_at), drains=drains,
                      released=frozenset(stored.released) & known,
                      handled=fresh.handled, restarts=stored.restarts, command_seq=stored.command_seq,
                      pending_since={k: t for k, t in stored.pending_since.items() if k in running},
                      unfilled=dict(stored.unfilled))
