"""Pure telemetry: Triton's Prometheus text -> per-model counters -> rates over an interval
-> one normalized load figure.

Load (1.0 = at target, what the AM's autoscaler compares against its thresholds):

    load = max(queue_time_per_request_us / target_queue_time_us,
               pending_requests          / target_pending_requests,
               max_gpu_utilization_pct   / target_gpu_utilization_pct)

queue time per request is the request-weighted mean over models in the interval; pending
requests are summed over models; the GPU term is the busiest readable whole GPU, left out
when none can be read (MIG devices have no utilization in NVML: their memory is reported).
The max, not a mean: whichever resource saturates first is what needs more instances.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from prometheus_client.parser import text_string_to_metric_families

from tarn_shared.events import GpuSample, ModelSample

SUCCESS = "nv_inference_request_success"
FAILURE = "nv_inference_request_failure"
QUEUE_US = "nv_inference_queue_duration_us"
PENDING = "nv_inference_pending_request_count"
EXEC_COUNT = "nv_inference_exec_count"
ModelKey = Tuple[str, str]


class MetricsParseError(ValueError):
    """Triton's /metrics did not parse as Prometheus text."""


@dataclass(frozen=True)
class ModelCounters:
    success: float = 0.0
    failure: float = 0.0
    queue_us: float = 0.0
    pending: float = 0.0
    executions: float = 0.0

    @property
    def requests(self) -> float:
        return self.success + self.failure


Snapshot = Dict[ModelKey, ModelCounters]


def parse_triton_metrics(text: str) -> Snapshot:
    wanted = {SUCCESS: "success", FAILURE: "failure", QUEUE_US: "queue_us", PENDING: "pending",
              EXEC_COUNT: "executions"}
    values: Dict[ModelKey, Dict[str, float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                field = wanted.get(sample.name) or wanted.get(sample.name.removesuffix("_total"))
                model = sample.labels.get("model")
                if field is None or model is None:
                    continue
                key = (model, sample.labels.get("version", ""))
                slot = values.setdefault(key, {})
                # Failures come per reason label: add them up.
                slot[field] = slot.get(field, 0.0) + float(sample.value)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise MetricsParseError(f"Triton metrics are not valid Prometheus text: {exc}") from None
    return {key: ModelCounters(**fields) for key, fields in values.items()}


def _delta(now: float, before: float) -> float:
    # A counter that went down means tritonserver restarted: count from zero.
    return now - before if now >= before else now


def model_samples(previous: Optional[Snapshot], current: Snapshot, interval_s: float) -> List[ModelSample]:
    samples = []
    for (model, version), now in sorted(current.items()):
        before = (previous or {}).get((model, version), ModelCounters()) if previous is not None else now
        requests = _delta(now.requests, before.requests)
        failures = _delta(now.failure, before.failure)
        queue_us = _delta(now.queue_us, before.queue_us)
        successes = _delta(now.success, before.success)
        samples.append(ModelSample(
            name=model, version=version or None,
            request_rate_per_s=requests / interval_s if interval_s > 0 else 0.0,
            failure_rate_per_s=failures / interval_s if interval_s > 0 else 0.0,
            # Triton accumulates queue time for successful requests.
            queue_time_per_request_us=queue_us / successes if successes > 0 else 0.0,
            pending_requests=max(now.pending, 0.0),
        ))
    return samples


def normalized_load(models: Sequence[ModelSample], gpus: Optional[Sequence[GpuSample]], *,
                    target_queue_time_us: float, target_pending_requests: float,
                    target_gpu_utilization_pct: float) -> float:
    weight = sum(m.request_rate_per_s for m in models)
    queue_us = (sum(m.queue_time_per_request_us * m.request_rate_per_s for m in models) / weight) if weight else 0.0
    pending = sum(m.pending_requests for m in models)
    terms = [queue_us / target_queue_time_us, pending / target_pending_requests]
    if gpus:
        terms.append(max(g.utilization_pct for g in gpus) / target_gpu_utilization_pct)
    return round(max(terms), 4)


def in_flight(snapshot: Snapshot) -> float:
    """Requests Triton still holds that the gauge shows (queued, not yet executing)."""
    return sum(c.pending for c in snapshot.values())


def total_requests(snapshot: Snapshot) -> float:
    return sum(c.requests for c in snapshot.values())


def is_idle(samples: Iterable[Snapshot]) -> bool:
    """Idle over consecutive snapshots: nothing pending in any, and no request finished between
    them (a request still executing would finish, and count, in between)."""
    snapshots = list(samples)
    if len(snapshots) < 2:
        return False
    if any(in_flight(s) > 0 for s in snapshots):
        return False
    totals = [total_requests(s) for s in snapshots]
    return all(t == totals[0] for t in totals)
