"""Plain GPU data and the pure aggregation of one reading.

nvml.py turns NVML into these values and nothing else: what the node shows (``DeviceInfo``,
read once when the GPUs are chosen), what was chosen (``Target``, gpu_allocation.py decides),
and what one device read gave this interval (``DeviceReading``). ``aggregate`` builds the
telemetry from the readings: a device that failed is listed as unreadable with its reason and
the others are still reported; the reading as a whole fails only when no device could be read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from tarn_shared.events import GpuSample, GpuUnreadable, MigDeviceSample


@dataclass(frozen=True)
class MigInfo:
    """A MIG device (one compute instance of a GPU instance) of a MIG-enabled GPU."""

    index: int  # NVML's MIG device index under its GPU
    uuid: str  # MIG-<uuid>
    gpu_instance_id: Optional[int] = None
    compute_instance_id: Optional[int] = None


@dataclass(frozen=True)
class DeviceInfo:
    """A GPU as NVML shows it to this process. ``mig`` is None with MIG off, a tuple (maybe
    empty) with MIG on. ``denied``: NVML_ERROR_NO_PERMISSION, the device cgroup keeps it from
    this container; ``error``: it could not be opened for another reason."""

    index: int
    uuid: Optional[str] = None
    name: Optional[str] = None
    mig: Optional[Tuple[MigInfo, ...]] = None
    denied: bool = False
    error: Optional[str] = None

    @property
    def usable(self) -> bool:
        return not self.denied and self.error is None


@dataclass(frozen=True)
class Target:
    """One device whose telemetry is read: a whole GPU, or one MIG device of a GPU."""

    gpu_index: int
    gpu_uuid: Optional[str] = None
    name: Optional[str] = None
    mig_index: Optional[int] = None
    mig_uuid: Optional[str] = None
    error: Optional[str] = None  # known unreadable when chosen (e.g. MIG on, no MIG device)

    @property
    def is_mig(self) -> bool:
        return self.mig_index is not None

    @property
    def uuid(self) -> Optional[str]:
        return self.mig_uuid if self.is_mig else self.gpu_uuid

    @property
    def label(self) -> str:
        return f"{self.gpu_index}:{self.mig_index}" if self.is_mig else str(self.gpu_index)


@dataclass(frozen=True)
class DeviceReading:
    """What one target gave: memory (and, for a whole GPU, utilization), or the error."""

    target: Target
    utilization_pct: Optional[float] = None
    memory_used_bytes: Optional[int] = None
    memory_total_bytes: Optional[int] = None
    error: Optional[str] = None


@dataclass(frozen=True)
class GpuReading:
    """One reading of the allocated GPUs. ``gpus`` is None when nothing could be read
    (``error`` says why); ``gpus`` may be empty while MIG devices were read."""

    gpus: Optional[List[GpuSample]] = None
    mig_devices: List[MigDeviceSample] = field(default_factory=list)
    unreadable: List[GpuUnreadable] = field(default_factory=list)
    error: Optional[str] = None
    none_allocated: bool = False  # the container has no GPU: not a failure
    failures_total: Dict[str, int] = field(default_factory=dict)  # device label -> failed reads so far

    @property
    def available(self) -> bool:
        return bool(self.gpus) or bool(self.mig_devices)

    @property
    def failed(self) -> bool:
        """Whether this reading counts as a telemetry error."""
        return bool(self.unreadable) or (self.error is not None and not self.none_allocated)


def unavailable(reason: str, *, none_allocated: bool = False) -> GpuReading:
    return GpuReading(error=reason, none_allocated=none_allocated)


def aggregate(readings: Sequence[DeviceReading], failures_total: Optional[Dict[str, int]] = None) -> GpuReading:
    gpus: List[GpuSample] = []
    migs: List[MigDeviceSample] = []
    unreadable: List[GpuUnreadable] = []
    for reading in readings:
        t = reading.target
        error = reading.error or t.error or _incomplete(reading)
        if error:
            unreadable.append(GpuUnreadable(index=t.gpu_index, mig_index=t.mig_index, uuid=t.uuid, error=error))
        elif t.is_mig:
            migs.append(MigDeviceSample(gpu_index=t.gpu_index, mig_index=t.mig_index, uuid=t.mig_uuid,
                                        gpu_uuid=t.gpu_uuid, memory_used_bytes=reading.memory_used_bytes,
                                        memory_total_bytes=reading.memory_total_bytes))
        else:
            gpus.append(GpuSample(index=t.gpu_index, uuid=t.gpu_uuid, name=t.name,
                                  utilization_pct=min(max(reading.utilization_pct, 0.0), 100.0),
                                  memory_used_bytes=reading.memory_used_bytes,
                                  memory_total_bytes=reading.memory_total_bytes))
    counts = dict(failures_total or {})
    if not readings:
        return GpuReading(error="no GPU allocated to this container", none_allocated=True, failures_total=counts)
    if not gpus and not migs:
        reasons = "; ".join(f"{u.index if u.mig_index is None else f'{u.index}:{u.mig_index}'}: {u.error}"
                            for u in unreadable)
        return GpuReading(unreadable=unreadable, error=f"no allocated GPU could be read ({reasons})",
                          failures_total=counts)
    return GpuReading(gpus=gpus, mig_devices=migs, unreadable=unreadable, failures_total=counts)


def _incomplete(reading: DeviceReading) -> Optional[str]:
    if reading.memory_used_bytes is None or reading.memory_total_bytes is None:
        return "no memory reading"
    if not reading.target.is_mig and reading.utilization_pct is None:
        return "no utilization reading"
    return None
