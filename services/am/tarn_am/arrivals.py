"""What the arrivals need, beside the load figure (pure): the policy's memory of bursts.

During a backlog the load figure (queue-time based) says nothing of the arrival rate: a
queue of 1,000 requests reads the same whether it still grows or already drains, so a burst
asks for ``--max-instances``, and once drained the fleet reads so low that it drains below
what the burst needed, to be caught by the next one. This module sizes a burst from the
request rates instead:

- each instance's served rate is its reported request rate, else ``pending / queue time``
  (Little's law), and its arrival rate that plus the growth of its pending queue since its
  previous sample (a draining backlog counts negative);
- the rate at which one instance reports ``scale_up`` is learnt from instances that read
  at most ``scale_up`` (no backlog, where the figure grows with the rate);
- a *shortfall* is a sample where the fleet is over its target (mean figure above 1) and the
  arrivals need more instances than serve. The largest such need over the last
  ``RECUR_WINDOWS`` stabilization windows is a floor for scale-down: bursts recur.

Without request rates, queue times or pending counts (or before a rate was learnt) it finds
no shortfall, and the policy is the figure-only one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple

from .fleet_load import InstanceTelemetry

RECUR_WINDOWS = 4.0  # stabilization windows a burst's need is remembered for
_EPS = 1e-9


@dataclass(frozen=True)
class ArrivalMemory:
    pending: Tuple[Tuple[str, float, float], ...] = ()  # (instance, sampled at s, pending) last seen
    rate_at_scale_up: Optional[float] = None  # requests/s at which one instance reads scale_up
    shortfalls: Tuple[Tuple[float, int], ...] = ()  # (t, count the arrivals needed) when short

    def floor(self) -> int:
        """The largest count a remembered burst needed; 0 when none."""
        return max((n for _, n in self.shortfalls), default=0)


def served_rate(inst: InstanceTelemetry) -> Optional[float]:
    """Requests/s the instance served: reported, else by Little's law; None when unknown."""
    if inst.request_rate_per_s is not None:
        return inst.request_rate_per_s
    queue_us, pending = inst.queue_time_per_request_us, inst.pending_requests
    if queue_us is None or pending is None or queue_us <= 0:
        return None
    rate = pending * 1e6 / queue_us
    return rate if math.isfinite(rate) else None


def _arrival_rate(inst: InstanceTelemetry, served: float, previous: dict) -> float:
    seen = previous.get(inst.instance_id)
    if seen is None or inst.pending_requests is None or inst.sampled_at_s - seen[0] <= _EPS:
        return served
    return max(0.0, served + (inst.pending_requests - seen[1]) / (inst.sampled_at_s - seen[0]))


def remember(memory: ArrivalMemory, fresh: Sequence[InstanceTelemetry], ready: int, mean_load: float,
             scale_up: float, max_instances: int, now_s: float, keep_s: float) -> ArrivalMemory:
    """The memory after one sample of the fleet (``fresh``: the instances that reported)."""
    served = [served_rate(i) for i in fresh]
    pending = tuple((i.instance_id, i.sampled_at_s, i.pending_requests) for i in fresh
                    if i.pending_requests is not None)
    shortfalls = tuple((t, n) for t, n in memory.shortfalls if now_s - t <= keep_s)
    if not fresh or any(s is None for s in served):
        return replace(memory, pending=pending, shortfalls=shortfalls)
    calm = [(s, i.load) for s, i in zip(served, fresh) if _EPS < i.load <= scale_up + _EPS]
    learnt = sum(s for s, _ in calm) * scale_up / sum(load for _, load in calm) if calm else 0.0
    rate = learnt if _EPS < learnt < math.inf else memory.rate_at_scale_up
    if rate is not None and mean_load > 1.0:
        previous = {iid: (t, p) for iid, t, p in memory.pending}
        arrivals = sum(_arrival_rate(i, s, previous) for i, s in zip(fresh, served)) * ready / len(fresh)
        instances = arrivals / rate
        need = min(max_instances, math.ceil(instances - _EPS)) if math.isfinite(instances) else max_instances
        if need > ready:
            shortfalls += ((now_s, need),)
    return ArrivalMemory(pending, rate, shortfalls)
