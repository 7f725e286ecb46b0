"""The one adapter to the GPUs: NVML through nvidia-ml-py (pynvml), turned into plain values.

``select`` reads what NVML shows (each GPU, its MIG devices, the GPUs the devices cgroup
denies) and lets gpu_allocation.py decide which are this container's; ``read`` then reads
those alone, each device on its own, and gpu_devices.aggregate builds the reading. Without a
GPU or a driver NVML raises NVMLError: reported as unavailable with its reason, never as zeros.
"""
from __future__ import annotations

import logging
import threading
from typing import Dict, List, Mapping, Optional, Tuple

from tarn_shared.streams import as_text

from . import gpu_allocation
from .gpu_devices import DeviceInfo, DeviceReading, GpuReading, MigInfo, Target, aggregate, unavailable

log = logging.getLogger(__name__)


class GpuReader:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._initialized = False
        self._selection: Optional[gpu_allocation.Selection] = None
        self._handles: Dict[str, object] = {}
        self._failures: Dict[str, int] = {}

    @property
    def selection(self) -> Optional[gpu_allocation.Selection]:
        return self._selection

    def _ensure_init(self, pynvml) -> None:
        if not self._initialized:
            pynvml.nvmlInit()
            self._initialized = True
            self._handles.clear()

    def inventory(self) -> Tuple[Optional[List[DeviceInfo]], Optional[str]]:
        """(every GPU NVML shows, None), or (None, why NVML cannot be read)."""
        try:
            import pynvml
        except ImportError as exc:  # nvidia-ml-py missing from the image
            return None, f"pynvml not importable: {exc}"
        with self._lock:
            try:
                self._ensure_init(pynvml)
                return [_device_info(pynvml, index) for index in range(pynvml.nvmlDeviceGetCount())], None
            except pynvml.NVMLError as exc:
                self._initialized = False
                return None, f"NVML unavailable: {exc}"

    def select(self, environ: Mapping[str, str]) -> gpu_allocation.Selection:
        """Chooses this container's GPUs from ``environ`` (Triton's environment); later reads
        read only those. Raises ConfigError when the environment names GPUs that cannot be."""
        inventory, reason = self.inventory()
        selection = gpu_allocation.select(environ, inventory, reason)
        with self._lock:
            self._selection = selection
        return selection

    def read(self) -> GpuReading:
        try:
            import pynvml
        except ImportError as exc:
            return unavailable(f"pynvml not importable: {exc}")
        with self._lock:
            try:
                self._ensure_init(pynvml)
                targets = self._targets(pynvml)
            except pynvml.NVMLError as exc:
                self._initialized = False
                return unavailable(f"NVML unavailable: {exc}")
            if isinstance(targets, GpuReading):
                return targets
            readings = [self._read_one(pynvml, target) for target in targets]
            for reading in readings:
                if reading.error or reading.target.error:
                    self._failures[reading.target.label] = self._failures.get(reading.target.label, 0) + 1
            if readings and all(r.error for r in readings):
                self._initialized = False  # start NVML afresh next time (a driver reload, a lost GPU)
            return aggregate(readings, self._failures)

    def _targets(self, pynvml):
        selection = self._selection
        if selection is None:  # not chosen yet: every GPU this process may open
            devices = [_device_info(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())]
            if not devices:
                return unavailable("NVML reports no GPU")
            return [t for d in devices if not d.denied for t in gpu_allocation.expand(d)]
        if selection.targets is None:
            return unavailable(f"GPUs not verified when Triton started ({selection.reason})")
        return selection.targets

    def _read_one(self, pynvml, target: Target) -> DeviceReading:
        if target.error:
            return DeviceReading(target, error=target.error)
        try:
            handle = self._handle(pynvml, target)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            # NVML has no utilization for a MIG device (nor for its GPU in MIG mode).
            utilization = None if target.is_mig else float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            return DeviceReading(target, utilization, int(memory.used), int(memory.total))
        except pynvml.NVMLError as exc:
            self._handles.pop(target.label, None)
            return DeviceReading(target, error=f"NVML: {exc}")
        except ValueError as exc:
            return DeviceReading(target, error=str(exc))

    def _handle(self, pynvml, target: Target):
        """The target's handle by its index in this process's view, checked against its UUID."""
        handle = self._handles.get(target.label)
        if handle is not None:
            return handle
        handle = pynvml.nvmlDeviceGetHandleByIndex(target.gpu_index)
        if target.is_mig:
            handle = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, target.mig_index)
        if target.uuid is not None:
            now = as_text(pynvml.nvmlDeviceGetUUID(handle))
            if now.lower() != target.uuid.lower():
                raise ValueError(f"device {target.label} is now {now}, not {target.uuid}")
        self._handles[target.label] = handle
        return handle

    def close(self) -> None:
        with self._lock:
            if self._initialized:
                try:
                    import pynvml

                    pynvml.nvmlShutdown()
                except Exception:  # noqa: BLE001 - shutting down anyway
                    pass
                self._initialized = False


def _device_info(pynvml, index: int) -> DeviceInfo:
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        uuid = as_text(pynvml.nvmlDeviceGetUUID(handle))
        name = as_text(pynvml.nvmlDeviceGetName(handle))
        return DeviceInfo(index=index, uuid=uuid, name=name, mig=_mig_devices(pynvml, handle))
    except pynvml.NVMLError as exc:
        if getattr(exc, "value", None) == pynvml.NVML_ERROR_NO_PERMISSION:
            return DeviceInfo(index=index, denied=True)  # the devices cgroup: another container's
        return DeviceInfo(index=index, error=f"NVML: {exc}")


def _mig_devices(pynvml, handle) -> Optional[Tuple[MigInfo, ...]]:
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except pynvml.NVMLError:  # NOT_SUPPORTED: a GPU without MIG
        return None
    if current != pynvml.NVML_DEVICE_MIG_ENABLE:
        return None
    found = []
    for mig_index in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, mig_index)
        except pynvml.NVMLError:  # NOT_FOUND: an empty slot
            continue
        found.append(MigInfo(index=mig_index, uuid=as_text(pynvml.nvmlDeviceGetUUID(mig)),
                             gpu_instance_id=_optional(pynvml, pynvml.nvmlDeviceGetGpuInstanceId, mig),
                             compute_instance_id=_optional(pynvml, pynvml.nvmlDeviceGetComputeInstanceId, mig)))
    return tuple(found)


def _optional(pynvml, getter, handle) -> Optional[int]:
    try:
        return int(getter(handle))
    except pynvml.NVMLError:
        return None
