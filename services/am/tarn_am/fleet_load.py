"""What the autoscaling policy reads: the latest telemetry of each ready instance, the
fleet's load made of it and its trend. ``observation`` builds the policy's input from
tarn-am's view; ``aggregate`` and ``rising_total`` are the policy's reading of it (pure)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

from tarn_shared.events import InstanceState
from tarn_shared.membership import Member

from .view import Telemetry

_EPS = 1e-9


@dataclass(frozen=True)
class InstanceTelemetry:
    """The AM's latest sample of one ready, non-draining instance.

    ``sampled_at_s`` is None when the instance never reported; ``load`` is None when its
    sample carried no load figure (Triton down); ``gpu_utilization_pct`` is None when the
    GPU could not be read.
    """

    instance_id: str
    sampled_at_s: Optional[float]
    load: Optional[float]
    queue_time_per_request_us: Optional[float] = None
    pending_requests: Optional[float] = None
    gpu_utilization_pct: Optional[float] = None
    request_rate_per_s: Optional[float] = None  # served, summed over models; None: not reported


@dataclass(frozen=True)
class FleetObservation:
    """One entry per ready instance (serving, not draining)."""

    instances: Tuple[InstanceTelemetry, ...] = ()

    @property
    def ready_count(self) -> int:
        return len(self.instances)


@dataclass(frozen=True)
class FleetLoad:
    """The fleet's load as the policy reads it: fresh samples, silent instances, totals."""

    fresh: Tuple[InstanceTelemetry, ...]
    missing: Tuple[str, ...]
    mean_load: Optional[float]
    total_load: Optional[float]

    def describe(self) -> str:
        parts = []
        queue = [i.queue_time_per_request_us for i in self.fresh if i.queue_time_per_request_us is not None]
        if queue:
            parts.append(f"queue {sum(queue) / len(queue) / 1000:.1f} ms/request")
        pending = [i.pending_requests for i in self.fresh if i.pending_requests is not None]
        if pending:
            parts.append(f"{sum(pending):g} pending")
        gpu = [i.gpu_utilization_pct for i in self.fresh if i.gpu_utilization_pct is not None]
        no_gpu = len(self.fresh) - len(gpu)
        if gpu:
            parts.append(f"GPU {sum(gpu) / len(gpu):.0f}%")
        if no_gpu:
            parts.append(f"GPU unreadable on {no_gpu}")
        if self.missing:
            parts.append(f"no telemetry from {len(self.missing)} ({', '.join(sorted(self.missing)[:3])}"
                         f"{'…' if len(self.missing) > 3 else ''})")
        return "; ".join(parts)


def aggregate(observed: FleetObservation, now_s: float, stale_after_s: float) -> FleetLoad:
    """Samples older than ``stale_after_s`` count as missing; the silent carry the mean."""
    fresh, missing = [], []
    for inst in observed.instances:
        is_fresh = (inst.sampled_at_s is not None and inst.load is not None
                    and now_s - inst.sampled_at_s <= stale_after_s)
        (fresh if is_fresh else missing).append(inst if is_fresh else inst.instance_id)
    if not fresh:
        return FleetLoad((), tuple(missing), None, None)
    mean = sum(i.load for i in fresh) / len(fresh)
    return FleetLoad(tuple(fresh), tuple(missing), mean, mean * observed.ready_count)


def _slope(points: Sequence[Tuple[float, float]]) -> float:
    """Theil–Sen: the median of pairwise slopes, so one jump or one noisy sample is no trend."""
    slopes = sorted((y2 - y1) / (t2 - t1) for i, (t1, y1) in enumerate(points)
                    for t2, y2 in points[i + 1:] if t2 - t1 > _EPS)
    if not slopes:
        return 0.0
    mid = len(slopes) // 2
    return slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2


def rising_total(history: Tuple[Tuple[float, float], ...], min_span_s: float, ahead_s: float) -> Optional[float]:
    """Total load ``ahead_s`` on from the last of ``history`` ((t, total) pairs) on its rising
    trend; None when it does not rise or spans fewer than three samples over ``min_span_s``."""
    if len(history) < 3 or history[-1][0] - history[0][0] < min_span_s:
        return None
    slope = _slope(history)
    if slope <= 0:
        return None
    return history[-1][1] + slope * ahead_s


def observation(members: Mapping[str, Member], telemetry: Mapping[str, Telemetry],
                draining: frozenset) -> FleetObservation:
    """The ready, non-draining instances and their latest sample, from tarn-am's view."""
    instances = []
    for instance_id, member in sorted(members.items()):
        if member.state is not InstanceState.READY or instance_id in draining:
            continue
        latest = telemetry.get(instance_id)
        if latest is None:
            instances.append(InstanceTelemetry(instance_id, None, None))
            continue
        sample = latest.sample
        queue = [m.queue_time_per_request_us for m in sample.models]
        pending = [m.pending_requests for m in sample.models]
        rates = [m.request_rate_per_s for m in sample.models]
        gpus = sample.gpus
        instances.append(InstanceTelemetry(
            instance_id=instance_id,
            sampled_at_s=latest.received_at,
            load=sample.load if sample.triton_up else None,
            queue_time_per_request_us=(sum(queue) / len(queue)) if queue else None,
            pending_requests=sum(pending) if pending else None,
            gpu_utilization_pct=(sum(g.utilization_pct for g in gpus) / len(gpus)) if gpus else None,
            request_rate_per_s=sum(rates) if rates else None,
        ))
    return FleetObservation(tuple(instances))
