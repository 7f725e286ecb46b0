"""Regenerate the three traces kept in bench/autoscale/traces (deterministic: fixed seed).

Format (read by tarn_am.cli.simulate): CSV `t_s,load`, one row per change, the load holding
until the next row, the last row ending the trace. `load` is demand in units of one
instance's capacity at the scale-up threshold: ceil(load) instances are needed.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent / "traces"
BASE = 1.8  # two instances needed, each at 0.9 of the scale-up threshold
STEP_AT_S = 603  # between two telemetry ticks (every 5 s), not on one


def write(name: str, rows, comment: str) -> None:
    lines = [f"# {line}" for line in comment.strip().splitlines()] + ["t_s,load"]
    lines += [f"{t:g},{load:.4f}" for t, load in rows]
    (HERE / f"{name}.csv").write_text("\n".join(lines) + "\n")


def step():
    return [(0, BASE), (STEP_AT_S, BASE * 4), (3600, BASE * 4)]


def daily_ramp(period_s=86400, every_s=60, low=1.5, high=7.5):
    rows = [(t, low + (high - low) * (1 - math.cos(2 * math.pi * t / period_s)) / 2)
            for t in range(0, period_s, every_s)]
    return rows + [(period_s, low)]


def bursts(duration_s=7200, mean_gap_s=600, burst_s=30, factor=3, seed=7):
    rng = random.Random(seed)
    rows, t = [(0, BASE)], 0.0
    while True:
        t += rng.expovariate(1 / mean_gap_s)
        start = int(t)
        if start + burst_s >= duration_s:
            break
        if start <= rows[-1][0]:  # overlaps the previous burst: extend it
            rows[-1] = (start + burst_s, BASE)
            continue
        rows += [(start, BASE * factor), (start + burst_s, BASE)]
        t = start + burst_s
    return rows + [(duration_s, BASE)]


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    write("step", step(), f"step: load {BASE} (2 instances) until t=603 s, then x4 = {BASE * 4:g} (8 instances) for 50 min")
    write("daily_ramp", daily_ramp(), "daily ramp: one sine period over 24 h, load 1.5 at night to 7.5 at noon, a row a minute")
    write("bursts", bursts(), f"bursts: base {BASE}, 30 s bursts at x3 ({BASE * 3:g}) starting at Poisson times "
          "(mean gap 10 min, seed 7) over 2 h")
