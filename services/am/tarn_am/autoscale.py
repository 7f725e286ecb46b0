"""The autoscaling policy: a pure function of fleet telemetry, counts, time and its own state.

``decide(config, desired_count, observed, now_s, state) -> (ScalingDecision, PolicyState)``
does no I/O and reads no clock (Ray Serve's ``autoscaling_policy`` shape). It is a pipeline
of small steps: the hard bounds, the count the load needs, the delay gates (cooldown,
stabilization, missing data); the reason is written once, from the step that decided.

The load figure: every node-agent publishes ``TelemetrySample.load``, 1.0 meaning the
instance is at its target: the largest of its queue time per request, pending requests and
busiest GPU's utilization, each against its target. So queue time, what clients feel
(seeds 004), drives the load even on an idle GPU (a CPU-bound pre-processing step). Here
only that figure counts; the queue, pending and GPU figures go into the reason, and an
unreadable GPU is reported as such, never as 0 %. ``scale_up``/``scale_down`` (e.g. 0.8 and
0.2) are thresholds on it per instance: above 0.8 the fleet grows, below 0.2 for a whole
stabilization window it drains. HAProxy spreads requests round robin, so the fleet's total
load is the mean times the ready count, unchanged by adding instances: the count that
brings each back under ``scale_up`` is ``ceil(total / scale_up)``.

A backlog's queue time says nothing of the arrival rate, so after a burst the figure alone
would drain below what the burst needed: arrivals.py sizes bursts from the served request
rate and the pending queue's growth, and a drain never goes below a recent burst's need.

Missing telemetry is never zero load: an instance with no fresh sample is counted as
carrying the fleet's mean (it still receives its round-robin share), scale-down waits
until every ready instance reports, and with no fresh sample at all the policy holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, ClassVar, Optional, Tuple

from .arrivals import RECUR_WINDOWS, ArrivalMemory, remember
from .fleet_load import FleetLoad, FleetObservation, InstanceTelemetry, aggregate, rising_total
from .policy_config import AutoscaleConfig, apply_bounds
from .windows import time_left, within

# The policy's inputs are part of its interface (the simulator builds them).
__all__ = ["AutoscaleConfig", "Autoscaler", "FleetObservation", "InstanceTelemetry", "PolicyState",
           "QueueTimePolicy", "ScalingDecision", "SimulatedPolicy", "Verdict", "apply_bounds", "decide"]

_EPS = 1e-9


@dataclass(frozen=True)
class ScalingDecision:
    desired_count: int
    add: int
    remove: int  # how many to drain; reconcile.py picks: unallocated, then not ready, then youngest
    reason: str
    load_per_instance: Optional[float] = None
    needed_count: Optional[int] = None

    @property
    def action(self) -> str:
        return "scale_up" if self.add else "scale_down" if self.remove else "hold"


@dataclass(frozen=True)
class PolicyState:
    last_up_s: Optional[float] = None
    last_down_s: Optional[float] = None
    low_since_s: Optional[float] = None  # start of the current run below scale_down
    low_peak_total: float = 0.0  # highest total load seen during that run
    history: Tuple[Tuple[float, float], ...] = field(default=())  # (t, total load) for the trend
    arrivals: ArrivalMemory = field(default_factory=ArrivalMemory)  # what recent bursts needed

    def out_of_low_run(self) -> "PolicyState":
        return replace(self, low_since_s=None, low_peak_total=0.0)


def count_for(total_load: float, per_instance: float) -> int:
    """Fewest instances keeping load per instance at or under ``per_instance``."""
    return max(1, math.ceil(total_load / per_instance - _EPS))


def needed_count(config: AutoscaleConfig, load: float, history: Tuple[Tuple[float, float], ...]) -> int:
    """Instances the fleet's total load (the last of ``history``) needs at ``scale_up`` each."""
    needed_now = config.bounded(count_for(history[-1][1], config.scale_up))
    # Above scale-up the current load already gives the exact count; the trend only serves
    # to start instances before an in-band load crosses the threshold.
    forecast = (rising_total(history, config.trend_window_s / 2, config.startup_s + config.telemetry_interval_s)
                if load <= config.scale_up + _EPS else None)
    if forecast is None:
        return needed_now
    # Anticipation buys one start-up's worth of headroom on a rising trend, never more.
    return max(needed_now, config.bounded(min(needed_now + 1, count_for(forecast, config.scale_up))))


