"""`tarn simulate`: replay a load trace through our policy and the seeds' policy.

Trace format (CSV, ``#`` comments allowed, header ``t_s,load`` optional): one row per
change, the load holding until the next row; the last row's time ends the trace. ``load``
is the fleet's demand in units of one instance's capacity at the scale-up threshold, so
``ceil(load)`` instances are needed and, with ``n`` instances serving, each reports the
normalized load figure ``load * scale_up / n``.

The model: every telemetry interval each serving instance reports that figure (times
``1 + noise * N(0,1)`` when ``--noise`` is set, from a seeded generator); the policy decides;
an instance requested at ``t`` serves from ``t + startup_s``; a drained instance stops
serving (and costing) at once, a request still starting is cancelled first. Per second:
*overloaded* when the load exceeds the instances serving, *instance-seconds* count every
instance requested (starting ones hold a GPU node too).
"""
from __future__ import annotations

import argparse
import bisect
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..autoscale import AutoscaleConfig, FleetObservation, InstanceTelemetry, QueueTimePolicy, ScalingDecision
from .seeds_policy import SeedsPolicy

_EPS = 1e-9


class TraceError(ValueError):
    pass


@dataclass(frozen=True)
class Trace:
    name: str
    times_s: Tuple[float, ...]
    loads: Tuple[float, ...]

    @property
    def duration_s(self) -> float:
        return self.times_s[-1]

    def load_at(self, t_s: float) -> float:
        return self.loads[max(0, bisect.bisect_right(self.times_s, t_s) - 1)]


def parse_trace(text: str, name: str = "trace") -> Trace:
    times: List[float] = []
    loads: List[float] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.replace(" ", "") == "t_s,load":
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 2:
            raise TraceError(f"{name}:{lineno}: expected 't_s,load', got {raw.strip()!r}")
        try:
            t_s, load = float(cells[0]), float(cells[1])
        except ValueError:
            raise TraceError(f"{name}:{lineno}: not numbers: {raw.strip()!r}") from None
        if not (math.isfinite(t_s) and math.isfinite(load)) or load < 0:
            raise TraceError(f"{name}:{lineno}: load must be a finite number >= 0, got {raw.strip()!r}")
        if times and t_s <= times[-1]:
            raise TraceError(f"{name}:{lineno}: times must increase ({t_s:g} after {times[-1]:g})")
        times.append(t_s)
        loads.append(load)
    if len(times) < 2:
        raise TraceError(f"{name}: a trace needs at least two rows (the last one ends it)")
    if times[0] != 0:
        raise TraceError(f"{name}: the first row must be at t_s=0")
    return Trace(name, tuple(times), tuple(loads))


def load_trace(path: Path) -> Trace:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror}") from None
    return parse_trace(text, Path(path).stem)


@dataclass
class SimResult:
    policy: str
    times_s: List[float] = field(default_factory=list)
    load: List[float] = field(default_factory=list)
    needed: List[int] = field(default_factory=list)
    serving: List[int] = field(default_factory=list)
    allocated: List[int] = field(default_factory=list)
    decisions: List[Tuple[float, ScalingDecision]] = field(default_factory=list)  # moves only
    overloaded_s: float = 0.0
    instance_s: float = 0.0

    def catch_up_s(self) -> Tuple[float, float]:
        """Worst (request, serve) delay over overload episodes: from the first second the
        needed count exceeds the serving one to the first second it is requested, and served."""
        worst_request = worst_serve = 0.0
        t0: Optional[float] = None
        requested: Optional[float] = None
        for t, need, srv, alloc in zip(self.times_s, self.needed, self.serving, self.allocated):
            if t0 is None and srv < need:
                t0, requested = t, None
            if t0 is not None:
                if requested is None and alloc >= need:
                    requested = t - t0
                if srv >= need:
                    worst_request = max(worst_request, requested if requested is not None else t - t0)
                    worst_serve = max(worst_serve, t - t0)
                    t0 = None
        if t0 is not None:  # still short at the end of the trace
            end = self.times_s[-1] + 1
            worst_request = max(worst_request, requested if requested is not None else end - t0)
            worst_serve = max(worst_serve, end - t0)
        return worst_request, worst_serve


