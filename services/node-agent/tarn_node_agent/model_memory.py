"""What a model's load cost in memory (pure): the difference of two readings, one taken
before Triton's load call and one after it returned.

On GPUs the footprint placement counts is the memory NVML shows the load added, per
device and summed; without a readable GPU it is the growth of the Triton process group's
RSS (the python backend's stubs are processes of that group). A negative difference (the
allocator gave memory back meanwhile) counts as 0. Not measured: MIG devices (their
memory falls back to RSS), and memory other processes take on a shared GPU meanwhile
counts as the model's (the safe side for placement)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from tarn_shared import events as ev

from .gpu_devices import GpuReading


@dataclass(frozen=True)
class MemoryReading:
    rss_bytes: Optional[int]  # the Triton process group's resident memory; None: unreadable
    gpu_used_bytes: Optional[Dict[int, int]] = None  # device index -> used; None: no readable GPU


def reading(rss_bytes: Optional[int], gpus: GpuReading) -> MemoryReading:
    used = {g.index: g.memory_used_bytes for g in gpus.gpus} if gpus.gpus else None
    return MemoryReading(rss_bytes, used)


def measured(name: str, state: ev.ModelLoadState, before: MemoryReading, after: MemoryReading,
             load_time_s: Optional[float]) -> ev.ModelOnInstance:
    host = None
    if before.rss_bytes is not None and after.rss_bytes is not None:
        host = max(0, after.rss_bytes - before.rss_bytes)
    devices = None
    if before.gpu_used_bytes is not None and after.gpu_used_bytes is not None:
        common = sorted(before.gpu_used_bytes.keys() & after.gpu_used_bytes.keys())
        devices = [ev.DeviceMemory(index=i, bytes=max(0, after.gpu_used_bytes[i] - before.gpu_used_bytes[i]))
                   for i in common] or None
    if devices is not None:
        memory, source = sum(d.bytes for d in devices), "nvml"
    elif host is not None:
        memory, source = host, "rss"
    else:
        memory, source = None, None
    return ev.ModelOnInstance(name=name, state=state, memory_bytes=memory, memory_source=source,
                              host_memory_bytes=host, gpu_memory_bytes=devices, load_time_s=load_time_s)
