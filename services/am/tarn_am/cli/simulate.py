"""`tarn simulate`: replay a load trace through our policy and the seeds' policy.

The trace (sim_trace.py) gives the fleet's demand over time, in units of one instance's
capacity at the scale-up threshold: ``ceil(load)`` instances are needed. A model turns
demand and the instances serving into the telemetry the policy reads:

- ``queue`` (default, queue_model.py): every instance an M/M/c queue, reporting queue time,
  pending requests, GPU utilization and the node-agent's load figure; *overloaded* when
  clients wait longer than the target queue time;
- ``linear``: each of ``n`` serving instances reports ``load * scale_up / n``, at once;
  *overloaded* when the load exceeds the instances serving.

Every telemetry interval each serving instance reports (its load figure times
``1 + noise * N(0,1)`` when ``--noise`` is set, from a seeded generator); the policy decides;
an instance requested at ``t`` serves from ``t + startup_s``; a drained instance stops
serving (and costing) at once, a request still starting is cancelled first.
*Instance-seconds* count every instance requested (starting ones hold a GPU node too).
"""
from __future__ import annotations

import argparse
import functools
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..autoscale import AutoscaleConfig, FleetObservation, InstanceTelemetry, QueueTimePolicy, ScalingDecision
from .queue_model import QueueModel, QueueParams
from .seeds_policy import SeedsPolicy
from .sim_plot import PlotError, check_target, plot
from .sim_trace import Trace, TraceError, load_trace

_EPS = 1e-9


@dataclass
class SimResult:
    policy: str
    times_s: List[float] = field(default_factory=list)
    load: List[float] = field(default_factory=list)
    needed: List[int] = field(default_factory=list)
    serving: List[int] = field(default_factory=list)
    allocated: List[int] = field(default_factory=list)
    figure: List[float] = field(default_factory=list)  # mean load figure of the serving instances
    over: List[bool] = field(default_factory=list)  # overloaded, as the model defines it
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


class LinearFleet:
    """The 1/n model: with ``n`` serving, each reports ``load · scale_up / n`` at once."""

    def __init__(self, config: AutoscaleConfig, count: int, load: float) -> None:
        self.scale_up, self.size, self.load = config.scale_up, count, load

    def join(self, count: int) -> None:
        self.size += count

    def leave(self, count: int) -> None:
        self.size -= count

    def advance(self, load: float, dt: float) -> None:
        self.load = load

    def mean_figure(self) -> float:
        return self.load * self.scale_up / self.size if self.size else math.nan

    def observe(self, now_s: float, noise: float, rng: random.Random) -> FleetObservation:
        figure = self.mean_figure() if self.size else 0.0
        return FleetObservation(tuple(
            InstanceTelemetry(f"i{k}", now_s, max(0.0, figure * (1 + noise * rng.gauss(0, 1))))
            for k in range(self.size)))

    def overloaded(self) -> bool:
        return self.load > self.size + _EPS


@dataclass(frozen=True)
class LinearModel:
    name: str = "1/n"

    def start(self, config: AutoscaleConfig, count: int, load: float) -> LinearFleet:
        return LinearFleet(config, count, load)

    def describe(self, config: AutoscaleConfig) -> str:
        return "load per instance falls as 1/n; overloaded: load > instances serving"


def simulate(policy, config: AutoscaleConfig, trace: Trace, *, startup_s: float,
             noise: float = 0.0, seed: int = 0, step_s: float = 1.0, model=LinearModel()) -> SimResult:
    rng = random.Random(seed)
    result = SimResult(policy=policy.name)
    state = policy.initial_state()
    fleet = model.start(config, needed_count(config, trace.load_at(0.0)), trace.load_at(0.0))
    starting: List[float] = []  # ready-at times
    interval = config.telemetry_interval_s
    next_decision = 0.0
    steps = int(round(trace.duration_s / step_s))
    for i in range(steps):
        t = i * step_s
        load = trace.load_at(t)
        fleet.join(sum(1 for r in starting if r <= t + _EPS))
        starting = [r for r in starting if r > t + _EPS]
        fleet.advance(load, 0.0)  # the new load and members, no time passed yet
        if t + _EPS >= next_decision:
            next_decision += interval
            observed = fleet.observe(t, noise, rng)
            decision, state = policy.decide(fleet.size + len(starting), observed, t, state)
            if decision.add:
                starting.extend([t + startup_s] * decision.add)
            if decision.remove:
                cancelled = min(decision.remove, len(starting))
                starting = sorted(starting)[:len(starting) - cancelled]
                fleet.leave(decision.remove - cancelled)
                fleet.advance(load, 0.0)
            if decision.add or decision.remove:
                result.decisions.append((t, decision))
        over = fleet.overloaded()
        result.times_s.append(t)
        result.load.append(load)
        result.needed.append(needed_count(config, load))
        result.serving.append(fleet.size)
        result.allocated.append(fleet.size + len(starting))
        result.figure.append(fleet.mean_figure())
        result.over.append(over)
        result.instance_s += (fleet.size + len(starting)) * step_s
        result.overloaded_s += step_s if over else 0.0
        fleet.advance(load, step_s)
    return result


