"""Container requests YARN does not fill, pure: a request pending (skein: waiting or requested)
longer than the blocked timeout no longer counts as serving; its slot is marked blocked, and
the reconcile decision re-places it on a free node (reconcile.py). skein gives a pending
request no start time, so the decision remembers when it first saw each one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

from .containers import ObservedContainer, Slot

PENDING_STATES = frozenset({"waiting", "requested"})


@dataclass(frozen=True)
class Unfilled:
    """A slot whose latest request YARN did not fill in time."""

    since: float  # when the request was first seen pending
    reason: str  # one line, YARN's word in it where it gave one


def pending_since(previous: Mapping[str, float], containers: Sequence[ObservedContainer],
                  now: float) -> Dict[str, float]:
    """skein id -> when each pending request was first seen; requests no longer pending are forgotten."""
    return {c.skein_id: previous.get(c.skein_id, now) for c in containers if c.state in PENDING_STATES}


def stuck_requests(containers: Sequence[ObservedContainer], since: Mapping[str, float], now: float,
                   timeout_s: float) -> List[ObservedContainer]:
    return [c for c in containers if c.skein_id in since and now - since[c.skein_id] >= timeout_s]


def re_place(stuck: Sequence[ObservedContainer], startable: Sequence[Slot], missing: int,
             marks: Mapping[str, Unfilled]) -> Tuple[List[ObservedContainer], List[ObservedContainer], List[Slot]]:
    """(stuck requests to re-place, those left waiting, the slots to start on), from ``startable``
    sorted with the marked slots last. Re-placed: as many as free unmarked nodes remain once
    the instances with no request at all have one; a marked node is asked again only for an
    instance no request waits for, so two nodes YARN does not fill are not tried in turn."""
    fresh = sum(1 for s in startable if s.service not in marks)
    moved = max(0, fresh - (missing - len(stuck)))
    waiting = list(stuck[moved:])
    return list(stuck[:moved]), waiting, list(startable[:max(fresh, missing - len(waiting))])


def unfilled_reason(container: ObservedContainer, host: str, waited_s: float) -> str:
    text = f"YARN has not allocated the container requested on {host} in {waited_s:.0f} s"
    yarn_says = " ".join(container.exit_message.split())
    return f"{text}: {yarn_says}" if yarn_says else f"{text} (its resources are held or the node is lost)"


def marked(previous: Mapping[str, Unfilled], stuck: Sequence[ObservedContainer], slots: Sequence[Slot],
           containers: Sequence[ObservedContainer], since: Mapping[str, float], now: float) -> Dict[str, Unfilled]:
    """service -> its mark: set while its request is stuck, kept after the request is re-placed,
    cleared once YARN runs a container on that slot (it can be filled after all)."""
    hosts = {s.service: s.host for s in slots}
    running = {c.service for c in containers if c.state == "running"}
    notes = {service: note for service, note in previous.items() if service not in running}
    for c in stuck:
        notes[c.service] = Unfilled(since[c.skein_id], unfilled_reason(c, hosts.get(c.service, c.service),
                                                                        now - since[c.skein_id]))
    return notes
