"""Per-model copies from per-model queue time (``--placement per-model``): a pure function
in the spirit of Knative's KPA, one model at a time.

``decide(target, wanted, reading, now_s, state) -> (CopiesDecision, CopiesState)`` does no
I/O and reads no clock. Each fresh reading (a model's ready copies, their served request
rate, pending requests and queue time per request, ``nv_inference_queue_duration_us`` over
the request count) becomes a *demand*: the copies the arrivals need.

- Arrivals are the served rate plus the growth of the pending queue since the last reading
  (a backlog that grows means more arrive than are served).
- A copy's *rate at target* (requests/s at which one copy's queue time reaches the model's
  target) is learnt copy by copy (round robin does not move a backlog, so one copy's queue
  says nothing of the others): from readings between half the target and the target (a
  lower bound, tight there), else from readings above it (at most what a copy manages);
  each is trusted for ``RATE_MEMORY_S``. Demand is arrivals over ``UTILIZATION``
  of that rate, Knative's 70 % target utilization. Before any rate is learnt, a queue over
  its target asks for ``copies × queue/target`` and a queue under it holds.
- Over its target, the pending queue is demand too, drained within the panic window (KPA
  counts queued requests in its concurrency): a model hit by a step gets the copies that
  clear the backlog, not only those that keep up with the new rate.
- No request and nothing pending is no demand at all.

Windows (windows.py): the stable window (60 s) averages the demand; the panic window (6 s)
is its latest part. A model whose queue time is over its target gets the copies its latest
reading's demand asks for at once, in one decision (a window's mean would lag the step).
Panic starts when the panic window's demand exceeds
``PANIC_THRESHOLD`` (2×) the ready copies, and lasts until a stable window passed without
it; in panic no copy is shed. A copy is shed only when the demand stayed below the copies
for a whole stable window (the peak of the window, KPA's scale-down delay), and never
before one window of readings exists. What may be shed is judged on a rate a copy surely
manages (``shed_rate``: the most a copy served at or under its target in a steady reading,
one where it served no more than arrived), never on a saturated copy's upper bound nor on a
copy draining a backlog: shedding on those cut copies a rising load still needed. A model
whose load fell sheds even when no reading came near its target. The count stays within the
model's min/max copies.

Scale to zero (``min: 0``): a model whose demand stayed 0 for its idle window (``idle_s``,
else the stable window) sheds its last copy. At 0 copies no copy reports, so only the
gateways can tell demand: a request held for it makes gateway-sync publish ModelDemanded, and
``wake`` turns a demand that arrived while the model was at 0 into one copy, in one decision.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from tarn_shared import defaults
from tarn_shared import events as ev

from .model_copies import ModelTarget
from .windows import mean, peak, push_extreme, time_left, within

STABLE_WINDOW_S = 60.0
PANIC_WINDOW_S = 6.0
PANIC_THRESHOLD = 2.0  # demand over ready copies that starts panic
UTILIZATION = 0.7  # copies are sized to run at this share of their rate at target (Knative's 70 %)
RATE_MEMORY_S = 600.0  # how long a learnt rate at target is trusted (a new model version may differ)
LEARN_FROM = 0.5  # readings at or above this share of the target (and at most 1) teach the rate
STALE_AFTER_S = 3 * defaults.TELEMETRY_INTERVAL_S  # a reading older than three agent samples is none
_EPS = 1e-9


@dataclass(frozen=True)
class ModelReading:
    """One model across its ready copies, from their latest telemetry."""

    copies: int  # ready copies that reported
    sampled_at_s: float  # the newest of their samples
    request_rate_per_s: float  # served, summed over the copies
    queue_time_us: float  # per request, weighted by the copies' request rates
    pending_requests: float  # summed
    per_copy: Tuple[Tuple[float, float], ...] = ()  # (served requests/s, queue time us) of each copy


@dataclass(frozen=True)
class CopiesState:
    demand: Tuple[Tuple[float, float], ...] = ()  # (t, copies the arrivals need), the stable window
    # (t, served per copy) of readings near the target (their running max) and above it (running min)
    near: Tuple[Tuple[float, float], ...] = ()
    saturated: Tuple[Tuple[float, float], ...] = ()
    # (t, served per copy) of steady readings at or under the target (running max): what shedding trusts
    kept_up: Tuple[Tuple[float, float], ...] = ()
    ceiling: Tuple[Tuple[float, float], ...] = ()  # (t, copies the arrivals need at most), what may be shed
    last: Optional[Tuple[float, float]] = None  # (t, pending) of the last reading used
    since_s: Optional[float] = None  # first reading of this run of readings
    panic_until_s: Optional[float] = None
    demand_seen_s: Optional[float] = None  # the newest gateway demand (ModelDemanded) already taken


@dataclass(frozen=True)
class CopiesDecision:
    copies: int
    reason: str
    panic: bool = False
    queue_time_us: Optional[float] = None
    demand: Optional[float] = None  # copies the stable window's arrivals need


def rate_at_target(state: CopiesState, now_s: float) -> Optional[float]:
    """A copy's requests/s at its target queue time: near-target readings first, else saturated ones."""
    for points in (state.near, state.saturated):  # monotonic: the first one still trusted is the extreme
        trusted = [y for t, y in points if now_s - t <= RATE_MEMORY_S + _EPS]
        if trusted:
            return trusted[0]
    return None


