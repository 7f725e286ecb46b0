"""What the agent reports on the deployment's telemetry stream while Triton runs: a heartbeat
(the instance's state) and a telemetry sample (per-model rates, the allocated GPUs, each
readable or listed unreadable, the normalized load, computed by telemetry.py). A report Redis
refuses is counted, not retried."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import List, Optional

from tarn_shared import events as ev
from tarn_shared.errors import UnavailableError
from tarn_shared.streams import StreamPublisher

from .agent_metrics import AgentStatus
from .errors import TritonError
from .lifecycle import Lifecycle
from .model_loads import ModelLoads
from .nvml import GpuReader
from .settings import NodeAgentSettings
from .telemetry import MetricsParseError, Snapshot, model_samples, normalized_load, parse_triton_metrics
from .triton import TritonApi

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Reporter:
    settings: NodeAgentSettings
    api: TritonApi
    gpu: GpuReader
    publisher: StreamPublisher
    lifecycle: Lifecycle
    status: AgentStatus
    loads: Optional[ModelLoads] = None  # explicit model control: each model's state in every sample

    async def heartbeats(self) -> None:
        while True:
            await self._publish(self.lifecycle.heartbeat())
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def telemetry(self) -> None:
        previous: Optional[Snapshot] = None
        try:  # the baseline: requests served before the first interval are not this interval's
            previous = parse_triton_metrics(await self.api.metrics_text())
        except (TritonError, MetricsParseError):
            pass
        previous_at = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.telemetry_interval_s)
            now = time.monotonic()
            interval = max(now - previous_at, 1e-3)
            triton_up = True
            models: List[ev.ModelSample] = []
            try:
                snapshot = parse_triton_metrics(await self.api.metrics_text())
                models = model_samples(previous, snapshot, interval)
                previous, previous_at = snapshot, now
            except (TritonError, MetricsParseError) as exc:
                triton_up = False
                self.status.count_error("triton")
                log.warning("cannot read Triton's metrics", extra={"error": str(exc)})
            sample = await self._sample(interval, triton_up, models)
            await self._publish(sample.model_copy(update={"model_states": await self._model_states()}))

    async def _sample(self, interval_s: float, triton_up: bool,
                      models: List[ev.ModelSample]) -> ev.TelemetrySample:
        s = self.settings
        reading = await asyncio.to_thread(self.gpu.read)
        if reading.failed:  # a container without a GPU is not an error
            self.status.count_error("gpu")
        load = normalized_load(models, reading.gpus, target_queue_time_us=s.target_queue_time_us,
                               target_pending_requests=s.target_pending_requests,
                               target_gpu_utilization_pct=s.target_gpu_utilization_pct)
        self.status.last_load = load
        return ev.TelemetrySample(deployment=s.deployment, app_id=s.app_id, instance_id=s.container_id,
                                  interval_s=interval_s, triton_up=triton_up, load=load, models=models,
                                  gpus=reading.gpus, gpu_error=reading.error, mig_devices=reading.mig_devices or None,
                                  gpus_unreadable=reading.unreadable or None)

    async def _model_states(self) -> Optional[List[ev.ModelOnInstance]]:
        if self.loads is None:
            return None
        if self.lifecycle.state in (ev.InstanceState.DRAINING, ev.InstanceState.STOPPED):
            # Requests to Triton while it stops keep its HTTP server waiting out the exit timeout.
            return self.loads.states()
        try:
            return await self.loads.refresh()
        except TritonError as exc:
            log.warning("cannot read Triton's model index", extra={"error": str(exc)})
            return self.loads.states()

    async def _publish(self, event: ev.Event) -> None:
        try:
            await self.publisher.publish(ev.telemetry_stream(self.settings.deployment), event, maxlen=ev.TELEMETRY_MAXLEN)
        except UnavailableError:
            self.status.count_error("redis")