@dataclass(frozen=True)
class Verdict:
    """What a step concluded, before the reason is written: the new count and why."""

    count: int
    why: str
    held_at: str = ""  # how a hold names the count, where not by the count alone

    def decision(self, desired: int, load_per_instance: Optional[float], detail: str = "",
                 needed: Optional[int] = None) -> ScalingDecision:
        """The one place a reason is written: the move or the hold and why, then the fleet's figures."""
        if self.count != desired:
            head = f"{desired} → {self.count}: {self.why}"
        else:
            head = f"hold at {self.held_at or desired}: {self.why}"
        return ScalingDecision(desired_count=self.count, add=max(0, self.count - desired),
                               remove=max(0, desired - self.count), reason=f"{head}; {detail}" if detail else head,
                               load_per_instance=load_per_instance, needed_count=needed)


def _cooling(last_opposite_s: Optional[float], now_s: float, cooldown_s: float) -> Optional[float]:
    """Seconds of cooldown left after the last opposite move, or None."""
    return time_left(last_opposite_s, now_s, cooldown_s)


def _below(config: AutoscaleConfig, load: float) -> str:
    return f"load {load:.2f}/instance below scale-down {config.scale_down:g}"


def _bounds_step(config: AutoscaleConfig, desired: int, now_s: float,
                 state: PolicyState) -> Optional[Tuple[Verdict, PolicyState]]:
    """A count outside the bounds moves at once, cooldown or not; None when inside."""
    bounded = config.bounded(desired)
    if bounded == desired:
        return None
    up = bounded > desired
    moved = replace(state.out_of_low_run(), **({"last_up_s": now_s} if up else {"last_down_s": now_s}))
    which = "min-instances" if up else "max-instances"
    return Verdict(bounded, f"{which} is {bounded}"), moved


def _no_data_step(desired: int, ready: int) -> Verdict:
    return Verdict(desired, f"no fresh telemetry from any of the {ready} ready instances" if ready
                    else "no ready instance to measure load on")


def _wanted(config: AutoscaleConfig, desired: int, ready: int, load: float, needed: int, now_s: float,
            state: PolicyState) -> Tuple[Verdict, PolicyState]:
    """The count the load asks for, before any delay; tracks the run below scale-down."""
    if needed > desired:
        if load > config.scale_up + _EPS:
            why = f"load {load:.2f}/instance above scale-up {config.scale_up:g}: {needed} instances bring it back"
        else:
            why = (f"load {load:.2f}/instance rising toward scale-up {config.scale_up:g}: "
                   f"{needed} instances cover it {config.startup_s:g}s ahead")
        return Verdict(needed, why), state.out_of_low_run()
    if load > config.scale_up + _EPS:
        if desired >= config.max_instances:
            return (Verdict(desired, f"load {load:.2f}/instance above scale-up {config.scale_up:g}",
                             held_at=f"max-instances {desired}"), state.out_of_low_run())
        return (Verdict(desired, f"waiting for {desired - ready} starting instances "
                                  f"(load {load:.2f}/instance)"), state.out_of_low_run())
    if load >= config.scale_down - _EPS:
        return (Verdict(desired, f"load {load:.2f}/instance within {config.scale_down:g}..{config.scale_up:g}"),
                state.out_of_low_run())
    # Below the band: size the drain to the peak of the run so far.
    low_since = state.low_since_s if state.low_since_s is not None else now_s
    peak = max(state.low_peak_total, state.history[-1][1])
    state = replace(state, low_since_s=low_since, low_peak_total=peak)
    # Bursts recur: never below what the arrivals of a recent one needed (arrivals.py).
    burst = config.bounded(state.arrivals.floor()) if state.arrivals.floor() else 0
    fits = max(config.bounded(count_for(peak, config.band_middle)), needed)
    target = max(fits, burst)
    held = f"a burst in the last {RECUR_WINDOWS * config.stabilization_s:g}s needed {burst}"
    if target >= desired:
        but = (", already at min-instances" if desired <= config.min_instances
               else f", but {held}" if burst >= desired else ", but fewer would overshoot")
        return Verdict(desired, _below(config, load) + but), state
    why = held if burst > fits else f"peak of the window fits {target} at {config.band_middle:.2f}/instance"
    return Verdict(target, f"{_below(config, load)} for {now_s - low_since:.0f}s; drain {desired - target} "
                            f"({why})"), state


