"""How far a stream may be trimmed, as pure functions (the Redis side is in ``tarn_shared.streams``).

A stream is trimmed with ``XTRIM MINID``: every entry below the trim point goes. The point is
the oldest entry anybody still needs:

* a consumer that restarts with nothing rebuilds from the newest snapshot on (gateway-sync's
  replay reads from its ``lifecycle_through``, tarn-am's bootstrap applies it), so the
  ``lifecycle_through`` of a published snapshot is kept, and with it the snapshot (added
  after it) and everything later;
* a live consumer group still needs its pending entries (being handled, or left by a dead
  consumer until reclaimed) and everything not yet delivered to it (after its
  ``last-delivered-id``).

A group whose every consumer has been idle for ``abandoned_after_ms`` (no consumer at all: whose
last delivered entry is that old) no longer holds the stream back: a replica taken out of service
would otherwise keep the stream growing for ever. Its consumer rebuilds from the snapshot when it
comes back, as both of the lifecycle stream's readers do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from .membership import stream_id_key

# Five minutes of a 1,000-instance lifecycle stream is about 15 MB (a 250 kB snapshot each 5 s).
ABANDONED_AFTER_MS = 300_000


@dataclass(frozen=True)
class GroupPosition:
    """A consumer group on one stream, as XINFO GROUPS / XINFO CONSUMERS / XPENDING tell it."""

    name: str
    last_delivered_id: str
    oldest_pending_id: Optional[str] = None
    idle_ms: Optional[int] = None  # of its most recently active consumer; None: it has no consumer


def entry_ms(entry_id: str) -> int:
    return stream_id_key(entry_id)[0]


def oldest(entry_ids: Iterable[str]) -> Optional[str]:
    return min(entry_ids, key=stream_id_key, default=None)


def abandoned(group: GroupPosition, now_ms: int, abandoned_after_ms: int = ABANDONED_AFTER_MS) -> bool:
    if group.idle_ms is not None:
        return group.idle_ms > abandoned_after_ms
    return now_ms - entry_ms(group.last_delivered_id) > abandoned_after_ms


def group_needs(group: GroupPosition) -> str:
    """The oldest entry the group still needs: its oldest pending one, else its last delivered
    one (kept too: MINID keeps the point itself, and what follows it is undelivered)."""
    if group.oldest_pending_id is None:
        return group.last_delivered_id
    return min(group.oldest_pending_id, group.last_delivered_id, key=stream_id_key)


def trim_point(rebuild_from: Optional[str], groups: Sequence[GroupPosition], now_ms: int,
               abandoned_after_ms: int = ABANDONED_AFTER_MS) -> Optional[str]:
    """The MINID to trim at: the oldest of ``rebuild_from`` (what a restarted consumer needs;
    None: it needs nothing) and what each live group needs. None: trim nothing (nobody said
    what may go)."""
    needed = [group_needs(g) for g in groups if not abandoned(g, now_ms, abandoned_after_ms)]
    if rebuild_from is not None:
        needed.append(rebuild_from)
    point = oldest(needed)
    return None if point is None or stream_id_key(point) == (0, 0) else point


def lifecycle_trim_point(snapshot_through: Optional[str], groups: Sequence[GroupPosition], now_ms: int,
                         abandoned_after_ms: int = ABANDONED_AFTER_MS) -> Optional[str]:
    """The lifecycle stream's trim point after a snapshot built through ``snapshot_through``.
    A snapshot without it (its author had applied nothing) lets nothing go: a restarted
    consumer would need every entry."""
    if snapshot_through is None:
        return None
    return trim_point(snapshot_through, groups, now_ms, abandoned_after_ms)
