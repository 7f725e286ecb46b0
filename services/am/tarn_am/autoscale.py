"""The autoscaling policy: a pure function of fleet telemetry, counts, time and its own state.

``decide(config, desired_count, observed, now_s, state) -> (ScalingDecision, PolicyState)``
does no I/O and reads no clock (Ray Serve's ``autoscaling_policy`` shape): the AM calls it
once per telemetry interval, acts on the decision (request containers, or drain
``remove`` of them) and keeps the returned state for the next call.

The load figure
---------------
Every node-agent publishes ``TelemetrySample.load``, a *normalized* load: 1.0 means the
instance is exactly at its target (the target queue time per request); the agent derives
it from Triton's queue time per request and pending request count. The AM keeps the
latest sample per ready instance and hands them here. ``scale_up``/``scale_down``
(``--scale-up``/``--scale-down``) are thresholds on this figure per instance, e.g. 0.8 and
0.2: above 0.8 the fleet adds instances, below 0.2 (for a whole stabilization window) it
drains some. Because HAProxy spreads requests round robin, every ready instance carries
the same share, so the fleet's total load is the mean reported load times the number of
ready instances, and that total does not change when instances are added: the count that
brings load per instance back under ``scale_up`` is ``ceil(total / scale_up)``.

Why not GPU utilization: a busy GPU with a short queue is not overloaded, an idle GPU
behind a long queue (a CPU-bound pre-processing step) is; queue time is what clients feel
(seeds 004: "scale on queue time"). GPU figures only go into the reason. An unreadable
GPU (``None``) is reported as such, never as 0 %.

Missing telemetry is never zero load: an instance with no fresh sample is counted as
carrying the fleet's mean (it still receives its round-robin share), scale-down waits
until every ready instance reports, and with no fresh sample at all the policy holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence, Tuple

_EPS = 1e-9


@dataclass(frozen=True)
class AutoscaleConfig:
    """Thresholds are on the normalized load figure per instance (1.0 = at target)."""

    scale_up: float = 0.8
    scale_down: float = 0.2
    min_instances: int = 1
    max_instances: int = 8
    cooldown_s: float = 120.0  # between opposite moves (up after down, down after up)
    stabilization_s: float = 300.0  # load must stay below scale_down this long before a drain
    telemetry_interval_s: float = 5.0
    stale_after_intervals: float = 3.0  # a sample older than this many intervals is missing
    startup_s: float = 60.0  # expected container start-up: how far ahead a rising trend is projected
    trend_window_s: float = 120.0

    def __post_init__(self) -> None:
        if not 0 < self.scale_down < self.scale_up:
            raise ValueError(
                f"need 0 < scale-down < scale-up, got scale-down={self.scale_down} scale-up={self.scale_up}")
        if self.min_instances < 1:
            raise ValueError(f"min-instances must be at least 1, got {self.min_instances}")
        if self.max_instances < self.min_instances:
            raise ValueError(
                f"max-instances ({self.max_instances}) is below min-instances ({self.min_instances})")
        for name in ("cooldown_s", "stabilization_s", "startup_s", "trend_window_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.telemetry_interval_s <= 0 or self.stale_after_intervals <= 0:
            raise ValueError("telemetry_interval_s and stale_after_intervals must be positive")

    @classmethod
    def from_seed_flags(cls, *, scale_up: float, scale_down: float, min_instances: int,
                        max_instances: int, cooldown_ms: float, **rest) -> "AutoscaleConfig":
        """The seeds' `tarn submit` flags, with `--cooldown` in milliseconds."""
        return cls(scale_up=scale_up, scale_down=scale_down, min_instances=min_instances,
                   max_instances=max_instances, cooldown_s=cooldown_ms / 1000.0, **rest)

    @property
    def band_middle(self) -> float:
        return (self.scale_up + self.scale_down) / 2

    @property
    def stale_after_s(self) -> float:
        return self.stale_after_intervals * self.telemetry_interval_s


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


@dataclass(frozen=True)
class FleetObservation:
    """One entry per ready instance (serving, not draining)."""

    instances: Tuple[InstanceTelemetry, ...] = ()

    @property
    def ready_count(self) -> int:
        return len(self.instances)