def _scale_down_gate(config: AutoscaleConfig, fleet: FleetLoad, now_s: float, state: PolicyState) -> str:
    """Why a drain the load asks for must wait: stabilization, silent instances, cooldown."""
    if time_left(state.low_since_s, now_s, config.stabilization_s) is not None:
        waited = now_s - state.low_since_s
        return f" for {waited:.0f}s of the {config.stabilization_s:g}s stabilization window"
    if fleet.missing:
        return f", but no scale-down while {len(fleet.missing)} instance(s) report nothing"
    left = _cooling(state.last_up_s, now_s, config.cooldown_s)
    return f", cooldown after the last scale-up, {left:.0f}s left" if left is not None else ""


def _apply_delay_logic(config: AutoscaleConfig, desired: int, wanted: Verdict, fleet: FleetLoad,
                       now_s: float, state: PolicyState) -> Tuple[Verdict, PolicyState]:
    """Hold a wanted move until its gates open; a move made is remembered for the cooldown."""
    if wanted.count > desired:
        left = _cooling(state.last_down_s, now_s, config.cooldown_s)
        if left is not None:
            return (Verdict(desired, f"cooldown after the last scale-down, {left:.0f}s left",
                             held_at=f"{desired} ({wanted.why})"), state)
        return wanted, replace(state, last_up_s=now_s)
    if wanted.count < desired:
        gate = _scale_down_gate(config, fleet, now_s, state)
        if gate:
            return Verdict(desired, _below(config, fleet.mean_load) + gate), state
        return wanted, replace(state.out_of_low_run(), last_down_s=now_s)
    return wanted, state


def decide(config: AutoscaleConfig, desired_count: int, observed: FleetObservation, now_s: float,
           state: PolicyState) -> Tuple[ScalingDecision, PolicyState]:
    fleet = aggregate(observed, now_s, config.stale_after_s)
    detail = fleet.describe()
    bounds = _bounds_step(config, desired_count, now_s, state)
    if bounds is not None:
        return bounds[0].decision(desired_count, fleet.mean_load, detail), bounds[1]
    if fleet.total_load is None:
        verdict = _no_data_step(desired_count, observed.ready_count)
        return verdict.decision(desired_count, fleet.mean_load, detail), state.out_of_low_run()
    history = within(state.history, now_s, config.trend_window_s)
    arrivals = remember(state.arrivals, fleet.fresh, observed.ready_count, fleet.mean_load, config.scale_up,
                        config.max_instances, now_s, RECUR_WINDOWS * config.stabilization_s)
    state = replace(state, history=history + ((now_s, fleet.total_load),), arrivals=arrivals)
    needed = needed_count(config, fleet.mean_load, state.history)
    wanted, state = _wanted(config, desired_count, observed.ready_count, fleet.mean_load, needed, now_s, state)
    verdict, state = _apply_delay_logic(config, desired_count, wanted, fleet, now_s, state)
    return verdict.decision(desired_count, fleet.mean_load, detail, needed), state


@dataclass(frozen=True)
class Autoscaler:
    """The policy as tarn-am runs it: at most once per telemetry interval."""

    config: AutoscaleConfig
    state: PolicyState = field(default_factory=PolicyState)
    last_run_s: Optional[float] = None

    def step(self, desired_count: int, observed: FleetObservation,
             now_s: float) -> Tuple[Optional[ScalingDecision], "Autoscaler"]:
        """The policy's decision when an interval has passed since its last run, else None."""
        if self.last_run_s is not None and now_s - self.last_run_s < self.config.telemetry_interval_s:
            return None, self
        decision, state = decide(self.config, desired_count, observed, now_s, self.state)
        return decision, replace(self, state=state, last_run_s=now_s)


@dataclass(frozen=True)
class SimulatedPolicy:
    """A policy as an object for the simulator: the config plus a pure ``decide``."""

    config: AutoscaleConfig
    name: str = ""
    decide_with: ClassVar[Callable] = staticmethod(decide)
    state_type: ClassVar[type] = PolicyState

    def initial_state(self):
        return self.state_type()

    def decide(self, desired_count: int, observed: FleetObservation, now_s: float, state):
        return self.decide_with(self.config, desired_count, observed, now_s, state)


@dataclass(frozen=True)
class QueueTimePolicy(SimulatedPolicy):
    name: str = "tarn"