def compare(config: AutoscaleConfig, trace: Trace, *, startup_s: float, noise: float = 0.0,
            seed: int = 0, model=LinearModel()) -> Tuple[SimResult, SimResult]:
    run_one = functools.partial(simulate, config=config, trace=trace, startup_s=startup_s, noise=noise,
                                seed=seed, model=model)
    return run_one(QueueTimePolicy(config)), run_one(SeedsPolicy(config))


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `simulate` sub-command to an argparse subparsers object."""
    p = subparsers.add_parser(
        "simulate", help="replay a load trace through our autoscaling policy and the seeds'",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: tarn simulate --trace bench/autoscale/traces/step.csv --startup-s 60 "
               "--cooldown 120000 --min-instances 2 --max-instances 8 --plot step.png")
    defaults, queue = AutoscaleConfig(), QueueParams()
    p.add_argument("--trace", required=True, type=Path, help="CSV trace, rows 't_s,load'")
    p.add_argument("--startup-s", type=float, default=60.0, help="container start-up delay (default 60)")
    p.add_argument("--plot", "--out", dest="plot", type=Path, metavar="FILE.png",
                   help="draw demand, instances and overload over time for both policies (needs matplotlib)")
    p.add_argument("--model", choices=("queue", "linear"), default="queue",
                   help="queue: M/M/c per instance (default); linear: load per instance falls as 1/n")
    p.add_argument("--servers", type=int, default=queue.servers, help="queue: parallel executions per instance")
    p.add_argument("--service-ms", type=float, default=queue.service_s * 1000, help="queue: mean service time")
    p.add_argument("--target-queue-ms", type=float, default=queue.target_queue_s * 1000,
                   help="queue: the node-agent's queue time at load 1.0")
    p.add_argument("--target-pending", type=float, default=queue.target_pending,
                   help="queue: the node-agent's pending requests at load 1.0")
    p.add_argument("--target-gpu-pct", type=float, default=queue.target_gpu_pct,
                   help="queue: the node-agent's GPU utilization at load 1.0; 0: no GPU reading")
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


def model_from_args(args: argparse.Namespace):
    if args.model == "linear":
        return LinearModel()
    return QueueModel(QueueParams(servers=args.servers, service_s=args.service_ms / 1000,
                                  target_queue_s=args.target_queue_ms / 1000, target_pending=args.target_pending,
                                  target_gpu_pct=args.target_gpu_pct or None))


def format_results(results: Sequence[SimResult]) -> str:
    rows = [f"{'policy':<8} {'request s':>9} {'serve s':>8} {'overloaded s':>12} {'instance-s':>11} {'moves':>6}"]
    for r in results:
        req, srv = r.catch_up_s()
        rows.append(f"{r.policy:<8} {req:>9.0f} {srv:>8.0f} {r.overloaded_s:>12.0f} "
                    f"{r.instance_s:>11.0f} {len(r.decisions):>6}")
    return "\n".join(rows)


def plot_title(trace: Trace, config: AutoscaleConfig, model, startup_s: float) -> str:
    return (f"{trace.name}: start-up {startup_s:g} s, scale-up {config.scale_up:g}, scale-down "
            f"{config.scale_down:g}, instances {config.min_instances}..{config.max_instances}, cooldown "
            f"{config.cooldown_s:g} s\n{model.describe(config)}")


def run(args: argparse.Namespace) -> int:
    try:
        if args.startup_s < 0 or args.noise < 0:
            raise ValueError("--startup-s and --noise must not be negative")
        config, model = config_from_args(args), model_from_args(args)
        trace = load_trace(args.trace)
        if args.plot is not None:
            check_target(args.plot)
    except (TraceError, PlotError, ValueError) as e:
        print(f"tarn simulate: {e}", file=sys.stderr)
        return 2
    results = compare(config, trace, startup_s=args.startup_s, noise=args.noise, seed=args.seed, model=model)
    if args.plot is not None:
        try:
            plot(results, args.plot, title=plot_title(trace, config, model, args.startup_s),
                 scale_up=config.scale_up, scale_down=config.scale_down, max_instances=config.max_instances)
        except PlotError as e:
            print(f"tarn simulate: {e}", file=sys.stderr)
            return 2
    print(f"trace {trace.name}: {trace.duration_s:g} s, start-up {args.startup_s:g} s; {model.describe(config)}")
    print(format_results(results))
    print("request s / serve s: worst delay from falling short of the needed count to requesting / serving it")
    if args.plot is not None:
        print(f"plot: {args.plot}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="tarn")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
