"""Which deployments this replica serves, and each one's Fleet: the deployment records
(read from Redis, then followed on the deployments stream), each lifecycle stream replayed
from its newest snapshot on and then consumed. Standbys do this too, so a takeover starts warm."""
from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing
from typing import Callable, Dict, Optional, Sequence

from tarn_shared import events as ev
from tarn_shared.consumer import ConsumerConfig, StreamConsumer
from tarn_shared.deployments import read_records
from tarn_shared.errors import SchemaError, TarnError
from tarn_shared.streams import REDIS_DOWN, read_range

from .admission import Gate
from .pending import PendingWork, pause
from .routing import Fleet
from .sync_metrics import ErrorLog

log = logging.getLogger(__name__)
NEW, CHANGED, REMOVED = "new", "changed", "removed"
NOTHING_SERVED_POLL_S = 1.0


def consumer_config(replica_id: str) -> ConsumerConfig:
    # A group per replica: every replica sees every event. "$": history comes from the replay.
    return ConsumerConfig(group=f"gateway-sync.{replica_id}", consumer=replica_id, block_ms=1000, count=500,
                          start_id="$")


def record_change(known: Optional[ev.DeploymentRecord], record: ev.DeploymentRecord,
                  only: Sequence[str]) -> Optional[str]:
    """NEW: start serving this deployment; CHANGED: its settings changed (a full reconcile
    applies them); REMOVED: stop serving it; None: not ours, or nothing new."""
    if only and record.deployment not in only:
        return None
    if record.removed:
        return REMOVED if known is not None else None
    if known is None:
        return NEW
    return CHANGED if _settings_of(known) != _settings_of(record) else None


async def replay(client, stream: str, fleet: Fleet, admit: Callable[[ev.Event], Optional[ev.Event]]) -> Fleet:
    """``fleet`` after the stream's entries from the newest snapshot's ``lifecycle_through``
    on (everything before it is in that snapshot), each as ``admit`` lets it through
    (applied to a copy, in place: the fleet given is left as it was)."""
    fleet = fleet.copy()
    start = "-"
    async with aclosing(read_range(client, stream, batch=500, newest_first=True)) as newest_first:
        async for _, fields in newest_first:
            event = _decoded(fields)
            if isinstance(event, ev.MembershipSnapshot):
                start = event.lifecycle_through or "-"
                break
    async for entry_id, fields in read_range(client, stream, start=start, batch=1000):
        event = _decoded(fields)
        event = admit(event) if event is not None else None
        if event is not None:
            fleet.apply(event, entry_id)
    return fleet


class Discovery:
    """``records`` and ``fleets`` of the served deployments; what changes goes to ``work``."""

    def __init__(self, redis, replica_id: str, work: PendingWork, errors: ErrorLog, poll_s: float,
                 gate: Gate) -> None:
        self.records: Dict[str, ev.DeploymentRecord] = {}
        self.fleets: Dict[str, Fleet] = {}
        self.consumers: Dict[str, StreamConsumer] = {}
        self._redis = redis
        self._config = consumer_config(replica_id)
        self._work = work
        self._errors = errors
        self._poll_s = poll_s
        self._gate = gate
        self._lock = asyncio.Lock()
        self._tasks: Dict[str, asyncio.Task] = {}  # by stream
        self._removed: Dict[str, float] = {}  # deployment -> ts of the record removed: older reads stay out

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the deployments stream, and read every record again each ``poll_s``."""
        stream = ev.deployments_stream()
        self._consume(stream, StreamConsumer(self._redis, [stream], self._config, self._on_record))
        try:
            while not stop.is_set():
                try:
                    for record in (await read_records(self._redis)).values():
                        await self.add(record)
                except REDIS_DOWN as exc:
                    self._errors("redis", exc)
                except TarnError as exc:
                    self._errors("deployment", exc)
                await pause(stop, self._poll_s if self.records else NOTHING_SERVED_POLL_S)
        finally:  # the consumers run until cancelled: they end with this loop
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def add(self, record: ev.DeploymentRecord) -> None:
        async with self._lock:
            if record.ts <= self._removed.get(record.deployment, float("-inf")):
                return  # read before its removal was announced
            if not record.removed and self._gate.refuses_record(record):
                return  # as if never published: a version served before stays served
            change = record_change(self.records.get(record.deployment), record, self._gate.only)
            if change == NEW:
                await self._serve(record)
            elif change == REMOVED:
                await self._forget(record)
            elif change == CHANGED:
                self.records[record.deployment] = record
            if change is not None:
                self._work.request_reconcile("deployment")

    async def on_lifecycle(self, name: str, entry_id: str, event: ev.Event) -> None:
        if getattr(event, "deployment", name) != name:
            return
        admitted = self._gate.admitted_event(name, event)
        if admitted is None:
            return
        fleet = self.fleets.setdefault(name, Fleet())
        was_authoritative = fleet.authoritative
        changed = fleet.apply(admitted, entry_id)  # in place: the work is the addresses it touched
        if changed:
            self._work.changed(name, changed, admitted.ts)
        if fleet.authoritative and not was_authoritative:
            self._work.request_reconcile("snapshot")

    async def _serve(self, record: ev.DeploymentRecord) -> None:
        name = record.deployment
        stream = ev.lifecycle_stream(name)
        consumer = StreamConsumer(self._redis, [stream], self._config,
                                  lambda s, i, e: self.on_lifecycle(name, i, e))
        await consumer.ensure_groups()  # before the replay: no entry falls between the two
        self.fleets[name] = await replay(self._redis, stream, self.fleets.get(name, Fleet()),
                                         lambda event: self._gate.admitted_event(name, event))
        self._consume(stream, consumer)
        self.records[name] = record
        log.info("serving deployment", extra={"deployment": name, "app_id": record.app_id,
                                              "zk_path": record.zk_path, "haproxy_backend": record.haproxy_backend})

    async def _forget(self, record: ev.DeploymentRecord) -> None:
        """Stop serving: the control loop cleans the places it owned (ownership.Claims)."""
        name = record.deployment
        self._removed[name] = record.ts
        stream = ev.lifecycle_stream(name)
        task = self._tasks.pop(stream, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.consumers.pop(stream, None)
        self.records.pop(name, None)
        self.fleets.pop(name, None)
        log.info("deployment removed; no longer served", extra={"deployment": name, "app_id": record.app_id})

    def _consume(self, stream: str, consumer: StreamConsumer) -> None:
        self.consumers[stream] = consumer
        self._tasks[stream] = asyncio.create_task(consumer.run(), name=f"consume-{stream}")

    async def _on_record(self, stream: str, entry_id: str, event: ev.Event) -> None:
        if isinstance(event, ev.DeploymentRecord):
            await self.add(event)


def _settings_of(record: ev.DeploymentRecord) -> dict:
    return record.model_dump(exclude={"event_id", "ts"})


def _decoded(fields) -> Optional[ev.Event]:
    try:
        return ev.decode(fields)
    except SchemaError:
        return None
