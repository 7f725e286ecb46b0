"""bench/placement in small: the real placement and scaling over the queueing model, against
LRU multiplexing, on a tiny workload (seconds, no servers)."""
from __future__ import annotations

import importlib
import math
import sys

from tests.support.scripts import ROOT


def bench_module(name: str):
    """A module of bench/placement, imported as its script imports its siblings."""
    folder = str(ROOT / "bench" / "placement")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def test_a_tiny_run_serves_what_arrives_keeps_memory_and_judges_both_targets():
    bench = bench_module("bench_placement")
    w = bench.workload(models=6, capacity_gib=8.0, duration_s=240.0, base_rate=80.0)
    ours, lru, (params, baseline), every = bench.run(w, warmup_s=60.0, grid_n=(2, 4), grid_target=(2.0,),
                                                      first_instances=4)
    assert len(lru) == 2 and baseline is min((r for _, r in lru), key=lambda r: (r.p99_s, r.instance_s))
    for result in [ours] + [r for _, r in lru]:
        assert result.over_capacity == 0
        assert result.served >= 0.9 * result.offered > 0  # short queues: nearly all of it served
        assert math.isfinite(result.p99_s) and result.p99_s >= result.fleet.waits.quantile(0.5)
    # every model keeps a copy, and never more copies than instances (one per instance at most)
    assert all(1 <= min(copies.values()) and max(copies.values()) <= count for _, count, copies, _ in ours.fleet.trace)
    assert "cannot fit" in every and "3.0x" in every
    texts = [text for text, _ in bench.checks(ours, baseline)]
    assert [t.split(" = ")[0] for t in texts[:3]] == ["p99 queue time tarn/LRU", "instance-seconds tarn/LRU",
                                                      "loads per hour tarn/LRU"]


def test_the_p99_of_the_waits_is_the_mixtures_quantile():
    queues = bench_module("placement_queues")
    waits = queues.Waits()
    waits.add(99.0, 0.0, 0.0, 1.0)  # 99 requests that never wait
    waits.add(1.0, 2.0, 0.0, 1.0)  # 1 that waits 2 s for a load
    assert 0.0 <= waits.quantile(0.98) < 0.01 and abs(waits.quantile(0.995) - 2.0) < 0.01
    exp = queues.Waits()
    exp.add(1.0, 0.0, 1.0, 10.0)  # every request waits, exponentially with mean 0.1 s
    assert abs(exp.quantile(0.99) - math.log(100) / 10) < 1e-3 and abs(exp.mean() - 0.1) < 1e-9
