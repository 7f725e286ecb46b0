"""bench/placement's queueing model, shared by every system it compares.

A copy (one model on one instance) is an M/M/c server: ``servers`` parallel executions of
mean ``service_s``. Per step of ``dt`` seconds, as in tarn_am.cli.queue_model: below the
copy's capacity its queue is the stationary M/M/c one (Erlang C), a longer one left from
an overload drains at the spare capacity; at or above capacity the queue grows as a fluid.
A copy that is still loading serves nothing: what arrives waits for the load.

Each step's arrivals are recorded with their waiting-time distribution, ``d + X`` where d is
a deterministic delay (the load still to come, a backlog ahead) and X is 0 with probability
1 − P(wait) and exponential with rate ``c·μ − λ`` otherwise (M/M/c's waiting time). The
p99 is the quantile of that mixture over every request of the run.

Memory is what placement packs; compute is not shared between the copies on an instance
(each copy has its servers), the simplification this bench makes for every system alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np

from tarn_am.cli.queue_model import stationary

from placement_workload import SimModel

_EPS = 1e-9


@dataclass(eq=False)  # hashed by identity: routing maps each copy to its arrivals
class Copy:
    model: SimModel
    ready_at: float
    queued: float = 0.0
    served_rate: float = 0.0  # over the last step
    arrival_rate: float = 0.0  # over the last step
    last_used: float = 0.0
    leaving: bool = False  # routed away: serves what it has, then unloads

    def ready(self, now: float) -> bool:
        return now >= self.ready_at - _EPS

    def in_flight(self) -> float:
        """Requests queued or executing (Little's law for the executing ones)."""
        return self.queued + self.served_rate * self.model.service_s

    def queue_time_s(self) -> float:
        """Queue time per request served over the last step (what Triton's counters give)."""
        return self.queued / self.served_rate if self.served_rate > _EPS else 0.0

    def settled_queue(self) -> float:
        """The stationary queue at the last step's arrivals (0 when they were over capacity)."""
        m = self.model
        if self.arrival_rate >= m.capacity - _EPS:
            return 0.0
        return stationary(m.servers, self.arrival_rate, 1 / m.service_s).queue_length

    def step(self, now: float, rate: float, dt: float, waits: "Waits") -> float:
        """Advance ``dt`` with ``rate`` arrivals/s; records their waits; returns requests served."""
        m, before = self.model, self.queued
        self.arrival_rate = rate
        if not self.ready(now):
            self.queued += rate * dt
            self.served_rate = 0.0
            waits.add(rate * dt, self.ready_at - now + before / m.capacity, 0.0, 1.0)
            return 0.0
        cap = m.capacity
        if rate >= cap - _EPS:
            self.queued += (rate - cap) * dt
            waits.add(rate * dt, self.queued / cap, 0.0, 1.0)
        else:
            s = stationary(m.servers, rate, 1 / m.service_s)
            self.queued = max(s.queue_length, before - (cap - rate) * dt)
            backlog = max(0.0, self.queued - s.queue_length)
            waits.add(rate * dt, backlog / cap, s.wait_probability, cap - rate)
        self.served_rate = min(cap, max(0.0, rate + (before - self.queued) / dt))
        return self.served_rate * dt


@dataclass
class Waits:
    """Every request's waiting-time distribution, as rows (weight, delay, P(wait), tail rate)."""

    rows: List[tuple] = field(default_factory=list)

    def add(self, weight: float, delay_s: float, wait_probability: float, tail_rate: float) -> None:
        if weight > _EPS:
            self.rows.append((weight, delay_s, wait_probability, max(tail_rate, _EPS)))

    def arrays(self):
        a = np.array(self.rows, dtype=float) if self.rows else np.zeros((0, 4))
        return a[:, 0], a[:, 1], a[:, 2], a[:, 3]

    def quantile(self, q: float) -> float:
        w, d, p, r = self.arrays()
        if not len(w):
            return 0.0
        total = w.sum()

        def beyond(t: float) -> float:
            late = np.where(t < d, 1.0, p * np.exp(-r * np.maximum(t - d, 0.0)))
            return float((w * late).sum() / total)

        low, high = 0.0, float(d.max() + 50.0 / r.min()) + 1.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if beyond(mid) > 1 - q else (low, mid)
        return high

    def mean(self) -> float:
        w, d, p, r = self.arrays()
        return float((w * (d + p / r)).sum() / w.sum()) if len(w) else 0.0


def mean_wait(rows: List[tuple]) -> float:
    """The request-weighted mean wait of some rows (for the plot's per-model curves)."""
    total = sum(w for w, *_ in rows)
    return sum(w * (d + p / r) for w, d, p, r in rows) / total if total > _EPS else float("nan")
