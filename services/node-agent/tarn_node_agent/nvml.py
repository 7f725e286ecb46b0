"""The one adapter to the GPUs: NVML through nvidia-ml-py (pynvml).

Without a GPU or a driver, NVML raises NVMLError: that is reported as unavailable with its
reason, never as zeros.
"""
from __future__ import annotations

import logging
import threading
from typing import List, Optional, Tuple

from tarn_shared.events import GpuSample
from tarn_shared.streams import as_text

log = logging.getLogger(__name__)


class GpuReader:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._initialized = False
        self._init_error: Optional[str] = None

    def _ensure_init(self, pynvml) -> None:
        if not self._initialized:
            pynvml.nvmlInit()
            self._initialized = True

    def read(self) -> Tuple[Optional[List[GpuSample]], Optional[str]]:
        """(samples, None), or (None, why the GPUs cannot be read)."""
        try:
            import pynvml
        except ImportError as exc:  # nvidia-ml-py missing from the image
            return None, f"pynvml not importable: {exc}"
        with self._lock:
            try:
                self._ensure_init(pynvml)
                samples = []
                for index in range(pynvml.nvmlDeviceGetCount()):
                    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                    utilization = pynvml.nvmlDeviceGetUtilizationRates(handle)
                    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
                    samples.append(GpuSample(
                        index=index, uuid=as_text(pynvml.nvmlDeviceGetUUID(handle)),
                        name=as_text(pynvml.nvmlDeviceGetName(handle)),
                        utilization_pct=float(utilization.gpu),
                        memory_used_bytes=int(memory.used), memory_total_bytes=int(memory.total),
                    ))
            except pynvml.NVMLError as exc:
                self._initialized = False
                return None, f"NVML unavailable: {exc}"
        if not samples:
            return None, "NVML reports no GPU"
        return samples, None

    def close(self) -> None:
        with self._lock:
            if self._initialized:
                try:
                    import pynvml

                    pynvml.nvmlShutdown()
                except Exception:  # noqa: BLE001 - shutting down anyway
                    pass
                self._initialized = False
