"""bench/autoscale: our autoscaling policy against the seeds' on the three kept traces.

Both policies run in the same process through the same simulator (tarn_am.cli.simulate) with
the seeds' example flags (--scale-up 0.8 --scale-down 0.2 --min-instances 2
--max-instances 8 --cooldown 120000), a 60 s container start-up and a 5 s telemetry
interval; under two models of the fleet (load per instance falling as 1/n, and an M/M/c
queue per instance), each once with exact telemetry and once with 5 % measurement noise
(seeded). Exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from tarn_am.autoscale import AutoscaleConfig
from tarn_am.cli.queue_model import QueueModel
from tarn_am.cli.sim_plot import PlotError, plot
from tarn_am.cli.sim_trace import load_trace
from tarn_am.cli.simulate import LinearModel, compare, plot_title

HERE = Path(__file__).resolve().parent
TRACES = ("step", "daily_ramp", "bursts")
OVERLOAD_RATIO_MIN = 5.0  # seeds' overloaded seconds / ours
INSTANCE_RATIO_MAX = 1.2  # our instance-seconds / seeds'


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def checks(name: str, ours, seeds, config: AutoscaleConfig):
    """(text, met) per target for one trace; met is None where the ratio has no meaning."""
    found = []
    if name == "step":
        req, _ = ours.catch_up_s()
        found.append((f"needed count requested {req:.0f} s after the step "
                      f"(target <= {config.telemetry_interval_s:g} s, one telemetry interval)",
                      req <= config.telemetry_interval_s))
    if ours.overloaded_s == 0 and seeds.overloaded_s == 0:
        found.append(("overloaded seconds: neither policy was overloaded, ratio n/a", None))
    else:
        ratio = math.inf if ours.overloaded_s == 0 else seeds.overloaded_s / ours.overloaded_s
        shown = "inf (ours 0)" if math.isinf(ratio) else f"{ratio:.2f}x"
        found.append((f"overloaded seconds seeds/ours = {shown} (target >= {OVERLOAD_RATIO_MIN:g}x)",
                      ratio >= OVERLOAD_RATIO_MIN))
    inst = ours.instance_s / seeds.instance_s
    found.append((f"instance-seconds ours/seeds = {inst:.2f}x (target <= {INSTANCE_RATIO_MAX:g}x)",
                   inst <= INSTANCE_RATIO_MAX))
    return found


def bench(config: AutoscaleConfig, model, startup_s: float, noise: float, plots: Path | None) -> int:
    """Prints one table; returns the number of targets missed."""
    missed = 0
    print(f"\n## model {model.name}, telemetry noise {noise:.0%}" + (" (seed 0)" if noise else " (exact)"))
    print(f"{'trace':<11} {'policy':<6} {'request s':>9} {'serve s':>8} {'overloaded s':>12} "
          f"{'instance-s':>11} {'moves':>6}")
    for name in TRACES:
        trace = load_trace(HERE / "traces" / f"{name}.csv")
        ours, seeds = compare(config, trace, startup_s=startup_s, noise=noise, seed=0, model=model)
        for r in (ours, seeds):
            req, srv = r.catch_up_s()
            print(f"{name:<11} {r.policy:<6} {req:>9.0f} {srv:>8.0f} {r.overloaded_s:>12.0f} "
                  f"{r.instance_s:>11.0f} {len(r.decisions):>6}")
        for text, ok in checks(name, ours, seeds, config):
            print(f"{'':<11} {'n/a' if ok is None else verdict(ok):<6} {text}")
            missed += ok is False
        if plots is not None:
            suffix = ("-queue" if model.name == "queue" else "") + (f"-noise{int(noise * 100)}" if noise else "")
            plot((ours, seeds), plots / f"{name}{suffix}.png", title=plot_title(trace, config, model, startup_s),
                 scale_up=config.scale_up, scale_down=config.scale_down, max_instances=config.max_instances)
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plots", type=Path, help="folder to write one PNG per trace, model and noise into")
    parser.add_argument("--startup-s", type=float, default=60.0)
    args = parser.parse_args()
    config = AutoscaleConfig.from_seed_flags(scale_up=0.8, scale_down=0.2, min_instances=2, max_instances=8,
                                             cooldown_ms=120000, startup_s=args.startup_s)
    models = (LinearModel(), QueueModel())
    print(f"# bench/autoscale: ours (tarn) vs the seeds' policy, start-up {args.startup_s:g} s, "
          f"telemetry every {config.telemetry_interval_s:g} s, stabilization {config.stabilization_s:g} s")
    for model in models:
        print(f"model {model.name}: {model.describe(config)}")
    print("request s / serve s: worst delay, over the episodes where fewer instances serve than the load "
          "needs, until the needed count is requested / serving")
    try:
        missed = sum(bench(config, model, args.startup_s, noise, args.plots)
                     for model in models for noise in (0.0, 0.05))
    except PlotError as e:
        print(f"bench/autoscale: {e}", file=sys.stderr)
        return 2
    print(f"\nall targets met: {'yes' if not missed else f'no, {missed} missed'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
