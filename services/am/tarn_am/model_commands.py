"""Which load and unload commands tarn-am sends for a placement (pure, ``--placement per-model``).

- At most one command is outstanding per instance and model: a move whose instance and
  model already have one waits for its ack (a load is acknowledged when Triton has loaded).
- An outstanding command is re-sent with the same id after ``resend_s`` without an ack (the
  agent answers a re-sent command it already finished with the same ack).
- A failed load is remembered: that model is not loaded on that instance again for
  ``retry_after_s`` (reported meanwhile), so a load Triton refuses is not retried in a tight loop.
- A command is done once acknowledged AND the agent's telemetry agrees (a loaded model shown,
  an unloaded one gone): an ack can overtake the sample that shows it, and placement must not
  take a model just loaded for a missing copy. Without that word it is dropped after ``settle_s``.
- A command to an instance that left the fleet is forgotten.
- Placement's inputs see the commands in flight: a model being loaded counts as held (its
  footprint as used until the agent's telemetry shows it), one being unloaded as gone.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Collection, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from tarn_shared import events as ev

from .model_placement import InstanceMemory, Placement

LOAD, UNLOAD = "load", "unload"
Key = Tuple[str, str]  # (instance id, model)


@dataclass(frozen=True)
class CommandTimings:
    resend_s: float = 120.0  # a load of a large model may take minutes: re-send rarely
    retry_after_s: float = 60.0
    settle_s: float = 30.0  # an acknowledged command the telemetry has not shown yet


@dataclass(frozen=True)
class Outstanding:
    command_id: str
    kind: str  # LOAD or UNLOAD
    sent_at: float
    acked_at: Optional[float] = None  # acknowledged done; kept until the telemetry shows it


@dataclass(frozen=True)
class LoadFailure:
    message: str
    failed_at: float


@dataclass(frozen=True)
class CommandBook:
    """What the commands phase remembers between rounds."""

    outstanding: Mapping[Key, Outstanding] = field(default_factory=dict)
    failures: Mapping[Key, LoadFailure] = field(default_factory=dict)
    sequence: int = 0


@dataclass(frozen=True)
class Send:
    instance_id: str
    model: str
    kind: str
    command_id: str
    first: bool  # False: a re-send of an unacknowledged command


def settle(book: CommandBook, acks: Mapping[str, ev.CommandAck], live: Collection[str], now: float,
           timings: CommandTimings, shown: Mapping[str, FrozenSet[str]]) -> CommandBook:
    """Clears the commands done (acknowledged, and ``shown``, the models each instance's
    telemetry counts as copies, agrees) or failed (a failed load is remembered), those of
    instances no longer live, and failures older than the retry delay."""
    outstanding: Dict[Key, Outstanding] = {}
    failures = {k: f for k, f in book.failures.items()
                if k[0] in live and now - f.failed_at < timings.retry_after_s}
    for key, command in book.outstanding.items():
        ack = acks.get(command.command_id)
        if key[0] not in live:
            continue
        if command.acked_at is None and ack is not None and ack.status is ev.AckStatus.DONE:
            command = replace(command, acked_at=now)
        if command.acked_at is not None:
            agreed = (key[1] in shown.get(key[0], frozenset())) == (command.kind == LOAD)
            if not agreed and now - command.acked_at < timings.settle_s:
                outstanding[key] = command
        elif ack is None or ack.status is ev.AckStatus.ACCEPTED:
            outstanding[key] = command
        elif command.kind == LOAD:
            failures[key] = LoadFailure(ack.message or "load failed", now)
    return replace(book, outstanding=outstanding, failures=failures)


def commands(placement: Placement, book: CommandBook, now: float,
             timings: CommandTimings) -> Tuple[List[Send], CommandBook]:
    """This round's sends: re-sends first, then one per new move."""
    sends: List[Send] = []
    outstanding = dict(book.outstanding)
    for (instance_id, model), command in sorted(book.outstanding.items()):
        if command.acked_at is None and now - command.sent_at >= timings.resend_s:
            outstanding[(instance_id, model)] = replace(command, sent_at=now)
            sends.append(Send(instance_id, model, command.kind, command.command_id, False))
    sequence = book.sequence
    moves = [(m, UNLOAD) for m in placement.unloads] + [(m, LOAD) for m in placement.loads]
    for move, kind in moves:
        key = (move.instance_id, move.model)
        if key in outstanding or (kind == LOAD and key in book.failures):
            continue
        sequence += 1
        command_id = f"{kind}-{move.model}-{move.instance_id}-{sequence}"
        outstanding[key] = Outstanding(command_id, kind, now)
        sends.append(Send(move.instance_id, move.model, kind, command_id, True))
    return sends, replace(book, outstanding=outstanding, sequence=sequence)


def with_commands_in_flight(instances: Sequence[InstanceMemory], book: CommandBook,
                            footprints: Mapping[str, int]) -> List[InstanceMemory]:
    """Placement's inputs as the outstanding commands will leave them."""
    out = []
    for i in instances:
        loading = {m for (k, m), c in book.outstanding.items() if k == i.instance_id and c.kind == LOAD}
        unloading = {m for (k, m), c in book.outstanding.items() if k == i.instance_id and c.kind == UNLOAD}
        unseen = loading - set(i.held_bytes)  # the agent's telemetry does not count it yet
        used = i.used_bytes + sum(footprints.get(m, 0) for m in unseen)
        out.append(replace(i, used_bytes=used, models=frozenset((i.models | loading) - unloading),
                           loading=frozenset((i.loading | unseen) - unloading)))
    return out


def instance_count(placement_count: int, desired: int, seen: int) -> int:
    """The target placement's count asks for, given ``seen`` of the ``desired`` instances in
    its inputs (the others still starting). Instances still starting count toward a growth;
    the fleet shrinks only once every instance is seen (an unseen one holds nothing yet, and
    dropping the target would stop the one that is about to serve)."""
    if placement_count > seen:
        return max(desired, placement_count)
    if seen < desired:
        return desired
    return placement_count
