"""The hook between the control loop and the autoscaling policy (autoscale.py, pure).

Builds the policy's observation from tarn-am's view (ready, non-draining instances and
their latest telemetry) and calls ``autoscale.decide`` once per telemetry interval.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple

from tarn_shared.events import InstanceState
from tarn_shared.membership import Member

from . import autoscale
from .view import Telemetry


@dataclass(frozen=True)
class HookState:
    policy: autoscale.PolicyState = field(default_factory=autoscale.PolicyState)
    last_run_s: Optional[float] = None


def policy_config(*, scale_up: float, scale_down: float, min_instances: int, max_instances: int,
                  cooldown_s: float, telemetry_interval_s: float = 2.0) -> autoscale.AutoscaleConfig:
    # The policy never scales to zero: min-instances 0 means "no floor beyond one serving instance".
    return autoscale.AutoscaleConfig(
        scale_up=scale_up, scale_down=scale_down, min_instances=max(1, min_instances),
        max_instances=max(1, max_instances, min_instances), cooldown_s=cooldown_s,
        telemetry_interval_s=telemetry_interval_s)


def observation(members: Mapping[str, Member], telemetry: Mapping[str, Telemetry],
                draining: frozenset) -> autoscale.FleetObservation:
    instances = []
    for instance_id, member in sorted(members.items()):
        if member.state is not InstanceState.READY or instance_id in draining:
            continue
        latest = telemetry.get(instance_id)
        if latest is None:
            instances.append(autoscale.InstanceTelemetry(instance_id, None, None))
            continue
        sample = latest.sample
        queue = [m.queue_time_per_request_us for m in sample.models]
        pending = [m.pending_requests for m in sample.models]
        gpus = sample.gpus
        instances.append(autoscale.InstanceTelemetry(
            instance_id=instance_id,
            sampled_at_s=latest.received_at,
            load=sample.load if sample.triton_up else None,
            queue_time_per_request_us=(sum(queue) / len(queue)) if queue else None,
            pending_requests=sum(pending) if pending else None,
            gpu_utilization_pct=(sum(g.utilization_pct for g in gpus) / len(gpus)) if gpus else None,
        ))
    return autoscale.FleetObservation(tuple(instances))


def autoscale_step(config: autoscale.AutoscaleConfig, desired: int, observed: autoscale.FleetObservation,
                   now_s: float, state: HookState) -> Tuple[Optional[autoscale.ScalingDecision], HookState]:
    """The policy's decision when a telemetry interval has passed since its last run, else None."""
    if state.last_run_s is not None and now_s - state.last_run_s < config.telemetry_interval_s:
        return None, state
    decision, policy_state = autoscale.decide(config, desired, observed, now_s, state.policy)
    return decision, HookState(policy_state, now_s)