@dataclass(frozen=True)
class ScalingDecision:
    desired_count: int
    add: int
    remove: int  # how many to drain; the AM picks which (pending requests first)
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


@dataclass(frozen=True)
class _Aggregate:
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


def aggregate(config: AutoscaleConfig, observed: FleetObservation, now_s: float) -> _Aggregate:
    fresh, missing = [], []
    for inst in observed.instances:
        is_fresh = (inst.sampled_at_s is not None and inst.load is not None
                    and now_s - inst.sampled_at_s <= config.stale_after_s)
        (fresh if is_fresh else missing).append(inst if is_fresh else inst.instance_id)
    if not fresh:
        return _Aggregate((), tuple(missing), None, None)
    mean = sum(i.load for i in fresh) / len(fresh)
    return _Aggregate(tuple(fresh), tuple(missing), mean, mean * observed.ready_count)


def count_for(total_load: float, per_instance: float) -> int:
    """Fewest instances keeping load per instance at or under ``per_instance``."""
    return max(1, math.ceil(total_load / per_instance - _EPS))


def _slope(points: Sequence[Tuple[float, float]]) -> float:
    """Theil–Sen: the median of pairwise slopes, so one jump or one noisy sample is no trend."""
    slopes = sorted((y2 - y1) / (t2 - t1) for i, (t1, y1) in enumerate(points)
                    for t2, y2 in points[i + 1:] if t2 - t1 > _EPS)
    if not slopes:
        return 0.0
    mid = len(slopes) // 2
    return slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2


def _forecast(config: AutoscaleConfig, history: Tuple[Tuple[float, float], ...]) -> Optional[float]:
    """Total load one start-up ahead on the recent rising trend; None without enough data."""
    if len(history) < 3 or history[-1][0] - history[0][0] < config.trend_window_s / 2:
        return None
    slope = _slope(history)
    if slope <= 0:
        return None
    return history[-1][1] + slope * (config.startup_s + config.telemetry_interval_s)


def _clamp(config: AutoscaleConfig, count: int) -> int:
    return min(config.max_instances, max(config.min_instances, count))


def _cooling(last_opposite_s: Optional[float], now_s: float, cooldown_s: float) -> Optional[float]:
    """Seconds of cooldown left after the last opposite move, or None."""
    if last_opposite_s is None:
        return None
    left = cooldown_s - (now_s - last_opposite_s)
    return left if left > _EPS else None