def shed_rate(state: CopiesState, now_s: float) -> Optional[float]:
    """A rate a copy surely manages at its target: the most a copy served, at or under its
    target, in a steady reading (a lower bound). Never a saturated copy's rate (an upper bound),
    nor one of a copy draining a backlog (it serves more than it keeps up with): a copy shed on
    either is one too many, and the queue comes back."""
    trusted = [y for t, y in state.kept_up if now_s - t <= RATE_MEMORY_S + _EPS]
    return trusted[0] if trusted else None


def _learn(state: CopiesState, target: ModelTarget, reading: ModelReading, steady: bool = True) -> CopiesState:
    """Each copy's served rate against its own queue time: a backlog on one copy says nothing
    of the others (round robin does not move a queue), so the model's means would mislead."""
    copies = reading.per_copy or ((reading.request_rate_per_s / max(reading.copies, 1), reading.queue_time_us),)
    t = reading.sampled_at_s
    for rate, queue_us in copies:
        ratio = queue_us / target.target_queue_time_us
        if rate <= _EPS:
            continue
        if LEARN_FROM - _EPS <= ratio <= 1 + _EPS:
            state = replace(state, near=push_extreme(state.near, t, rate, RATE_MEMORY_S))
        elif ratio > 1 + _EPS:
            state = replace(state, saturated=push_extreme(state.saturated, t, rate, RATE_MEMORY_S, largest=False))
        if ratio <= 1 + _EPS and steady:
            state = replace(state, kept_up=push_extreme(state.kept_up, t, rate, RATE_MEMORY_S))
    return state


def _demand(reading: ModelReading, ratio: float, arrivals: float, rate: Optional[float]) -> Optional[float]:
    """Copies the arrivals need; None when it cannot be told (no rate learnt, queue in target)."""
    if arrivals <= _EPS and reading.pending_requests <= _EPS:
        return 0.0
    if rate is not None:
        return arrivals / (UTILIZATION * rate)
    return reading.copies * ratio if ratio > 1 + _EPS else None


def _observe(target: ModelTarget, reading: ModelReading, now_s: float,
             state: CopiesState) -> Tuple[float, CopiesState]:
    """(the reading's queue/target, the state with the reading and its demand remembered)."""
    ratio = reading.queue_time_us / target.target_queue_time_us
    arrivals = reading.request_rate_per_s
    known = state.last is not None and reading.sampled_at_s - state.last[0] > _EPS  # the queue's change
    if known:
        arrivals += (reading.pending_requests - state.last[1]) / (reading.sampled_at_s - state.last[0])
    arrivals = max(0.0, arrivals)
    steady = known and reading.request_rate_per_s <= arrivals + _EPS  # served no more than arrived: no drain
    state = _learn(state, target, reading, steady)
    # Over its target, the backlog is demand too, to drain within a panic window (KPA counts queued requests).
    pressing = arrivals + reading.pending_requests / PANIC_WINDOW_S if ratio > 1 + _EPS else arrivals
    demand = _demand(reading, ratio, pressing, rate_at_target(state, now_s))
    points = within(state.demand, now_s, STABLE_WINDOW_S)
    if demand is not None:
        points += ((reading.sampled_at_s, demand),)
    most = _demand(reading, 0.0, arrivals, shed_rate(state, now_s))
    ceiling = within(state.ceiling, now_s, STABLE_WINDOW_S)
    if most is not None:
        ceiling += ((reading.sampled_at_s, most),)
    return ratio, replace(state, demand=points, ceiling=ceiling, last=(reading.sampled_at_s,
                                  reading.pending_requests), since_s=state.since_s or reading.sampled_at_s)


def _bounded(target: ModelTarget, copies: int, why: str) -> Tuple[int, str]:
    if copies > target.max_copies:
        return target.max_copies, f"{why}; held at max copies {target.max_copies}"
    if copies < target.min_copies:
        return target.min_copies, f"{why}; held at min copies {target.min_copies}"
    return copies, why


def _count(demand: Optional[float]) -> int:
    return 0 if demand is None else max(0, math.ceil(demand - _EPS))


