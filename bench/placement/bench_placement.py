"""bench/placement: per-model placement and scaling against LRU multiplexing, on a skewed workload.

A seeded workload (placement_workload): 20 models whose memory is 3× one instance's, Zipf
popularity that moves to other models half way, a slow swell of the total rate, Poisson
arrivals. Every system runs on the same arrivals through the same queueing model
(placement_queues) after a warm-up that is not measured: each keeps the instances, copies
and learnt state of its warm-up, but not its backlog (every queue starts measured from its
stationary length, so no system pays for how it started):

- tarn: tarn_am.model_scaling and tarn_am.model_placement, the real functions (placement_fleet);
- (a) every model everywhere: cannot fit; what it would need is reported;
- (b) LRU multiplexing per replica in the manner of Ray Serve (placement_lru), tuned: every
  N of a grid and several targets run, and the one with the lowest p99 is the baseline.

Targets: tarn's p99 queue time <= 0.5x the baseline's at <= its instance-seconds; loads per
hour <= the baseline's. Exits 1 when one is missed. Writes a PNG under bench/placement/out/.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from placement_fleet import DECISION_S, Fleet, Tarn  # noqa: E402
from placement_lru import Lru, LruParams  # noqa: E402
from placement_workload import Workload, workload  # noqa: E402
from tarn_am.model_placement import CONSOLIDATE_BELOW  # noqa: E402

P99_RATIO_MAX = 0.5
GRID_N = (2, 3, 4, 6, 8)
GRID_TARGET = (2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Result:
    name: str
    p99_s: float
    mean_s: float
    served: float
    offered: float
    instance_s: float
    loads_per_h: float
    unloads_per_h: float
    peak_instances: int
    over_capacity: int
    fleet: Fleet


def arrivals(w: Workload, warmup_s: float, dt: float) -> np.ndarray:
    rng = np.random.default_rng(w.seed)
    times = np.arange(-warmup_s, w.duration_s, dt)
    return np.array([rng.poisson(w.rates(max(t, 0.0)) * dt) / dt for t in times]), times


def simulate(fleet: Fleet, w: Workload, rates: np.ndarray, times: np.ndarray, dt: float,
             first_instances: int) -> Result:
    for _ in range(first_instances):
        fleet.start_instance(times[0])
    every = int(round(DECISION_S / dt))
    for k, t in enumerate(times):
        if abs(t) < dt / 2:
            fleet.start_measuring()
        if k % every == 0:
            fleet.decide(float(t))
        fleet.step(float(t), rates[k], dt, record=t >= 0 and k % 5 == 0)
    hours = w.duration_s / 3600
    tally = fleet.tally
    return Result(fleet.name, fleet.waits.quantile(0.99), fleet.waits.mean(), tally.served, tally.offered,
                  tally.instance_s, tally.loads / hours, tally.unloads / hours, tally.peak_instances,
                  tally.over_capacity, fleet)


def everywhere(w: Workload, rates: np.ndarray, times: np.ndarray) -> str:
    """Every model on every instance: the memory it needs and, round robin, the instances the
    load needs (the hottest model's copies at 70 % of a copy's capacity)."""
    caps = np.array([m.capacity for m in w.models])
    measured = rates[times >= 0]
    needed = np.ceil(np.max(measured / (0.7 * caps), axis=1))
    return (f"(a) every model everywhere: cannot fit. Each instance would need {w.total_gib:.0f} GiB "
            f"({w.total_gib / w.capacity_gib:.1f}x the {w.capacity_gib:g} GiB it has); the load would need "
            f"{int(needed.max())} such instances at its peak ({needed.max() * w.total_gib:.0f} GiB), "
            f"{needed.sum() * (times[1] - times[0]):.0f} instance-seconds of {w.total_gib:.0f} GiB instances")


def packed_instance_s(result: Result, w: Workload) -> tuple:
    """(instance-seconds were tarn's copies packed first-fit decreasing at every sample, mean
    memory use of the instances it held): what consolidating placement would save."""
    sizes = {m.name: m.size_gib for m in w.models}
    total, use = 0.0, []
    trace = result.fleet.trace
    step = trace[1][0] - trace[0][0] if len(trace) > 1 else 0.0
    for _, count, copies, _ in trace:
        bins: list = []
        for name in sorted(copies, key=lambda n: -sizes[n]):
            for _ in range(copies[name]):
                spot = next((b for b in bins if name not in b[1] and b[0] + sizes[name] <= w.capacity_gib), None)
                if spot is None:
                    bins.append([sizes[name], {name}])
                else:
                    spot[0] += sizes[name]
                    spot[1].add(name)
        total += len(bins) * step
        use.append(sum(sizes[n] * c for n, c in copies.items()) / (count * w.capacity_gib) if count else 0.0)
    return total, float(np.mean(use)) if use else 0.0


def row(r: Result, label: str) -> str:
    return (f"{label:<44} {r.p99_s * 1000:>9.0f} {r.mean_s * 1000:>9.1f} {r.served:>10.0f} "
            f"{r.instance_s:>10.0f} {r.loads_per_h:>8.0f} {r.unloads_per_h:>8.0f} {r.peak_instances:>5}")


HEADER = (f"{'system':<44} {'p99 ms':>9} {'mean ms':>9} {'served':>10} {'inst-s':>10} {'loads/h':>8} "
          f"{'unloads/h':>8} {'peak':>5}")


def run(w: Workload, warmup_s: float = 600.0, dt: float = 1.0, grid_n=GRID_N, grid_target=GRID_TARGET,
        first_instances: int = 4, quiet: bool = False):
    """(tarn's result, every LRU result, the chosen baseline, the everywhere line)."""
    rates, times = arrivals(w, warmup_s, dt)
    ours = simulate(Tarn(w), w, rates, times, dt, first_instances)
    lru = []
    for n in grid_n:
        for target in grid_target:
            params = LruParams(max_models=n, target_ongoing=target)
            lru.append((params, simulate(Lru(w, params), w, rates, times, dt, first_instances)))
    best = min(lru, key=lambda pr: (pr[1].p99_s, pr[1].instance_s))
    return ours, lru, best, everywhere(w, rates, times)


def checks(ours: Result, baseline: Result):
    p99 = ours.p99_s / baseline.p99_s if baseline.p99_s > 0 else math.inf
    inst = ours.instance_s / baseline.instance_s
    loads = ours.loads_per_h / baseline.loads_per_h if baseline.loads_per_h > 0 else math.inf
    return [(f"p99 queue time tarn/LRU = {p99:.3f}x (target <= {P99_RATIO_MAX:g}x)", p99 <= P99_RATIO_MAX),
            (f"instance-seconds tarn/LRU = {inst:.3f}x (target <= 1x)", inst <= 1.0),
            (f"loads per hour tarn/LRU = {loads:.3f}x (target <= 1x)", loads <= 1.0),
            (f"tarn never held more than an instance's memory ({ours.over_capacity} steps over)",
             ours.over_capacity == 0)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "out",
                        help="folder for the PNG (default bench/placement/out)")
    parser.add_argument("--duration", type=float, default=3600.0, help="measured seconds (default 3600)")
    args = parser.parse_args(argv)
    w = workload(duration_s=args.duration)
    print(f"workload: {len(w.models)} models, {w.total_gib:.0f} GiB in all = {w.total_gib / w.capacity_gib:.1f}x "
          f"an instance's {w.capacity_gib:g} GiB; Zipf popularity, new order at {w.shift_at_s:.0f}s; "
          f"{w.base_rate:g} req/s +-{w.swell:.0%}; {w.duration_s:.0f}s measured after a 600s warm-up; "
          f"instance start-up {w.startup_s:g}s, loads 2s + 1s/GiB")
    ours, lru, (params, baseline), every = run(w)
    print(every)
    print("\n" + HEADER)
    print(row(ours, "tarn (per-model scaling + placement)"))
    print(row(baseline, f"(b) LRU baseline, best p99 of {len(lru)}"))
    packed, use = packed_instance_s(ours, w)
    print(f"tarn's instances held its copies at {use:.0%} of their memory on average (placement spreads copies, "
          f"then consolidates a calm fleet below {CONSOLIDATE_BELOW:.0%}). Packed at every instant, the same copies "
          f"would take {packed:.0f} instance-seconds ({packed / baseline.instance_s:.2f}x LRU's).")
    print(f"\n(b) LRU grid (Ray Serve defaults for max_ongoing and the delays), baseline: {params.describe()}")
    print(HEADER)
    for p, r in lru:
        print(row(r, f"    LRU {p.describe().split(', max_')[0]}"))
    missed = 0
    print("\ntargets:")
    for text, ok in checks(ours, baseline):
        missed += not ok
        print(f"  {'met' if ok else 'MISSED'}: {text}")
    try:
        from placement_plot import plot
        path = plot(ours, baseline, params.describe(), w, args.out / "placement.png")
        print(f"\nplot: {path}")
    except ImportError as exc:
        print(f"\nplot: not drawn ({exc}); pip install matplotlib")
        missed += 1
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
