"""/metrics as a collector: read tarn-am's view on every scrape (prometheus_client's
process_collector shape). Names: the seeds' five, plus request and queue figures, and in
--placement per-model each model's copies by state and queue time (model_table.py's figures,
as GET /api/models shows them)."""
from __future__ import annotations

import time
from collections import Counter
from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .model_table import inputs_of, model_rows

TELEMETRY_MAX_AGE_S = 15.0


class FleetCollector(Collector):
    def __init__(self, controller, clock: Callable[[], float] = time.time) -> None:
        self._controller = controller
        self._clock = clock

    def collect(self) -> Iterable:
        c = self._controller
        now = self._clock()
        deployment = c.settings.deployment
        labels = ["deployment"]

        target = GaugeMetricFamily("tarn_target_containers", "Target number of Triton containers", labels=labels)
        target.add_metric([deployment], c.desired)
        yield target
        running = GaugeMetricFamily("tarn_running_containers", "Triton containers YARN reports running",
                                    labels=labels)
        running.add_metric([deployment], c.running_count())
        yield running
        ready = GaugeMetricFamily("tarn_ready_instances", "Instances ready and routable", labels=labels)
        ready.add_metric([deployment], len(c.view.membership.routable()))
        yield ready
        blocked = GaugeMetricFamily("tarn_blocked_containers",
                                    "Instances wanted but not placeable (anti-affinity, backoff, crash loop)",
                                    labels=labels)
        blocked.add_metric([deployment], c.decision.blocked.count if c.decision and c.decision.blocked else 0)
        yield blocked
        restarts = CounterMetricFamily("tarn_container_restarts", "Containers started to replace failed ones",
                                       labels=labels)
        restarts.add_metric([deployment], c.state.restarts)
        yield restarts

        samples = c.view.fresh_telemetry(now, TELEMETRY_MAX_AGE_S)
        load = GaugeMetricFamily("tarn_container_load", "Normalized load per container (1.0 = at target queue time)",
                                 labels=labels + ["container_id", "host"])
        gpu_util = GaugeMetricFamily("tarn_gpu_utilization", "GPU utilization in percent",
                                     labels=labels + ["container_id", "host", "gpu"])
        gpu_mem = GaugeMetricFamily("tarn_gpu_memory_used", "GPU memory used in bytes",
                                    labels=labels + ["container_id", "host", "gpu"])
        gpu_unreadable = GaugeMetricFamily("tarn_gpu_unreadable", "1 when the container's GPUs could not be read",
                                           labels=labels + ["container_id", "host"])
        requests = GaugeMetricFamily("tarn_request_rate_per_second", "Inference requests per second",
                                     labels=labels + ["model"])
        failures = GaugeMetricFamily("tarn_request_failure_rate_per_second", "Failed inference requests per second",
                                     labels=labels + ["model"])
        queue = GaugeMetricFamily("tarn_queue_time_per_request_seconds",
                                  "Mean queue time per request across instances", labels=labels + ["model"])
        pending = GaugeMetricFamily("tarn_pending_requests", "Requests pending in Triton's queues",
                                    labels=labels + ["model"])
        per_model = {}
        for sample in samples:
            host = self._host_of(sample.instance_id)
            load.add_metric([deployment, sample.instance_id, host], sample.load)
            if sample.gpus is None:
                gpu_unreadable.add_metric([deployment, sample.instance_id, host], 1)
            else:
                gpu_unreadable.add_metric([deployment, sample.instance_id, host], 0)
                for gpu in sample.gpus:
                    gpu_util.add_metric([deployment, sample.instance_id, host, str(gpu.index)], gpu.utilization_pct)
                    gpu_mem.add_metric([deployment, sample.instance_id, host, str(gpu.index)], gpu.memory_used_bytes)
            for model in sample.models:
                agg = per_model.setdefault(model.name, [0.0, 0.0, 0.0, 0.0, 0])
                agg[0] += model.request_rate_per_s
                agg[1] += model.failure_rate_per_s
                agg[2] += model.queue_time_per_request_us
                agg[3] += model.pending_requests
                agg[4] += 1
        for name, (rate, failed, queue_us, pend, n) in sorted(per_model.items()):
            requests.add_metric([deployment, name], rate)
            failures.add_metric([deployment, name], failed)
            queue.add_metric([deployment, name], queue_us / n / 1e6)
            pending.add_metric([deployment, name], pend)
        yield from (load, gpu_util, gpu_mem, gpu_unreadable, requests, failures, queue, pending)
        yield from self._per_model(deployment, now)

        phase = GaugeMetricFamily("tarn_am_loop_phase_seconds", "Duration of the control loop's last phases",
                                  labels=["phase"])
        for name, seconds in sorted(c.stats.phase_seconds.items()):
            phase.add_metric([name], seconds)
        yield phase
        errors = CounterMetricFamily("tarn_am_loop_phase_errors", "Control loop phases that failed", labels=["phase"])
        # Zero for every phase that ran, so rate() and increase() see the first error too.
        for name in sorted(set(c.stats.phase_seconds) | set(c.stats.phase_errors)):
            errors.add_metric([name], c.stats.phase_errors.get(name, 0))
        yield errors

    def _per_model(self, deployment: str, now: float) -> Iterable:
        inputs = inputs_of(self._controller, now, TELEMETRY_MAX_AGE_S)
        if inputs is None:  # every model everywhere: tarn_request_rate_per_second & co. say it all
            return
        copies = GaugeMetricFamily("tarn_model_copies", "Copies of a model by state: wanted, ready, loading, "
                                   "unloading, failed, missing (wanted but no room)",
                                   labels=["deployment", "model", "state"])
        # In seconds, not the _us: promtool rejects abbreviated and non-base units.
        queue = GaugeMetricFamily("tarn_model_queue_time_seconds", "A model's queue time per request over "
                                  "the instances serving it, weighted by their request rates",
                                  labels=["deployment", "model"])
        for row in model_rows(inputs):
            states = Counter(cell.state for cell in row.cells.values())
            for state, count in (("wanted", row.wanted), ("ready", row.loaded), ("loading", row.loading),
                                 ("unloading", states["unloading"] + states["unload commanded"]),
                                 ("failed", states["failed"]), ("missing", row.missing)):
                copies.add_metric([deployment, row.name, state], count)
            if row.queue_time_us is not None:
                queue.add_metric([deployment, row.name], row.queue_time_us / 1e6)
        yield copies
        yield queue

    def _host_of(self, instance_id: str) -> str:
        member = self._controller.view.membership.members.get(instance_id)
        if member is not None and member.endpoints is not None:
            return member.endpoints.host
        container = self._controller.container_for(instance_id)
        return container.host if container is not None else ""