def decide(target: ModelTarget, wanted: int, reading: Optional[ModelReading], now_s: float,
           state: CopiesState, stale_after_s: float = STALE_AFTER_S) -> Tuple[CopiesDecision, CopiesState]:
    """The copies the model should have, from ``wanted`` (the last answer) and a reading."""
    if reading is None or reading.copies < 1 or now_s - reading.sampled_at_s > stale_after_s:
        copies, why = _bounded(target, wanted, "no fresh reading from a ready copy: hold")
        return CopiesDecision(copies, why), replace(state, last=None, since_s=None)
    if state.last is not None and reading.sampled_at_s <= state.last[0] + _EPS:
        ratio = reading.queue_time_us / target.target_queue_time_us  # the same reading: nothing new to learn
    else:
        ratio, state = _observe(target, reading, now_s, state)
    stable = within(state.demand, now_s, STABLE_WINDOW_S)
    ceiling = within(state.ceiling, now_s, STABLE_WINDOW_S)
    recent = within(stable, now_s, PANIC_WINDOW_S) or stable[-1:]
    stable_count, panic_demand = _count(mean(stable)), mean(recent)
    pressed = _count(stable[-1][1]) if stable and ratio > 1 + _EPS else 0
    if panic_demand is not None and panic_demand > PANIC_THRESHOLD * reading.copies + _EPS:
        state = replace(state, panic_until_s=now_s + STABLE_WINDOW_S)
    panic = state.panic_until_s is not None and now_s < state.panic_until_s
    queue = f"queue {reading.queue_time_us / 1000:.1f} ms/request (target {target.target_queue_time_us / 1000:g})"
    if panic:
        copies = max(wanted, pressed, stable_count, _count(panic_demand))
        why = f"panic: demand {panic_demand or 0:.1f} copies over {reading.copies} ready; no copy shed"
    elif pressed > wanted:
        copies, why = pressed, f"under pressure: {pressed} copies serve the arrivals"
    elif stable_count > wanted:
        copies, why = stable_count, f"the stable window's demand needs {stable_count} copies"
    elif _idle(target, state, now_s) and wanted > 0:
        copies, why = 0, f"no demand for {target.idle_s:g}s (idle_s): scale to zero"
    elif ceiling and time_left(state.since_s, now_s, STABLE_WINDOW_S) is None and _count(peak(ceiling)) < wanted:
        copies = _count(peak(ceiling))
        why = f"demand stayed at or under {peak(ceiling):.1f} copies for {STABLE_WINDOW_S:g}s: shed {wanted - copies}"
    else:
        copies, why = wanted, "hold"
    copies, why = _bounded(target, copies, why)
    return (CopiesDecision(copies, f"{why}; {queue}", panic, reading.queue_time_us, mean(stable)), state)


def _idle(target: ModelTarget, state: CopiesState, now_s: float) -> bool:
    """A min-0 model with its own idle window, shorter than the stable one, through which
    every reading said no demand at all."""
    if target.min_copies > 0 or target.idle_s is None or target.idle_s >= STABLE_WINDOW_S:
        return False  # the stable window's shed covers it (down to min, 0 included)
    points = within(state.demand, now_s, target.idle_s)
    return bool(points) and time_left(state.since_s, now_s, target.idle_s) is None and peak(points) <= _EPS


DEMAND_FRESH_S = 30.0  # a gateway's demand older than this wakes nothing (a replayed stream, a late event)


def wake(target: ModelTarget, decision: CopiesDecision, demanded_s: Optional[float], now_s: float,
         state: CopiesState) -> Tuple[CopiesDecision, CopiesState]:
    """``decision`` with a fresh gateway demand taken: a model at 0 copies gets one. A demand
    counts once, and only if it came while the model was at 0 (demands sent while its copy
    was loading are taken with it, so they cannot bring it back after its next idle shed)."""
    if demanded_s is None or (state.demand_seen_s is not None and demanded_s <= state.demand_seen_s):
        return decision, state
    state = replace(state, demand_seen_s=demanded_s)
    if decision.copies > 0 or now_s - demanded_s > DEMAND_FRESH_S:
        return decision, state
    copies, why = _bounded(target, 1, "a request waits at the gateway for this model at 0 copies: load one")
    return replace(decision, copies=copies, reason=why), replace(state, since_s=None, demand=())


@dataclass(frozen=True)
class ScalingMemory:
    """What per-model scaling carries from round to round: each model's state and last answer."""

    states: Mapping[str, CopiesState] = field(default_factory=dict)
    wanted: Mapping[str, int] = field(default_factory=dict)


def readings(samples: Iterable[ev.TelemetrySample]) -> Dict[str, ModelReading]:
    """Each model's reading across the instances where Triton reports it ready (versions summed)."""
    copies: Dict[str, List[Tuple[float, List[ev.ModelSample]]]] = {}
    for sample in samples:
        for state in sample.model_states or ():
            if state.state is ev.ModelLoadState.READY:
                rows = [m for m in sample.models if m.name == state.name]
                copies.setdefault(state.name, []).append((sample.ts, rows))
    out = {}
    for name, held in copies.items():
        rows = [m for _, ms in held for m in ms]
        rate = sum(m.request_rate_per_s for m in rows)
        queue = (sum(m.queue_time_per_request_us * m.request_rate_per_s for m in rows) / rate if rate > _EPS
                 else max((m.queue_time_per_request_us for m in rows), default=0.0))
        per_copy = []
        for _, ms in held:
            served = sum(m.request_rate_per_s for m in ms)
            per_copy.append((served, sum(m.queue_time_per_request_us * m.request_rate_per_s for m in ms) / served
                             if served > _EPS else 0.0))
        out[name] = ModelReading(len(held), max(t for t, _ in held), rate, queue,
                                 sum(m.pending_requests for m in rows), tuple(per_copy))
    return out
