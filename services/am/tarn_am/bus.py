"""The one adapter between tarn-am and Redis: lifecycle, telemetry, commands, acks, the record.

It also keeps what tarn-am writes bounded: after each full snapshot the lifecycle stream is trimmed
as far as ``tarn_shared.retention`` allows, and a container's command stream goes when the
container ends; every COMMANDS_SWEEP_S the acks stream is trimmed too and any command stream
a container no longer live left is deleted.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Callable, Collection, List, Optional

import redis.asyncio as aioredis

from tarn_shared import events as ev
from tarn_shared.consumer import ConsumerConfig, StreamConsumer
from tarn_shared.deployments import put_record, remove_record
from tarn_shared.membership import apply_delta, apply_snapshot
from tarn_shared.streams import StreamPublisher, as_text, connect, read_range, trim_for_groups, trim_lifecycle

from .bus_health import BusHealth, bus_health
from .view import FleetView

log = logging.getLogger(__name__)
GROUP = "tarn-am"
COMMANDS_SWEEP_S = 60.0


class RedisBus:
    def __init__(self, url: str, deployment: str, app_id: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.deployment = deployment
        self.app_id = app_id
        self.client: aioredis.Redis = connect(url)
        self.publisher = StreamPublisher(self.client)
        self.consumers: List[StreamConsumer] = []
        self._consumer_name = f"{socket.gethostname()}-{os.getpid()}"
        self._last_bad_at: Optional[float] = None  # the last time health() found the bus unhealthy
        self._clock = clock
        self._next_sweep = float("-inf")  # the first snapshot sweeps: tarn-am may have been away
        self._memory_written: Optional[str] = None  # the fleet memory last written

    async def close(self) -> None:
        await self.client.aclose()

    # -- publishing ------------------------------------------------------------------
    async def publish_lifecycle(self, event: ev.Event) -> str:
        return await self.publisher.publish(ev.lifecycle_stream(self.deployment), event, retry_for_s=2.0)

    async def publish_snapshot(self, snapshot: ev.MembershipSnapshot, live: Collection[str]) -> str:
        """Publish the snapshot, then let go of what nobody needs any more; that part failing
        is logged and never fails the publish (the next snapshot tries again)."""
        entry_id = await self.publish_lifecycle(snapshot)
        try:
            await trim_lifecycle(self.client, ev.lifecycle_stream(self.deployment), snapshot.lifecycle_through)
            if self._clock() >= self._next_sweep:
                # Nothing rebuilds from acks: an unacked command is re-sent and acked again.
                await trim_for_groups(self.client, ev.acks_stream(self.deployment), None)
                await self.sweep_command_streams(live)
                self._next_sweep = self._clock() + COMMANDS_SWEEP_S
        except Exception as exc:
            log.warning("could not trim the streams", extra={"error": repr(exc), "deployment": self.deployment})
        return entry_id

    async def send_command(self, command: ev.Command) -> None:
        stream = ev.commands_stream(self.deployment, command.container_id)
        await self.publisher.publish(stream, command, maxlen=1000, retry_for_s=1.0)

    async def delete_command_streams(self, instance_ids: Collection[str]) -> None:
        """The containers ended: nobody reads their command streams any more."""
        if instance_ids:
            await self.client.delete(*(ev.commands_stream(self.deployment, i) for i in instance_ids))

    async def sweep_command_streams(self, live: Collection[str]) -> List[str]:
        """Delete the command streams of containers not ``live`` (ended while tarn-am was away,
        or when deleting them failed); returns their container ids."""
        prefix = ev.commands_stream(self.deployment, "-")[:-1]
        ended = []
        async for key in self.client.scan_iter(match=_glob_escaped(prefix) + "*", count=1000, _type="stream"):
            container_id = as_text(key)[len(prefix):]
            if ":" not in container_id and container_id not in live:  # ":dead": dead letters stay
                ended.append(container_id)
        await self.delete_command_streams(ended)
        return ended

    async def put_record(self, record: ev.DeploymentRecord) -> None:
        await put_record(self.client, record)

    # -- the target, kept beside skein's key-value store, which a new attempt loses
    def _desired_key(self) -> str:
        return f"tarn:{self.deployment}:desired"

    async def put_desired(self, count: int) -> None:
        await self.client.set(self._desired_key(), f"{self.app_id} {count}")

    async def get_desired(self) -> Optional[int]:
        raw = await self.client.get(self._desired_key())
        if not raw:
            return None
        app_id, _, count = as_text(raw).partition(" ")
        return int(count) if app_id == self.app_id and count.isdigit() else None

    # -- what operators set beside the target (target.py): a pause, a stop under way; and
    # what the reconcile decision remembers (fleet_memory.py). Both this application's only.
    def _controls_key(self) -> str:
        return f"tarn:{self.deployment}:controls"

    def _memory_key(self) -> str:
        return f"tarn:{self.deployment}:fleet-memory"

    async def put_controls(self, text: str) -> None:
        await self.client.set(self._controls_key(), f"{self.app_id} {text}")

    async def get_controls(self) -> Optional[str]:
        return await self._get_ours(self._controls_key())

    async def put_fleet_memory(self, text: str) -> None:
        """Written when it changed: most rounds change nothing."""
        if text != self._memory_written:
            await self.client.set(self._memory_key(), f"{self.app_id} {text}")
            self._memory_written = text

    async def get_fleet_memory(self) -> Optional[str]:
        return await self._get_ours(self._memory_key())

    async def _get_ours(self, key: str) -> Optional[str]:
        raw = await self.client.get(key)
        app_id, _, text = as_text(raw).partition(" ") if raw else ("", "", "")
        return text if app_id == self.app_id and text else None

    # -- operators' copies per model (model_copies_store.py), this application's only
    def _model_copies_key(self) -> str:
        return f"tarn:{self.deployment}:model-copies"

    async def put_model_copies(self, text: str) -> None:
        await self.client.set(self._model_copies_key(), f"{self.app_id} {text}")

    async def get_model_copies(self) -> Optional[str]:
        return await self._get_ours(self._model_copies_key())

    async def remove_record(self, record: ev.DeploymentRecord) -> None:
        await remove_record(self.client, record)

    # -- the dashboard's history (history.py), so a restarted tarn-am keeps its charts
    def _history_key(self) -> str:
        return f"tarn:{self.deployment}:history"

    async def put_history(self, text: str, ttl_s: int) -> None:
        await self.client.set(self._history_key(), text, ex=ttl_s)

    async def get_history(self) -> Optional[str]:
        raw = await self.client.get(self._history_key())
        return as_text(raw) if raw else None

    # -- consuming -------------------------------------------------------------------
    async def bootstrap(self, view: FleetView, now: Callable[[], float] = time.time) -> int:
        """Rebuild the membership from the lifecycle stream (a restarted tarn-am knows nothing).
        The stream is trimmed, so what went before a snapshot is known from that snapshot; the
        sequence rules make re-applying entries the group delivers later harmless."""
        count = 0
        async for entry_id, fields in read_range(self.client, ev.lifecycle_stream(self.deployment)):
            try:
                event = ev.decode(fields)
            except ev.SchemaError:
                continue  # the group's consumer dead-letters it
            if isinstance(event, ev.MembershipSnapshot):
                view.membership = apply_snapshot(view.membership, event, entry_id)
            elif isinstance(event, ev.MembershipDelta):
                view.membership = apply_delta(view.membership, event, entry_id)
            view.apply_lifecycle(entry_id, event, now())
            count += 1
        view.reindex_stopped()
        return count

    def consumers_for(self, view: FleetView, now: Callable[[], float] = time.time,
                      on_change: Optional[Callable[[], None]] = None,
                      also: Optional[Callable[[ev.Event, float], None]] = None) -> List[StreamConsumer]:
        """``also``: handed every live lifecycle event too (per-model placement's gateway demands)."""
        async def lifecycle(stream: str, entry_id: str, event: ev.Event) -> None:
            view.apply_lifecycle(entry_id, event, now())
            if also:
                also(event, now())
            if on_change:
                on_change()

        async def telemetry(stream: str, entry_id: str, event: ev.Event) -> None:
            view.apply_telemetry(event, now())

        async def acks(stream: str, entry_id: str, event: ev.Event) -> None:
            view.apply_ack(event)

        def config(**overrides) -> ConsumerConfig:
            return ConsumerConfig(group=GROUP, consumer=self._consumer_name, block_ms=500,
                                  reclaim_idle_ms=10_000, **overrides)

        self.consumers = [
            StreamConsumer(self.client, [ev.lifecycle_stream(self.deployment)], config(), lifecycle),
            # Old telemetry says nothing about now: a new group starts at the stream's end.
            StreamConsumer(self.client, [ev.telemetry_stream(self.deployment)], config(start_id="$", count=1000),
                           telemetry),
            StreamConsumer(self.client, [ev.acks_stream(self.deployment)], config(), acks),
        ]
        return self.consumers

    def health(self, now: float) -> BusHealth:
        """Our consumers' view of Redis; before they run (or with none) the bus is not healthy."""
        health = bus_health([c.health for c in self.consumers], now, self._last_bad_at)
        if not health.healthy:
            self._last_bad_at = now
        return health

    async def run_consumers(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(c.run(stop) for c in self.consumers))


def _glob_escaped(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)