def needed_count(config: AutoscaleConfig, load: float) -> int:
    return min(config.max_instances, max(config.min_instances, math.ceil(load - _EPS)))


def simulate(policy, config: AutoscaleConfig, trace: Trace, *, startup_s: float,
             noise: float = 0.0, seed: int = 0, step_s: float = 1.0) -> SimResult:
    rng = random.Random(seed)
    result = SimResult(policy=policy.name)
    state = policy.initial_state()
    serving = needed_count(config, trace.load_at(0.0))
    starting: List[float] = []  # ready-at times
    interval = config.telemetry_interval_s
    next_decision = 0.0
    steps = int(round(trace.duration_s / step_s))
    for i in range(steps):
        t = i * step_s
        load = trace.load_at(t)
        ready_now = [r for r in starting if r <= t + _EPS]
        serving += len(ready_now)
        starting = [r for r in starting if r > t + _EPS]
        if t + _EPS >= next_decision:
            next_decision += interval
            figure = load * config.scale_up / serving if serving else 0.0
            observed = FleetObservation(tuple(
                InstanceTelemetry(f"i{k}", t, max(0.0, figure * (1 + noise * rng.gauss(0, 1))))
                for k in range(serving)))
            decision, state = policy.decide(serving + len(starting), observed, t, state)
            if decision.add:
                starting.extend([t + startup_s] * decision.add)
            if decision.remove:
                cancelled = min(decision.remove, len(starting))
                starting = sorted(starting)[:len(starting) - cancelled]
                serving -= decision.remove - cancelled
            if decision.add or decision.remove:
                result.decisions.append((t, decision))
        result.times_s.append(t)
        result.load.append(load)
        result.needed.append(needed_count(config, load))
        result.serving.append(serving)
        result.allocated.append(serving + len(starting))
        result.instance_s += (serving + len(starting)) * step_s
        if load > serving + _EPS:
            result.overloaded_s += step_s
    return result


def compare(config: AutoscaleConfig, trace: Trace, *, startup_s: float, noise: float = 0.0,
            seed: int = 0) -> Tuple[SimResult, SimResult]:
    ours = simulate(QueueTimePolicy(config), config, trace, startup_s=startup_s, noise=noise, seed=seed)
    seeds = simulate(SeedsPolicy(config), config, trace, startup_s=startup_s, noise=noise, seed=seed)
    return ours, seeds


