"""Time windows over (t, value) points, shared by the fleet-wide policy (autoscale.py) and
per-model scaling (model_scaling.py): pure, no clock."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

Points = Tuple[Tuple[float, float], ...]
_EPS = 1e-9


def within(points: Sequence[Tuple[float, float]], now_s: float, span_s: float) -> Points:
    """The points no older than ``span_s`` at ``now_s``."""
    return tuple((t, y) for t, y in points if now_s - t <= span_s + _EPS)


def mean(points: Points) -> Optional[float]:
    return sum(y for _, y in points) / len(points) if points else None


def peak(points: Points) -> Optional[float]:
    return max(y for _, y in points) if points else None


def time_left(since_s: Optional[float], now_s: float, span_s: float) -> Optional[float]:
    """Seconds until ``span_s`` has passed since ``since_s``; None when it has (or no start)."""
    if since_s is None:
        return None
    left = span_s - (now_s - since_s)
    return left if left > _EPS else None


def push_extreme(points: Points, t: float, value: float, span_s: float, largest: bool = True) -> Points:
    """A sliding window's running max (or min) kept as a monotonic queue: ``points`` after
    adding (t, value) and dropping what is older than ``span_s`` or can no longer be the
    extreme (an older point no better than a newer one). The extreme is ``points[0]``."""
    kept = [(s, y) for s, y in points if t - s <= span_s + _EPS]
    while kept and (kept[-1][1] <= value if largest else kept[-1][1] >= value):
        kept.pop()
    return tuple(kept) + ((t, value),)
