"""The target and what operators set beside it, pure: the count tarn-am aims for, whether the
autoscaling policy may move it (`tarn autoscale off|on`), and a stop under way (`tarn stop`).

Operators win over the policy: a pause holds the count wherever the operator puts it; a stop
pauses first, so nothing moves the count back up from 0; a manual count must lie inside the
deployment's bounds, and inside them the policy starts its windows afresh from it (it moves
again only for a reason it sees after the operator's move). No I/O: the controller stores
what these functions return (skein's key-value store, then Redis) and acts on it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from tarn_shared.errors import TarnError

from .autoscale import Autoscaler

NO_AUTOSCALE = "submitted with --no-autoscale"


class Refusal(TarnError):
    """An operator's request that the target's rules refuse; the message says why, in one line."""


class Stopping(Refusal):
    """Refused because a stop is under way (a conflict, not a bad request)."""


@dataclass(frozen=True)
class Target:
    desired: int
    paused: bool = False  # the policy computes but moves nothing
    paused_reason: str = ""
    paused_at: Optional[float] = None
    stopping: bool = False  # `tarn stop` under way: the count stays at 0, the record goes

    @property
    def policy_moves(self) -> bool:
        return not self.paused and not self.stopping

    def controls(self) -> str:
        """What is stored beside the count (the count has its own key)."""
        return StoredControls(paused=self.paused, paused_reason=self.paused_reason, paused_at=self.paused_at,
                              stopping=self.stopping).model_dump_json()

    def with_controls(self, text: Optional[str]) -> Optional["Target"]:
        """This count with stored controls; None when ``text`` is missing or unreadable."""
        try:
            stored = StoredControls.model_validate_json(text) if text else None
        except ValidationError:
            return None
        return replace(self, **stored.model_dump()) if stored else None


class StoredControls(BaseModel):
    """The stored form of a Target's controls (skein's key-value store, Redis)."""

    model_config = ConfigDict(extra="ignore")
    paused: bool
    paused_reason: str
    paused_at: Optional[float]
    stopping: bool


def initial(desired: int, autoscale: bool, now: float) -> Target:
    """A deployment submitted with --no-autoscale starts paused (`tarn autoscale on` resumes it)."""
    return Target(desired) if autoscale else Target(desired, True, NO_AUTOSCALE, now)


def manual_count(target: Target, count: int, min_instances: int, max_instances: int) -> int:
    """The count an operator asks for, or a Refusal naming the bounds."""
    if target.stopping:
        raise Stopping("the deployment is stopping (tarn stop): its count stays at 0")
    if not min_instances <= count <= max_instances:
        hint = "; `tarn stop` drains every instance and ends the deployment" if count < min_instances else ""
        raise Refusal(f"count {count} is outside this deployment's bounds {min_instances}..{max_instances} "
                      f"(--min-instances..--max-instances){hint}")
    return count


def paused(target: Target, reason: str, now: float) -> Target:
    """A pause keeps its first reason and time: the dashboard says since when and why."""
    if target.paused:
        return target
    return replace(target, paused=True, paused_reason=reason or "paused by an operator", paused_at=now)


def resumed(target: Target) -> Target:
    if target.stopping:
        raise Stopping("the deployment is stopping (tarn stop): autoscaling stays off")
    return replace(target, paused=False, paused_reason="", paused_at=None)


def stopping(target: Target, reason: str, now: float) -> Target:
    """A stop pauses the policy, so it never moves the count back up, and takes the count to 0 in
    the same change (nobody reads a stop that still wants instances); its reason replaces an
    earlier pause's."""
    return replace(target, desired=0, paused=True, paused_reason=reason or "tarn stop", paused_at=now, stopping=True)


def fresh_windows(autoscaler: Autoscaler) -> Autoscaler:
    """After an operator's move or a resume the policy measures from now: a run below
    scale-down that began before counts no more (a scale-down needs a whole window again)."""
    return replace(autoscaler, state=autoscaler.state.out_of_low_run())


def pause_note(target: Target, policy_reason: Optional[str]) -> Optional[str]:
    """The policy's word while it moves nothing: what it would do, after why it does not."""
    if target.stopping:
        return f"stopping ({target.paused_reason}): the policy moves nothing"
    if target.paused:
        would = f"; the policy would: {policy_reason}" if policy_reason else ""
        return f"autoscaling paused ({target.paused_reason}){would}"
    return policy_reason