def decide(config: AutoscaleConfig, desired_count: int, observed: FleetObservation, now_s: float,
           state: PolicyState) -> Tuple[ScalingDecision, PolicyState]:
    agg = aggregate(config, observed, now_s)
    detail = agg.describe()

    def decision(new_desired: int, why: str, needed: Optional[int] = None) -> ScalingDecision:
        text = f"{why}; {detail}" if detail else why
        return ScalingDecision(desired_count=new_desired, add=max(0, new_desired - desired_count),
                               remove=max(0, desired_count - new_desired), reason=text,
                               load_per_instance=agg.mean_load, needed_count=needed)

    # Bounds are hard: they move the count whatever the telemetry or the cooldown says.
    bounded = _clamp(config, desired_count)
    if bounded != desired_count:
        which = "min-instances" if bounded > desired_count else "max-instances"
        moved = replace(state, low_since_s=None, low_peak_total=0.0,
                        **({"last_up_s": now_s} if bounded > desired_count else {"last_down_s": now_s}))
        return decision(bounded, f"{desired_count} → {bounded}: {which} is {bounded}"), moved

    if agg.total_load is None:
        why = (f"hold at {desired_count}: no fresh telemetry from any of the "
               f"{observed.ready_count} ready instances" if observed.ready_count
               else f"hold at {desired_count}: no ready instance to measure load on")
        return decision(desired_count, why), replace(state, low_since_s=None, low_peak_total=0.0)

    total = agg.total_load
    history = tuple((t, y) for t, y in state.history if now_s - t <= config.trend_window_s) + ((now_s, total),)
    state = replace(state, history=history)
    needed_now = _clamp(config, count_for(total, config.scale_up))
    load = agg.mean_load
    # Above scale-up the current load already gives the exact count; the trend only serves
    # to start instances before an in-band load crosses the threshold.
    forecast = _forecast(config, history) if load <= config.scale_up + _EPS else None
    needed_ahead = needed_now
    if forecast is not None:
        # Anticipation buys one start-up's worth of headroom on a rising trend, never more.
        needed_ahead = _clamp(config, min(needed_now + 1, count_for(forecast, config.scale_up)))
    needed = max(needed_now, needed_ahead)

    if needed > desired_count:
        state = replace(state, low_since_s=None, low_peak_total=0.0)
        if load > config.scale_up + _EPS:
            why = f"load {load:.2f}/instance above scale-up {config.scale_up:g}: {needed} instances bring it back"
        else:
            why = (f"load {load:.2f}/instance rising toward scale-up {config.scale_up:g}: "
                   f"{needed} instances cover it {config.startup_s:g}s ahead")
        left = _cooling(state.last_down_s, now_s, config.cooldown_s)
        if left is not None:
            return decision(desired_count, f"hold at {desired_count} ({why}): cooldown after the last "
                                           f"scale-down, {left:.0f}s left", needed), state
        return (decision(needed, f"{desired_count} → {needed}: {why}", needed),
                replace(state, last_up_s=now_s))

    if load > config.scale_up + _EPS:
        state = replace(state, low_since_s=None, low_peak_total=0.0)
        if desired_count >= config.max_instances:
            return decision(desired_count, f"hold at max-instances {desired_count}: load {load:.2f}/instance "
                                           f"above scale-up {config.scale_up:g}", needed), state
        return decision(desired_count, f"hold at {desired_count}: waiting for "
                                       f"{desired_count - observed.ready_count} starting instances "
                                       f"(load {load:.2f}/instance)", needed), state

    if load >= config.scale_down - _EPS:
        state = replace(state, low_since_s=None, low_peak_total=0.0)
        return decision(desired_count, f"hold at {desired_count}: load {load:.2f}/instance within "
                                       f"{config.scale_down:g}..{config.scale_up:g}", needed), state

    # Below the band: scale down only after a whole stabilization window, sized to its peak.
    low_since = state.low_since_s if state.low_since_s is not None else now_s
    peak = max(state.low_peak_total, total)
    state = replace(state, low_since_s=low_since, low_peak_total=peak)
    target = max(_clamp(config, count_for(peak, config.band_middle)), needed)
    below = f"load {load:.2f}/instance below scale-down {config.scale_down:g}"
    if target >= desired_count:
        return decision(desired_count, f"hold at {desired_count}: {below}, already at min-instances"
                        if desired_count <= config.min_instances else
                        f"hold at {desired_count}: {below}, but fewer would overshoot", needed), state
    waited = now_s - low_since
    if waited + _EPS < config.stabilization_s:
        return decision(desired_count, f"hold at {desired_count}: {below} for {waited:.0f}s of the "
                                       f"{config.stabilization_s:g}s stabilization window", needed), state
    if agg.missing:
        return decision(desired_count, f"hold at {desired_count}: {below}, but no scale-down while "
                                       f"{len(agg.missing)} instance(s) report nothing", needed), state
    left = _cooling(state.last_up_s, now_s, config.cooldown_s)
    if left is not None:
        return decision(desired_count, f"hold at {desired_count}: {below}, cooldown after the last "
                                       f"scale-up, {left:.0f}s left", needed), state
    why = (f"{desired_count} → {target}: {below} for {waited:.0f}s; drain "
           f"{desired_count - target} (peak of the window fits {target} at "
           f"{config.band_middle:.2f}/instance)")
    return decision(target, why, needed), replace(state, last_down_s=now_s, low_since_s=None, low_peak_total=0.0)


@dataclass(frozen=True)
class QueueTimePolicy:
    """Our policy as an object for the simulator: the config plus the pure ``decide``."""

    config: AutoscaleConfig
    name: str = "tarn"

    def initial_state(self) -> PolicyState:
        return PolicyState()

    def decide(self, desired_count: int, observed: FleetObservation, now_s: float,
               state: PolicyState) -> Tuple[ScalingDecision, PolicyState]:
        return decide(self.config, desired_count, observed, now_s, state)
