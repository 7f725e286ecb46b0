"""The seeds' scaling policy, kept for comparison (``tarn simulate``, bench/autoscale).

The original TARN AM compares the mean load of its containers with ``--scale-up`` and
``--scale-down`` and moves the target by one instance, then waits ``--cooldown``
(milliseconds on the command line) before any further move. Same interface as
``autoscale.decide``. Where the seeds say nothing we keep our rules: instances without
fresh telemetry are left out of the mean rather than read as zero, and the bounds are hard.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from tarn_am.autoscale import AutoscaleConfig, FleetObservation, ScalingDecision, SimulatedPolicy, Verdict
from tarn_am.fleet_load import aggregate


@dataclass(frozen=True)
class SeedsState:
    last_move_s: Optional[float] = None


def _step(config: AutoscaleConfig, desired: int, load: Optional[float], now_s: float,
          state: SeedsState) -> Verdict:
    """The seeds' rule: bounds, then one instance up or down outside a cooldown."""
    bounded = config.bounded(desired)
    if bounded != desired:
        return Verdict(bounded, "outside min/max-instances")
    if load is None:
        return Verdict(desired, "no telemetry")
    if state.last_move_s is not None and now_s - state.last_move_s < config.cooldown_s:
        return Verdict(desired, f"cooldown, {config.cooldown_s - (now_s - state.last_move_s):.0f}s left")
    if load > config.scale_up and desired < config.max_instances:
        return Verdict(desired + 1, f"mean load {load:.2f} > scale-up {config.scale_up:g}")
    if load < config.scale_down and desired > config.min_instances:
        return Verdict(desired - 1, f"mean load {load:.2f} < scale-down {config.scale_down:g}")
    return Verdict(desired, f"mean load {load:.2f}")


def decide(config: AutoscaleConfig, desired_count: int, observed: FleetObservation, now_s: float,
           state: SeedsState) -> Tuple[ScalingDecision, SeedsState]:
    load = aggregate(observed, now_s, config.stale_after_s).mean_load
    verdict = _step(config, desired_count, load, now_s, state)
    moved = verdict.count != desired_count
    return verdict.decision(desired_count, load), SeedsState(now_s) if moved else state


@dataclass(frozen=True)
class SeedsPolicy(SimulatedPolicy):
    name: str = "seeds"
    decide_with = staticmethod(decide)
    state_type = SeedsState
