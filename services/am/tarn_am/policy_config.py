"""The policy's configuration and the one set of rules it must satisfy.

``policy_problems(values, names)`` is pure and is the single source of the rules: `tarn submit`
calls it with its flags' names before anything reaches YARN, tarn-am's settings call it with
their environment variables' names (a bad value exits 78, so the supervisor stops instead of
restarting), and ``AutoscaleConfig`` / ``ReconcileTimings`` call it when they are built. A rule
is checked when every value it names is given, so each caller passes what it has.

Cross-checks with the node-agent: the policy decides once per telemetry interval and calls a
sample stale after a few of them, so the agents must publish at that interval; and one late
heartbeat must not release a healthy instance, so the heartbeat timeout spans at least two of
the agents' heartbeat intervals.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence, Tuple

from tarn_shared import defaults

# Seconds, unless the name says otherwise; what `tarn submit` and tarn-am default to.
STABILIZATION_S = 300.0
START_TIMEOUT_S = 300.0
HEARTBEAT_TIMEOUT_S = 20.0
BLOCKED_TIMEOUT_S = 120.0  # YARN fills a request it can in seconds
CRASH_LOOP_FAILURES = 5
CRASH_LOOP_WINDOW_S = 300.0
HEARTBEAT_MARGIN = 2.0  # heartbeat intervals a timeout must span

Rule = Tuple[Tuple[str, ...], Callable[..., bool], str]

# (values it reads, holds when, message): the message names values as {name} (the caller's
# name for it) and {name_v} (its value).
RULES: Tuple[Rule, ...] = (
    (("scale_up",), lambda up: up > 0, "{scale_up} ({scale_up_v:g}) must be above 0"),
    (("scale_down",), lambda down: down > 0,
     "{scale_down} ({scale_down_v:g}) must be above 0: load is never below 0, so no instance would ever drain"),
    (("scale_down", "scale_up"), lambda down, up: down < up,
     "{scale_down} ({scale_down_v:g}) must be lower than {scale_up} ({scale_up_v:g})"),
    (("min_instances",), lambda low: low >= 0, "{min_instances} ({min_instances_v}) must not be negative"),
    (("max_instances",), lambda high: high >= 1, "{max_instances} ({max_instances_v}) must be at least 1"),
    (("min_instances", "max_instances"), lambda low, high: low <= high,
     "{min_instances} ({min_instances_v}) must not exceed {max_instances} ({max_instances_v})"),
    (("cooldown_s",), lambda s: s >= 0, "{cooldown_s} must not be negative"),
    (("stabilization_s",), lambda s: s >= 0, "{stabilization_s} ({stabilization_s_v:g} s) must not be negative"),
    (("telemetry_interval_s",), lambda s: s > 0,
     "{telemetry_interval_s} ({telemetry_interval_s_v:g} s) must be above 0"),
    (("telemetry_interval_s", "agent_telemetry_interval_s"), lambda ours, agents: abs(ours - agents) < 1e-9,
     "{agent_telemetry_interval_s} ({agent_telemetry_interval_s_v:g} s) differs from {telemetry_interval_s} "
     "({telemetry_interval_s_v:g} s): the policy decides once per agent sample"),
    (("start_timeout_s",), lambda s: s > 0, "{start_timeout_s} ({start_timeout_s_v:g} s) must be above 0"),
    (("heartbeat_timeout_s",), lambda s: s > 0,
     "{heartbeat_timeout_s} ({heartbeat_timeout_s_v:g} s) must be above 0"),
    (("heartbeat_timeout_s", "agent_heartbeat_interval_s"),
     lambda timeout, interval: timeout >= HEARTBEAT_MARGIN * interval,
     "{heartbeat_timeout_s} ({heartbeat_timeout_s_v:g} s) must be at least twice the node-agent's heartbeat "
     "interval ({agent_heartbeat_interval_s}, {agent_heartbeat_interval_s_v:g} s): one late heartbeat would "
     "release a healthy instance"),
    (("blocked_timeout_s",), lambda s: s > 0, "{blocked_timeout_s} ({blocked_timeout_s_v:g} s) must be above 0"),
    (("crash_loop_failures",), lambda n: n >= 1,
     "{crash_loop_failures} ({crash_loop_failures_v}) must be at least 1"),
    (("crash_loop_window_s",), lambda s: s > 0,
     "{crash_loop_window_s} ({crash_loop_window_s_v:g} s) must be above 0"),
    (("restart_backoff_initial_s", "restart_backoff_max_s"), lambda first, most: 0 <= first <= most,
     "{restart_backoff_initial_s} must lie between 0 and {restart_backoff_max_s}"),
    (("drain_timeout_s",), lambda s: s > 0, "{drain_timeout_s} ({drain_timeout_s_v:g} s) must be above 0"),
    (("stale_after_intervals",), lambda n: n > 0, "{stale_after_intervals} must be above 0"),
    (("startup_s",), lambda s: s >= 0, "{startup_s} must not be negative"),
    (("trend_window_s",), lambda s: s >= 0, "{trend_window_s} must not be negative"),
)


def policy_problems(values: Mapping[str, object], names: Optional[Mapping[str, str]] = None) -> List[str]:
    """One line per broken rule among ``values``; ``names`` gives each value the caller's name
    (a flag, an environment variable), else the policy's name as `tarn submit` spells it."""
    names = names or {}
    problems = []
    for fields, holds, message in RULES:
        if any(values.get(f) is None for f in fields):
            continue
        if not holds(*(values[f] for f in fields)):
            words = {f: names.get(f, _flag_like(f)) for f in fields} | {f"{f}_v": values[f] for f in fields}
            problems.append(message.format(**words))
    return problems


def check(values: Mapping[str, object], names: Optional[Mapping[str, str]] = None,
          more: Sequence[str] = ()) -> None:
    """Raise one ValueError listing every broken rule (and ``more``), or return."""
    problems = list(more) + policy_problems(values, names)
    if problems:
        raise ValueError("; ".join(problems))


def _flag_like(name: str) -> str:
    return name.removesuffix("_s").replace("_", "-")


@dataclass(frozen=True)
class AutoscaleConfig:
    """Thresholds are on the normalized load figure per instance (1.0 = at target)."""

    scale_up: float = defaults.SCALE_UP
    scale_down: float = defaults.SCALE_DOWN
    min_instances: int = 1
    max_instances: int = 8
    cooldown_s: float = 120.0  # between opposite moves (up after down, down after up)
    stabilization_s: float = STABILIZATION_S  # load must stay below scale_down this long before a drain
    telemetry_interval_s: float = defaults.TELEMETRY_INTERVAL_S
    stale_after_intervals: float = 3.0  # a sample older than this many intervals is missing
    startup_s: float = 60.0  # expected container start-up: how far ahead a rising trend is projected
    trend_window_s: float = 120.0

    def __post_init__(self) -> None:
        # tarn-am passes max(1, --min-instances): the policy itself never scales to 0
        check(self.__dict__, more=[f"min-instances ({self.min_instances}) must be at least 1"]
              if self.min_instances < 1 else [])

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

    def bounded(self, count: int) -> int:
        return apply_bounds(count, self.min_instances, self.max_instances)


def apply_bounds(count: int, min_instances: int, max_instances: int) -> int:
    """The count moved inside min/max-instances: bounds are hard, whatever the load says."""
    return min(max_instances, max(min_instances, count))
