"""The models this instance holds in explicit model control: loads and unloads through
Triton's repository API, one at a time so that each reading's difference belongs to one
model, each measured (memory, load time, model_memory.py); and each model's state as
Triton's repository index reports it, with what its load measured."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from tarn_shared import events as ev

from .errors import TritonError
from .model_memory import MemoryReading, measured
from .triton import TritonApi

# Triton's repository index states (model_repository_manager) -> ours.
TRITON_STATES = {"READY": ev.ModelLoadState.READY, "LOADING": ev.ModelLoadState.LOADING,
                 "UNLOADING": ev.ModelLoadState.UNLOADING, "UNAVAILABLE": ev.ModelLoadState.UNLOADED}


@dataclass(eq=False)
class ModelLoads:
    api: TritonApi
    read_memory: Callable[[], MemoryReading]  # blocking (NVML, /proc): run in a thread
    clock: Callable[[], float] = time.monotonic
    _models: Dict[str, ev.ModelOnInstance] = field(default_factory=dict, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)  # one load or unload at a time
    _busy: Optional[str] = field(default=None, init=False)  # the model being loaded or unloaded

    async def load(self, model: str, config: Optional[str] = None) -> ev.ModelOnInstance:
        """Loads ``model`` and returns its state; raises TritonError when Triton refuses
        (the model is then recorded failed, with Triton's reason)."""
        async with self._lock:
            self._busy = model
            previous = self._models.get(model)
            try:
                self._set(ev.ModelOnInstance(name=model, state=ev.ModelLoadState.LOADING))
                before = await asyncio.to_thread(self.read_memory)
                started = self.clock()
                try:
                    await self.api.load_model(model, config)
                except TritonError as exc:
                    self._set(ev.ModelOnInstance(name=model, state=ev.ModelLoadState.FAILED, error=str(exc)))
                    raise
                took_s = self.clock() - started
                after = await asyncio.to_thread(self.read_memory)
                if previous is not None and previous.state == ev.ModelLoadState.READY:
                    # a reload of a loaded model adds next to nothing: keep what its first load measured
                    return self._set(previous.model_copy(update={"load_time_s": took_s}))
                return self._set(measured(model, ev.ModelLoadState.READY, before, after, took_s))
            finally:
                self._busy = None

    async def unload(self, model: str) -> ev.ModelOnInstance:
        async with self._lock:
            self._busy = model
            try:
                await self.api.unload_model(model)
            finally:
                self._busy = None
            # Triton unloads once the model's in-flight requests are done; refresh sees when.
            known = self._models.get(model, ev.ModelOnInstance(name=model, state=ev.ModelLoadState.UNLOADING))
            return self._set(known.model_copy(update={"state": ev.ModelLoadState.UNLOADING}))

    async def refresh(self) -> List[ev.ModelOnInstance]:
        """Each model's state from Triton's index, keeping what its load measured. A model
        no longer loaded leaves the list (unless it failed: that stays, with Triton's reason)."""
        index = await self.api.model_index()
        for entry in index:
            name, state = entry.get("name"), TRITON_STATES.get(str(entry.get("state", "")))
            if not isinstance(name, str) or state is None or name == self._busy:
                continue
            known = self._models.get(name)
            if state == ev.ModelLoadState.UNLOADED:
                if known is not None and known.state in (ev.ModelLoadState.READY, ev.ModelLoadState.LOADING):
                    self._set(known.model_copy(update={"state": ev.ModelLoadState.FAILED,
                                                       "error": str(entry.get("reason") or "unavailable")}))
                elif known is not None and known.state == ev.ModelLoadState.UNLOADING:
                    del self._models[name]
                continue
            self._set((known or ev.ModelOnInstance(name=name, state=state)).model_copy(update={"state": state}))
        return self.states()

    def states(self) -> List[ev.ModelOnInstance]:
        return [self._models[name] for name in sorted(self._models)]

    def _set(self, state: ev.ModelOnInstance) -> ev.ModelOnInstance:
        self._models[state.name] = state
        return state
