"""A queueing model of the fleet for ``tarn simulate --model queue`` and bench/autoscale.

Each serving instance is an M/M/c queue: Poisson arrivals, ``servers`` parallel model
executions (Triton's instance group), exponential service times of mean ``service_s``.
HAProxy's round robin gives every serving instance the same arrival rate. Per time step:

- stable (arrivals below the instance's capacity ``c·μ``): the stationary M/M/c queue
  (Erlang C); a queue longer than that, left from an overload, drains at the spare
  capacity ``c·μ − λ`` while the servers stay fully busy;
- overloaded (arrivals at or above capacity): the queue grows by ``(λ − c·μ)·dt`` (fluid).

From it the instance reports what the node-agent reports (telemetry.py there): queue time
per request, pending requests, GPU utilization (the servers' busy fraction) and the load
figure, ``max(queue time / target, pending / target, GPU % / target)``. A new instance
starts with an empty queue; a drained one leaves with its queue (the real drain serves it).

Trace loads keep their meaning: one unit is the arrival rate at which one instance
reports exactly ``scale_up``, so ``ceil(load)`` instances are still what the load needs.

Approximations, checked against a sample-path simulation in tests/am/test_queue_model.py:
a stationary queue forms at once (it takes a while near saturation); a backlog grows and
drains as a fluid, which matches its growth but ends its drain sooner than a real queue
(randomness keeps a tail); the queue time of a backlog is its length over the capacity.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import List, NamedTuple, Optional, Tuple

from ..autoscale import AutoscaleConfig, FleetObservation, InstanceTelemetry

_EPS = 1e-9


def erlang_b(servers: int, offered: float) -> float:
    """Blocking probability of M/M/c/c, by the stable recursion B(k) = a·B(k−1) / (k + a·B(k−1))."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered * blocking / (k + offered * blocking)
    return blocking


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in M/M/c with ``offered = λ/μ`` Erlangs (1 when unstable)."""
    if servers < 1 or offered < 0:
        raise ValueError(f"need servers >= 1 and offered load >= 0, got {servers}, {offered}")
    rho = offered / servers
    if rho >= 1:
        return 1.0
    blocking = erlang_b(servers, offered)
    return blocking / (1 - rho * (1 - blocking))


class Stationary(NamedTuple):
    wait_probability: float
    queue_length: float  # Lq, requests waiting (Triton's pending count)
    wait_s: float  # Wq, mean time in the queue
    utilization: float  # ρ, the servers' busy fraction


@lru_cache(maxsize=4096)  # the traces repeat few per-instance rates
def stationary(servers: int, arrival_rate: float, service_rate: float) -> Stationary:
    """Stationary M/M/c figures; the rate must be below the capacity ``servers · service_rate``."""
    capacity = servers * service_rate
    if not 0 <= arrival_rate < capacity:
        raise ValueError(f"unstable: arrival rate {arrival_rate:g}/s >= capacity {capacity:g}/s")
    rho = arrival_rate / capacity
    waits = erlang_c(servers, arrival_rate / service_rate)
    return Stationary(waits, waits * rho / (1 - rho), waits / (capacity - arrival_rate), rho)


@dataclass(frozen=True)
class QueueParams:
    """One instance's queue and the node-agent's targets (its settings' defaults)."""

    servers: int = 2
    service_s: float = 0.05
    target_queue_s: float = 0.1  # node-agent target_queue_time_us 100_000
    target_pending: float = 8.0  # node-agent target_pending_requests
    target_gpu_pct: Optional[float] = 90.0  # None: no readable GPU, the term is left out

    def __post_init__(self) -> None:
        if self.servers < 1:
            raise ValueError(f"servers must be at least 1, got {self.servers}")
        if not self.service_s > 0 or not self.target_queue_s > 0 or not self.target_pending > 0:
            raise ValueError("service time, target queue time and target pending must be positive")
        if self.target_gpu_pct is not None and not 0 < self.target_gpu_pct <= 100:
            raise ValueError(f"target GPU utilization must be in (0, 100], got {self.target_gpu_pct:g}")

    @property
    def capacity(self) -> float:
        return self.servers / self.service_s

    def figure(self, queue_s: float, pending: float, utilization: float) -> float:
        """The node-agent's load figure (telemetry.normalized_load there)."""
        terms = [queue_s / self.target_queue_s, pending / self.target_pending]
        if self.target_gpu_pct is not None:
            terms.append(utilization * 100 / self.target_gpu_pct)
        return round(max(terms), 4)

    def stationary_figure(self, arrival_rate: float) -> float:
        s = stationary(self.servers, arrival_rate, 1 / self.service_s)
        return self.figure(s.wait_s, s.queue_length, s.utilization)

    def rate_at(self, figure: float) -> float:
        """The arrival rate (requests/s) at which a stable instance reports ``figure``."""
        low, high = 0.0, self.capacity
        for _ in range(100):  # the figure rises with the rate, without bound near capacity
            mid = (low + high) / 2
            low, high = (mid, high) if self.stationary_figure(mid) < figure else (low, mid)
        return low


class InstanceQueue(NamedTuple):
    instance_id: str
    queued: float = 0.0
    served_rate: float = 0.0  # over the last step: arrivals plus what the queue lost

    def settled(self, params: QueueParams, arrival_rate: float) -> "InstanceQueue":
        """At the stationary state of ``arrival_rate`` (empty when unstable: it has no such state)."""
        if arrival_rate >= params.capacity - _EPS:
            return InstanceQueue(self.instance_id, 0.0, params.capacity)
        queued = stationary(params.servers, arrival_rate, 1 / params.service_s).queue_length
        return InstanceQueue(self.instance_id, queued, arrival_rate)

    def advance(self, params: QueueParams, arrival_rate: float, dt: float) -> "InstanceQueue":
        """The queue after ``dt`` (> 0) seconds at ``arrival_rate``."""
        capacity = params.capacity
        if arrival_rate >= capacity - _EPS:
            queued = self.queued + (arrival_rate - capacity) * dt
        else:
            settled = stationary(params.servers, arrival_rate, 1 / params.service_s).queue_length
            # A longer queue drains at the spare capacity; a shorter one forms at once.
            queued = max(settled, self.queued - (capacity - arrival_rate) * dt)
        served = min(capacity, max(0.0, arrival_rate + (self.queued - queued) / dt))
        return InstanceQueue(self.instance_id, queued, served)

    def readings(self, params: QueueParams) -> Tuple[float, float, float]:
        """(queue time per request s, pending requests, utilization 0..1) over the last step."""
        throughput = self.served_rate or params.capacity
        return self.queued / throughput, self.queued, self.served_rate / params.capacity


class QueueingFleet:
    """The serving instances' queues; the simulator joins, drains, advances and reads them."""

    def __init__(self, params: QueueParams, rate_per_load: float, count: int, load: float) -> None:
        self.params, self.rate_per_load = params, rate_per_load
        self.instances: List[InstanceQueue] = []
        self.started = 0
        self.join(count)
        rate = self.rate(load)
        self.instances = [q.settled(params, rate) for q in self.instances]

    @property
    def size(self) -> int:
        return len(self.instances)

    def join(self, count: int) -> None:
        for _ in range(count):
            self.instances.append(InstanceQueue(f"i{self.started}"))
            self.started += 1

    def leave(self, count: int) -> None:
        """Drain the youngest, as reconcile picks among ready instances."""
        del self.instances[len(self.instances) - count:]

    def rate(self, load: float) -> float:
        """Each serving instance's arrival rate: round robin shares the load equally."""
        return load * self.rate_per_load / self.size if self.size else 0.0

    def advance(self, load: float, dt: float) -> None:
        """Arrivals over ``dt`` seconds; the readings are the last step's, so ``dt = 0`` is a no-op."""
        if dt <= 0:
            return
        rate = self.rate(load)
        self.instances = [q.advance(self.params, rate, dt) for q in self.instances]

    def observe(self, now_s: float, noise: float, rng: random.Random) -> FleetObservation:
        samples = []
        for q in self.instances:
            queue_s, pending, utilization = q.readings(self.params)
            figure = self.params.figure(queue_s, pending, utilization)
            samples.append(InstanceTelemetry(
                q.instance_id, now_s, max(0.0, figure * (1 + noise * rng.gauss(0, 1))),
                queue_time_per_request_us=queue_s * 1e6, pending_requests=pending,
                gpu_utilization_pct=utilization * 100 if self.params.target_gpu_pct is not None else None))
        return FleetObservation(tuple(samples))

    def _mean(self, pick) -> float:
        if not self.instances:
            return math.nan
        return sum(pick(q.readings(self.params)) for q in self.instances) / len(self.instances)

    def mean_figure(self) -> float:
        return self._mean(lambda r: self.params.figure(*r))

    def mean_queue_s(self) -> float:
        """Round robin: every instance gets the same share, so this is the per-request mean."""
        return self._mean(lambda r: r[0])

    def overloaded(self) -> bool:
        """Clients wait longer than the target queue time (or nothing serves at all)."""
        return not self.instances or self.mean_queue_s() > self.params.target_queue_s + _EPS


@dataclass(frozen=True)
class QueueModel:
    params: QueueParams = QueueParams()
    name: str = "queue"

    def start(self, config: AutoscaleConfig, count: int, load: float) -> QueueingFleet:
        return QueueingFleet(self.params, self.params.rate_at(config.scale_up), count, load)

    def describe(self, config: AutoscaleConfig) -> str:
        p = self.params
        gpu = f"GPU target {p.target_gpu_pct:g} %" if p.target_gpu_pct is not None else "no GPU reading"
        return (f"M/M/{p.servers} per instance, service {p.service_s * 1000:g} ms, load 1 = "
                f"{p.rate_at(config.scale_up):.1f} req/s per instance; overloaded: queue time > "
                f"{p.target_queue_s * 1000:g} ms; {gpu}")
