"""The agent's own /metrics, as collectors that read their sources on every scrape."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, Optional

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from tarn_shared import events as ev

from .gpu_devices import GpuReading
from .nvml import GpuReader
from .staging import StagingProgress


def _not_started() -> ev.InstanceState:
    return ev.InstanceState.STARTING


@dataclass
class AgentStatus:
    """What the agent's loops report; read by the collectors and /healthz. The instance's
    state is read from its lifecycle (``instance_state``), never kept a second time here."""

    instance_state: Callable[[], ev.InstanceState] = _not_started
    start_failed: bool = False  # stopped before Triton ran: /healthz says "failed", not "stopped"
    triton_up: bool = False
    staging: StagingProgress = field(default_factory=StagingProgress)
    telemetry_errors: Dict[str, int] = field(default_factory=dict)
    last_load: Optional[float] = None
    commands_handled: int = 0
    model_unloads: Dict[str, int] = field(default_factory=dict)  # by how the wait ended (model_unload.py)

    @property
    def state(self) -> str:
        return "failed" if self.start_failed else self.instance_state().value

    def count_error(self, source: str) -> None:
        self.telemetry_errors[source] = self.telemetry_errors.get(source, 0) + 1


class AgentCollector(Collector):
    def __init__(self, status: AgentStatus) -> None:
        self._status = status

    def collect(self) -> Iterator:
        s = self._status
        p = s.staging
        progress = GaugeMetricFamily("tarn_node_agent_staging_bytes", "Model repository bytes staged",
                                     labels=["kind"])
        progress.add_metric(["done"], p.bytes_done)
        progress.add_metric(["total"], p.bytes_total)
        yield progress
        files = GaugeMetricFamily("tarn_node_agent_staging_files", "Model repository files staged", labels=["kind"])
        files.add_metric(["done"], p.files_done)
        files.add_metric(["total"], p.files_total)
        yield files
        if p.duration_s is not None:
            yield GaugeMetricFamily("tarn_node_agent_staging_duration_seconds",
                                    "Duration of the last staging", value=p.duration_s)
        yield GaugeMetricFamily("tarn_node_agent_staging_unchanged",
                                "1 when the last staging found the repository unchanged",
                                value=1.0 if p.skipped_unchanged else 0.0)
        yield GaugeMetricFamily("tarn_node_agent_triton_up", "1 while tritonserver answers ready",
                                value=1.0 if s.triton_up else 0.0)
        errors = CounterMetricFamily("tarn_node_agent_telemetry_errors", "Telemetry collection errors",
                                     labels=["source"])
        for source in ("triton", "gpu", "redis"):
            errors.add_metric([source], s.telemetry_errors.get(source, 0))
        yield errors
        yield CounterMetricFamily("tarn_node_agent_commands", "Commands handled", value=s.commands_handled)
        unloads = CounterMetricFamily("tarn_node_agent_model_unloads", "Model unloads by how their wait ended",
                                      labels=["outcome"])
        for outcome, count in sorted(s.model_unloads.items()):
            unloads.add_metric([outcome], count)
        yield unloads
        if s.last_load is not None:
            yield GaugeMetricFamily("tarn_node_agent_load", "Normalized load (1.0 = at target)", value=s.last_load)


class GpuCollector(Collector):
    """The allocated GPUs at scrape time. Unreadable GPUs are listed as such, never as zeros;
    tarn_node_agent_gpu_available is 0 when no allocated GPU could be read."""

    def __init__(self, read: Callable = None) -> None:
        self._read = read or GpuReader().read

    def collect(self) -> Iterator:
        reading: GpuReading = self._read()
        yield GaugeMetricFamily("tarn_node_agent_gpu_available", "1 when NVML could read an allocated GPU",
                                value=1.0 if reading.available else 0.0)
        devices = GaugeMetricFamily("tarn_node_agent_gpu_devices", "Allocated devices by how they were read",
                                    labels=["kind"])
        devices.add_metric(["gpu"], len(reading.gpus or ()))
        devices.add_metric(["mig"], len(reading.mig_devices))
        devices.add_metric(["unreadable"], len(reading.unreadable))
        yield devices
        failures = CounterMetricFamily("tarn_node_agent_gpu_read_failures", "Failed reads of one allocated device",
                                       labels=["gpu"])
        for label, count in sorted(reading.failures_total.items()):
            failures.add_metric([label], count)
        yield failures
        unreadable = GaugeMetricFamily("tarn_node_agent_gpu_unreadable", "1 for an allocated device NVML could "
                                       "not read", labels=["gpu"])
        for device in reading.unreadable:
            unreadable.add_metric([str(device.index) if device.mig_index is None
                                   else f"{device.index}:{device.mig_index}"], 1.0)
        yield unreadable
        util = GaugeMetricFamily("tarn_node_agent_gpu_utilization_percent", "GPU utilization", labels=["gpu"])
        used = GaugeMetricFamily("tarn_node_agent_gpu_memory_used_bytes", "GPU memory used (a MIG device's: "
                                 "gpu is <gpu>:<mig>)", labels=["gpu"])
        total = GaugeMetricFamily("tarn_node_agent_gpu_memory_total_bytes", "GPU memory", labels=["gpu"])
        for gpu in reading.gpus or ():
            util.add_metric([str(gpu.index)], gpu.utilization_pct)
            used.add_metric([str(gpu.index)], gpu.memory_used_bytes)
            total.add_metric([str(gpu.index)], gpu.memory_total_bytes)
        for mig in reading.mig_devices:
            used.add_metric([f"{mig.gpu_index}:{mig.mig_index}"], mig.memory_used_bytes)
            total.add_metric([f"{mig.gpu_index}:{mig.mig_index}"], mig.memory_total_bytes)
        yield util
        yield used
        yield total


def build_registry(status: AgentStatus, gpu_read: Callable = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(status))
    registry.register(GpuCollector(gpu_read))
    return registry
