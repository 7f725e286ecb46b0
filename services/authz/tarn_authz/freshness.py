"""How fresh one service's policies in force are, and the fail-closed rule; pure, the caller passes `now`.

The policies in force are confirmed current each time their source answers a refresh (a new
bundle, or "unchanged"). A refresh that fails — Ranger unreachable, or a policy set refused because
it cannot be evaluated — keeps the last good policies, so revocations made since stop taking effect:
the service is *degraded*, and its age (seconds since the last confirmation) grows. Past the
maximum age, decisions are denied (fail closed) with the reason."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class Freshness:
    confirmed_at: Optional[float] = None  # when the source last confirmed the policies in force current
    refreshed_at: Optional[float] = None  # the last refresh that succeeded
    last_error: Optional[str] = None  # why the latest refresh failed; None when it succeeded
    refused: bool = False  # the latest refresh got a policy set and refused it (it cannot be evaluated)
    failing_since: Optional[float] = None  # the first of the refreshes failing in a row

    def succeeded(self, now: float) -> None:
        self.confirmed_at = self.refreshed_at = now
        self.last_error, self.refused, self.failing_since = None, False, None

    def failed(self, error: str, refused: bool, now: float) -> None:
        self.last_error, self.refused = error, refused
        if self.failing_since is None:
            self.failing_since = now

    @property
    def degraded(self) -> bool:
        return self.last_error is not None

    def age_s(self, now: float) -> Optional[float]:
        return None if self.confirmed_at is None else max(0.0, now - self.confirmed_at)

    def describe(self, now: float, max_age_s: float) -> dict:
        age = self.age_s(now)
        return {"degraded": self.degraded, "refused": self.refused, "last_error": self.last_error,
                "policy_age_s": None if age is None else round(age, 3), "max_policy_age_s": max_age_s or None,
                "stale": stale_reason(self, now, max_age_s) is not None,
                "failing_since": self.failing_since, "refreshed_at": self.refreshed_at}


def stale_reason(freshness: Freshness, now: float, max_age_s: float) -> Optional[str]:
    """Why decisions must be denied because the policies in force are too old; None when they may be used.
    A max age of 0 is no limit."""
    age = freshness.age_s(now)
    if not max_age_s or age is None or age <= max_age_s:
        return None
    why = f"; last refresh: {freshness.last_error}" if freshness.last_error else ""
    return (f"policies in force are {age:.0f} s old, more than the maximum {max_age_s:g} s: "
            f"denied (fail closed){why}")
