"""bench/placement's workload: 20 models whose memory sums to 3× one instance's capacity,
Zipf popularity that shifts half way, a slow swell of the total rate. Seeded, so every run
and every system sees the same models and the same arrivals."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

GIB = 1 << 30


@dataclass(frozen=True)
class SimModel:
    name: str
    size_gib: float
    service_s: float  # mean execution time of one request
    servers: int  # parallel executions per copy (Triton's instance group)
    load_s: float  # time from a load command to serving

    @property
    def capacity(self) -> float:
        """Requests/s one copy serves at full occupancy."""
        return self.servers / self.service_s

    @property
    def size_bytes(self) -> int:
        return int(self.size_gib * GIB)


@dataclass(frozen=True)
class Workload:
    models: Sequence[SimModel]
    capacity_gib: float  # one instance's memory
    duration_s: float
    shift_at_s: float
    base_rate: float  # total requests/s before the swell
    swell: float  # relative amplitude of the total rate's slow swing
    swell_period_s: float
    before: np.ndarray  # popularity per model before the shift
    after: np.ndarray  # and after it
    startup_s: float = 60.0  # a new instance (YARN container, Triton) until it can load models
    seed: int = 0

    def rates(self, t: float) -> np.ndarray:
        """Mean arrival rate of each model at ``t``."""
        total = self.base_rate * (1 + self.swell * math.sin(2 * math.pi * t / self.swell_period_s))
        return total * (self.before if t < self.shift_at_s else self.after)

    @property
    def total_gib(self) -> float:
        return sum(m.size_gib for m in self.models)


def zipf(n: int, s: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** s
    return weights / weights.sum()


def workload(models: int = 20, capacity_gib: float = 24.0, memory_ratio: float = 3.0, duration_s: float = 3600.0,
             base_rate: float = 300.0, zipf_s: float = 1.1, seed: int = 7) -> Workload:
    rng = np.random.default_rng(seed)
    raw = rng.lognormal(0.0, 0.6, models)
    sizes = raw / raw.sum() * capacity_gib * memory_ratio
    sizes = np.minimum(sizes, capacity_gib * 0.45)  # every model fits an instance with room beside it
    sizes = sizes / sizes.sum() * capacity_gib * memory_ratio
    built: List[SimModel] = []
    for k, size in enumerate(sizes):
        # Bigger models take longer per request and to load (from the node's disk at ~1 GiB/s).
        built.append(SimModel(f"m{k:02d}", round(float(size), 3), 0.02 + 0.008 * float(size), 2, 2.0 + float(size)))
    ranks = rng.permutation(models)
    shifted = rng.permutation(models)  # the popularity shift: a new order, a new hot set
    popularity = zipf(models, zipf_s)
    return Workload(built, capacity_gib, duration_s, duration_s / 2, base_rate, 0.3, duration_s / 2,
                    popularity[ranks], popularity[shifted], seed=seed)
