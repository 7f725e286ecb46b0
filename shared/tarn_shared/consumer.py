"""Consuming streams through a consumer group without losing anything.

Delivery is at least once. An entry is acked only after its handler returned; an entry
left pending by a dead consumer is reclaimed (XAUTOCLAIM) once idle for
``reclaim_idle_ms``; an entry that cannot be decoded, or that failed
``max_deliveries`` times, is copied to ``<stream>:dead``, counted and acked, so one bad
entry never stops a stream. Entries are handled in stream order on first delivery; a
retried entry comes after its successors, so handlers must be idempotent (the
sequence rules in ``tarn_shared.membership`` make lifecycle handling so).
When Redis goes away the loop backs off (bounded, with jitter) and carries on, and it
recreates its groups if Redis came back without them (no persistence).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Dict, List, Optional, Sequence

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import events
from .errors import SchemaError
from .streams import REDIS_DOWN, Backoff, Entry, as_text

log = logging.getLogger(__name__)

DEAD_LETTER_MAXLEN = 100_000
READ_GRACE_S = 10.0  # how much longer than its BLOCK a read may take before Redis counts as gone

Handler = Callable[[str, str, events.Event], Awaitable[None]]


def _stream_gone(exc: ResponseError) -> bool:
    """The group is missing, or (Redis 7) the stream was deleted under a blocked read."""
    text = str(exc)
    return "NOGROUP" in text or ("UNBLOCKED" in text and "no longer exists" in text)


@dataclass
class ConsumerConfig:
    group: str
    consumer: str
    block_ms: Optional[int] = 1000  # None: never block (a caller that polls, such as a benchmark)
    count: int = 100
    reclaim_idle_ms: int = 30_000  # also paces the XAUTOCLAIM scans: one every half of it
    max_deliveries: int = 5
    start_id: str = "0"  # where a newly created group starts: "0" = everything retained
    # A group that has to be created again (Redis restarted without persistence) starts
    # at "0": everything in the new stream came after the loss and must not be skipped.
    backoff: Backoff = field(default_factory=Backoff)


@dataclass
class ConsumerStats:
    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    reclaimed: int = 0
    reconnects: int = 0
    groups_created: int = 0


@dataclass
class ConsumerHealth:
    """For callers that must tell their own loss of Redis from silence upstream (wall-clock times).

    ``healthy`` once a pass succeeded and the last read came back short of a full batch
    (caught up); false while Redis is unreachable, the groups are being recreated, or the
    consumer is behind. ``healthy_since``: when it last became healthy; ``last_ok``: the last
    good pass (a Redis that stops answering keeps a read blocked for up to READ_GRACE_S).
    """

    healthy: bool = False
    healthy_since: Optional[float] = None
    last_ok: Optional[float] = None
    behind: bool = False


class StreamConsumer:
    """Consumes ``streams`` through one consumer group and calls ``handler`` per event."""

    def __init__(
        self,
        client: aioredis.Redis,
        streams: Sequence[str],
        config: ConsumerConfig,
        handler: Handler,
        *,
        decode: Callable[[Dict], events.Event] = events.decode,
    ) -> None:
        if not streams:
            raise ValueError("a consumer needs at least one stream")
        self._redis = client
        self.streams = list(streams)
        self.config = config
        self._handler = handler
        self._decode = decode
        self.stats = ConsumerStats()
        self._groups_ready = False
        self._own_pending_checked = False
        self._next_reclaim = 0.0
        self._had_groups = False
        self.health = ConsumerHealth()

    async def run(self, stop: Optional[asyncio.Event] = None) -> None:
        """Loop until ``stop`` is set; never returns early because of Redis or a handler."""
        stop = stop or asyncio.Event()
        failures = 0
        while not stop.is_set():
            try:
                await self.run_once()
                failures = 0
                self._note_pass()
            except REDIS_DOWN as exc:
                self._groups_ready = False
                self._note_down()
                self.stats.reconnects += 1
                delay = self.config.backoff.delay(failures)
                failures += 1
                log.warning("redis unreachable, retrying", extra={"group": self.config.group,
                                                                   "error": str(exc), "retry_in_s": round(delay, 3)})
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass

    async def run_once(self) -> int:
        """One pass: own pending entries (first pass only), reclaim, then new entries.
        Returns how many entries were processed."""
        if not self._groups_ready:
            await self.ensure_groups()
        processed = 0
        try:
            if not self._own_pending_checked:
                processed += await self._read({s: "0" for s in self.streams}, block_ms=None)
                self._own_pending_checked = True
            if time.monotonic() >= self._next_reclaim:
                self._next_reclaim = time.monotonic() + self.config.reclaim_idle_ms / 2000
                for stream in self.streams:
                    processed += await self._reclaim(stream)
            processed += await self._read({s: ">" for s in self.streams}, block_ms=self.config.block_ms)
        except ResponseError as exc:
            if not _stream_gone(exc):
                raise
            # Redis restarted without persistence, or someone deleted the stream.
            log.warning("consumer group missing, recreating", extra={"group": self.config.group})
            self._note_down()
            self._groups_ready = False
            self._own_pending_checked = False
        return processed

    def _note_pass(self) -> None:
        health = self.health
        health.last_ok = time.time()
        if health.behind or not self._groups_ready:
            self._note_down()
        elif not health.healthy:
            health.healthy, health.healthy_since = True, health.last_ok

    def _note_down(self) -> None:
        self.health.healthy, self.health.healthy_since = False, None

    async def ensure_groups(self) -> None:
        start_id = "0" if self._had_groups else self.config.start_id
        for stream in self.streams:
            try:
                await self._redis.xgroup_create(stream, self.config.group, id=start_id, mkstream=True)
                self.stats.groups_created += 1
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True
        self._had_groups = True

    async def _read(self, ids: Dict[str, str], block_ms: Optional[int]) -> int:
        read = self._redis.xreadgroup(self.config.group, self.config.consumer, ids, count=self.config.count,
                                      block=block_ms)
        try:
            reply = await asyncio.wait_for(read, timeout=(block_ms or 0) / 1000 + READ_GRACE_S)
        except asyncio.TimeoutError:
            # Redis stopped answering without closing the connection: start afresh.
            await self._redis.connection_pool.disconnect()
            raise RedisTimeoutError("no answer to XREADGROUP") from None
        processed = 0
        if all(i == ">" for i in ids.values()):  # new entries, not our own pending ones
            self.health.behind = any(len(entries) >= self.config.count for _, entries in reply or [])
        for stream_name, entries in reply or []:
            stream = as_text(stream_name)
            done = []
            for entry_id, fields in entries:
                # On the own-pending pass (id "0"), entries already deleted come back empty.
                if not fields or await self._process(stream, as_text(entry_id), fields, deliveries=1):
                    done.append(entry_id)
                processed += 1 if fields else 0
            await self._ack(stream, done)
        return processed

    async def _reclaim(self, stream: str) -> int:
        reply = await self._redis.xautoclaim(
            stream, self.config.group, self.config.consumer,
            min_idle_time=self.config.reclaim_idle_ms, start_id="0-0", count=self.config.count,
        )
        claimed: List[Entry] = [(as_text(i), f) for i, f in (reply[1] if len(reply) > 1 else [])]
        await self._ack(stream, reply[2] if len(reply) > 2 else [])
        if not claimed:
            return 0
        self.stats.reclaimed += len(claimed)
        deliveries = await self._delivery_counts(stream, claimed[0][0], claimed[-1][0], len(claimed))
        done = [entry_id for entry_id, fields in claimed
                if await self._process(stream, entry_id, fields, deliveries=deliveries.get(entry_id, 1))]
        await self._ack(stream, done)
        return len(claimed)

    async def _ack(self, stream: str, entry_ids: List) -> None:
        # One XACK per batch: an entry handled but not yet acked when the process dies is
        # delivered again, which at-least-once allows.
        if entry_ids:
            await self._redis.xack(stream, self.config.group, *entry_ids)

    async def _delivery_counts(self, stream: str, first: str, last: str, count: int) -> Dict[str, int]:
        pending = await self._redis.xpending_range(
            stream, self.config.group, min=first, max=last, count=count, consumername=self.config.consumer
        )
        return {as_text(p["message_id"]): int(p["times_delivered"]) for p in pending}

    async def _process(self, stream: str, entry_id: str, fields: Dict, deliveries: int) -> bool:
        """Handle one entry; True when it is done with and may be acked."""
        if deliveries > self.config.max_deliveries:
            await self._dead_letter(stream, entry_id, fields, f"failed {deliveries - 1} deliveries")
            return False
        try:
            event = self._decode(fields)
        except SchemaError as exc:
            await self._dead_letter(stream, entry_id, fields, str(exc))
            return False
        try:
            await self._handler(stream, entry_id, event)
        except asyncio.CancelledError:
            raise
        except REDIS_DOWN:
            raise
        except Exception as exc:  # the handler's bug or a downstream outage: retry later
            self.stats.failed += 1
            log.warning("handler failed; entry stays pending", extra={
                "stream": stream, "entry_id": entry_id, "event_type": event.type,
                "deliveries": deliveries, "error": repr(exc)})
            return False
        self.stats.handled += 1
        return True

    async def _dead_letter(self, stream: str, entry_id: str, fields: Dict, reason: str) -> None:
        copy = {as_text(k): v for k, v in fields.items()}
        copy.update({"dead_stream": stream, "dead_id": entry_id, "dead_group": self.config.group,
                     "dead_reason": reason})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(events.dead_letter_stream(stream), copy, maxlen=DEAD_LETTER_MAXLEN, approximate=True)
            pipe.xack(stream, self.config.group, entry_id)
            await pipe.execute()
        self.stats.dead_lettered += 1
        log.error("entry dead-lettered", extra={"stream": stream, "entry_id": entry_id, "reason": reason})

