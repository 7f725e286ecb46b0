"""What tarn-am's /healthz reports, pure: its bus (its own Redis consumers), its YARN
connection (the control loop's last good look at skein's containers) and the age of its last
reconcile decision. Any one broken makes the whole unhealthy (503)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence

from tarn_shared.consumer import ConsumerHealth

from .bus_health import BusHealth

MIN_STALE_S = 15.0  # a busy machine may stretch one round to seconds
STALE_ROUNDS = 10  # rounds without a good pass after which a phase counts as broken


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str
    age_s: Optional[float] = None  # since the last good pass


def stale_after_s(loop_interval_s: float) -> float:
    return max(MIN_STALE_S, STALE_ROUNDS * loop_interval_s)


def bus_check(health: BusHealth, consumers: Sequence[ConsumerHealth], now: float) -> Check:
    last_ok = [c.last_ok for c in consumers if c.last_ok is not None]
    age = round(now - min(last_ok), 3) if len(last_ok) == len(consumers) and last_ok else None
    if health.healthy:
        return Check(True, "tarn-am's Redis consumers are connected and caught up", age)
    if not consumers:
        return Check(False, "tarn-am's Redis consumers are not running", None)
    if any(c.behind for c in consumers):
        return Check(False, "tarn-am's Redis consumers are behind their streams", age)
    if age is None:
        return Check(False, "tarn-am's Redis consumers never reached Redis", None)
    return Check(False, f"tarn-am's Redis consumers are cut off from Redis (oldest good read {age:.0f} s ago)",
                 age)


def phase_check(what: str, ok_at: Optional[float], error: Optional[str], now: float, stale_s: float) -> Check:
    """A loop phase is broken when it never passed, or not for ``stale_s``."""
    if ok_at is None:
        return Check(False, f"no {what} yet" + (f": {error}" if error else ""), None)
    age = round(now - ok_at, 3)
    if age > stale_s:
        cause = f": {error}" if error else " (the control loop is stuck)"
        return Check(False, f"no {what} for {age:.0f} s{cause}", age)
    return Check(True, f"last {what} {age:.1f} s ago", age)


def health_checks(now: float, bus: Check, phase_ok_at: Mapping[str, float], phase_error: Mapping[str, str],
                  loop_interval_s: float) -> Dict[str, Check]:
    stale_s = stale_after_s(loop_interval_s)
    return {
        "bus": bus,
        "yarn": phase_check("answer from skein (YARN's containers)", phase_ok_at.get("observe"),
                            phase_error.get("observe"), now, stale_s),
        "reconcile": phase_check("reconcile decision", phase_ok_at.get("decide"), phase_error.get("decide"),
                                 now, stale_s),
    }


def healthy(checks: Mapping[str, Check]) -> bool:
    return all(c.ok for c in checks.values())