def plot(trace: Trace, config: AutoscaleConfig, results: Sequence[SimResult], out: Path,
         startup_s: float) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hours = trace.duration_s > 3 * 3600
    scale, unit = (3600.0, "h") if hours else (60.0, "min")
    colors = {"tarn": "tab:blue", "seeds": "tab:orange"}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})
    x = [t / scale for t in results[0].times_s]
    top.fill_between(x, results[0].load, step="post", color="0.85", label="load (instances needed)")
    for r in results:
        c = colors.get(r.policy, None)
        top.step(x, r.serving, where="post", color=c, lw=1.8,
                 label=f"{r.policy}: serving  ({r.overloaded_s:.0f} s overloaded, {r.instance_s:.0f} instance-s)")
        top.step(x, r.allocated, where="post", color=c, lw=1, ls="--", label=f"{r.policy}: requested")
        over = [s < ld - _EPS for s, ld in zip(r.serving, r.load)]
        bottom.fill_between(x, 0, 1, where=over, step="post", color=c, alpha=0.25,
                            transform=bottom.get_xaxis_transform())
        figure = [ld * config.scale_up / s if s else float("nan") for ld, s in zip(r.load, r.serving)]
        bottom.plot(x, figure, color=c, lw=1, label=f"{r.policy}: load per instance")
    top.set_ylabel("instances")
    top.set_ylim(0, max(config.max_instances, max(results[0].load)) + 1)
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    top.set_title(f"{trace.name}: start-up {startup_s:g} s, scale-up {config.scale_up:g}, "
                  f"scale-down {config.scale_down:g}, instances {config.min_instances}..{config.max_instances}, "
                  f"cooldown {config.cooldown_s:g} s", fontsize=10)
    bottom.axhline(config.scale_up, color="red", lw=0.8, ls=":", label="scale-up")
    bottom.axhline(config.scale_down, color="green", lw=0.8, ls=":", label="scale-down")
    bottom.set_ylabel("load per instance\n(shaded: overloaded)")
    bottom.set_xlabel(f"time ({unit})")
    bottom.set_ylim(0, 2.0)
    bottom.legend(loc="upper left", fontsize=8, ncol=4)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `simulate` sub-command to an argparse subparsers object."""
    p = subparsers.add_parser(
        "simulate", help="replay a load trace through our autoscaling policy and the seeds'",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: tarn simulate --trace bench/autoscale/traces/step.csv --startup-s 60 "
               "--cooldown 120000 --min-instances 2 --max-instances 8 --out step.png")
    defaults = AutoscaleConfig()
    p.add_argument("--trace", required=True, type=Path, help="CSV trace, rows 't_s,load'")
    p.add_argument("--startup-s", type=float, default=60.0, help="container start-up delay (default 60)")
    p.add_argument("--out", type=Path, help="PNG to write (default: <trace name>.png here)")
    p.add_argument("--cooldown", type=float, default=120000, metavar="MS",
                   help="cooldown in milliseconds, as `tarn submit` (default 120000)")
    p.add_argument("--scale-up", type=float, default=defaults.scale_up)
    p.add_argument("--scale-down", type=float, default=defaults.scale_down)
    p.add_argument("--min-instances", type=int, default=defaults.min_instances)
    p.add_argument("--max-instances", type=int, default=defaults.max_instances)
    p.add_argument("--stabilization-s", type=float, default=defaults.stabilization_s)
    p.add_argument("--telemetry-interval-s", type=float, default=defaults.telemetry_interval_s)
    p.add_argument("--noise", type=float, default=0.0,
                   help="relative measurement noise on each load sample (e.g. 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise generator")
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> AutoscaleConfig:
    return AutoscaleConfig.from_seed_flags(
        scale_up=args.scale_up, scale_down=args.scale_down, min_instances=args.min_instances,
        max_instances=args.max_instances, cooldown_ms=args.cooldown,
        stabilization_s=args.stabilization_s, telemetry_interval_s=args.telemetry_interval_s,
        startup_s=args.startup_s)


def format_results(results: Sequence[SimResult]) -> str:
    rows = [f"{'policy':<8} {'request s':>9} {'serve s':>8} {'overloaded s':>12} {'instance-s':>11} {'moves':>6}"]
    for r in results:
        req, srv = r.catch_up_s()
        rows.append(f"{r.policy:<8} {req:>9.0f} {srv:>8.0f} {r.overloaded_s:>12.0f} "
                    f"{r.instance_s:>11.0f} {len(r.decisions):>6}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        trace = load_trace(args.trace)
    except (TraceError, ValueError) as e:
        print(f"tarn simulate: {e}", file=sys.stderr)
        return 2
    if args.startup_s < 0 or args.noise < 0:
        print("tarn simulate: --startup-s and --noise must not be negative", file=sys.stderr)
        return 2
    results = compare(config, trace, startup_s=args.startup_s, noise=args.noise, seed=args.seed)
    out = args.out or Path(f"{trace.name}.png")
    plot(trace, config, results, out, args.startup_s)
    print(f"trace {trace.name}: {trace.duration_s:g} s, start-up {args.startup_s:g} s")
    print(format_results(results))
    print("request s / serve s: worst delay from falling short of the needed count to requesting / serving it")
    print(f"plot: {out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="tarn")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
