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

from tarn_am.autoscale import AutoscaleConfig, FleetObservation, ScalingDecision, aggregate


@dataclass(frozen=True)
class SeedsState:
    last_move_s: Optional[float] = None


def decide(config: AutoscaleConfig, desired_count: int, observed: FleetObservation, now_s: float,
           state: SeedsState) -> Tuple[ScalingDecision, SeedsState]:
    def decision(new_desired: int, why: str) -> ScalingDecision:
        return ScalingDecision(desired_count=new_desired, add=max(0, new_desired - desired_count),
                               remove=max(0, desired_count - new_desired), reason=why,
                               load_per_instance=agg.mean_load)

    agg = aggregate(config, observed, now_s)
    bounded = min(config.max_instances, max(config.min_instances, desired_count))
    if bounded != desired_count:
        return decision(bounded, f"{desired_count} → {bounded}: outside min/max-instances"), SeedsState(now_s)
    if agg.mean_load is None:
        return decision(desired_count, f"hold at {desired_count}: no telemetry"), state
    load = agg.mean_load
    if state.last_move_s is not None and now_s - state.last_move_s < config.cooldown_s:
        left = config.cooldown_s - (now_s - state.last_move_s)
        return decision(desired_count, f"hold at {desired_count}: cooldown, {left:.0f}s left"), state
    if load > config.scale_up and desired_count < config.max_instances:
        return (decision(desired_count + 1, f"{desired_count} → {desired_count + 1}: mean load {load:.2f} "
                                            f"> scale-up {config.scale_up:g}"), SeedsState(now_s))
    if load < config.scale_down and desired_count > config.min_instances:
        return (decision(desired_count - 1, f"{desired_count} → {desired_count - 1}: mean load {load:.2f} "
                                            f"< scale-down {config.scale_down:g}"), SeedsState(now_s))
    return decision(desired_count, f"hold at {desired_count}: mean load {load:.2f}"), state


@dataclass(frozen=True)
class SeedsPolicy:
    config: AutoscaleConfig
    name: str = "seeds"

    def initial_state(self) -> SeedsState:
        return SeedsState()

    def decide(self, desired_count: int, observed: FleetObservation, now_s: float,
               state: SeedsState) -> Tuple[ScalingDecision, SeedsState]:
        return decide(self.config, desired_count, observed, now_s, state)
