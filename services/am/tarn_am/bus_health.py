"""Whether tarn-am's own view of Redis is whole, pure: silence from the node-agents counts only
while the bus was healthy, so an outage of Redis (or of our connection to it) is never read as
the death of every instance.

The bus adapter (bus.py) feeds ``bus_health`` its consumers' ``ConsumerHealth`` and remembers
the last moment it saw the bus unhealthy; reconcile.py then measures silence from
``max(last heartbeat, healthy since)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from tarn_shared.consumer import ConsumerHealth

STALE_AFTER_S = 5.0  # a consumer with no good pass for this long counts as cut off (BLOCK is 0.5 s)


@dataclass(frozen=True)
class BusHealth:
    healthy: bool
    since: Optional[float] = None  # when it last became healthy (None while it is not)


def bus_health(consumers: Sequence[ConsumerHealth], now: float, last_bad_at: Optional[float],
               stale_after_s: float = STALE_AFTER_S) -> BusHealth:
    """Healthy when every consumer is connected, caught up and has passed recently; healthy
    since the latest of their own "since" and the last time we saw the bus unhealthy (a Redis
    that froze without closing the connection leaves a consumer's own "since" untouched)."""
    if not consumers:
        return BusHealth(False)
    for health in consumers:
        if not health.healthy or health.healthy_since is None or health.last_ok is None \
                or now - health.last_ok > stale_after_s:
            return BusHealth(False)
    since = max(h.healthy_since for h in consumers)
    if last_bad_at is not None:
        since = max(since, last_bad_at)
    return BusHealth(True, since)


def silent_since(last_heard: float, health: BusHealth) -> float:
    """Where silence starts counting: never before the bus was last healthy."""
    return max(last_heard, health.since) if health.since is not None else last_heard
