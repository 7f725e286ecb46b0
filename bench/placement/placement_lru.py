"""bench/placement's baseline: LRU model multiplexing per replica, in the manner of Ray Serve
(``@serve.multiplexed(max_num_models_per_replica=N)``), on the same queueing model.

- Each replica holds at most N models, evicting the least recently used to load another.
  Ray does not know a model's memory (an operator picks N so the N largest fit, or risks an
  OOM); here the eviction also frees memory until the new model fits, which favours the
  baseline: it never fails a load.
- Routing (Ray's multiplexed router): a model's requests go to the replicas that hold it,
  spread evenly over the loaded ones (a loading one takes requests only while no other copy
  is loaded); when none holds it, or every holder has ``max_ongoing`` requests in flight
  (counted per copy: every copy has its own servers in this model), the least busy replica
  that lacks it loads it, and what arrives for that copy waits for the load.
- An evicted copy's queued requests move to another copy of the model (or start a load).
- Replicas are scaled on total load, as Ray's autoscaler does: ``ceil(ongoing requests /
  target_ongoing)``, within min/max, once that has held for ``upscale_delay_s`` (up) or
  ``downscale_delay_s`` (down) (Ray's defaults, 30 s and 600 s); a drained replica takes no
  new requests and leaves when its queues are empty. No per-model target anywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

from placement_fleet import Fleet, Instance
from placement_queues import Copy
from placement_workload import SimModel, Workload


@dataclass(frozen=True)
class LruParams:
    max_models: int  # Ray's max_num_models_per_replica
    target_ongoing: float  # Ray's target_ongoing_requests per replica
    max_ongoing: float = 5.0  # Ray's max_ongoing_requests (default 5)
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    min_replicas: int = 1
    max_replicas: int = 16

    def describe(self) -> str:
        return (f"N={self.max_models} models/replica, target_ongoing={self.target_ongoing:g}, "
                f"max_ongoing={self.max_ongoing:g}, delays {self.upscale_delay_s:g}/{self.downscale_delay_s:g}s")


class Lru(Fleet):
    name = "lru"

    def __init__(self, workload: Workload, params: LruParams) -> None:
        super().__init__(workload, params.max_replicas)
        self.p = params
        self.want_since: Optional[float] = None  # when the desired count first differed, this run
        self.want_up: Optional[bool] = None
        self.carry: Dict[str, float] = {}  # requests/s of evicted copies, re-routed next step (dt = 1 s)
        self.routed: Dict[Copy, float] = {}

    def _room(self, inst: Instance, model: SimModel, now: float) -> None:
        """Evict least recently used copies until ``model`` fits by count and memory."""
        while inst.copies and (len(inst.copies) >= self.p.max_models
                               or inst.used_gib() + model.size_gib > self.w.capacity_gib + 1e-9):
            name = min(inst.copies, key=lambda n: inst.copies[n].last_used)
            evicted = inst.copies.pop(name)
            self.tally.unloads += 1
            moved = evicted.queued + self.routed.pop(evicted, 0.0)  # its backlog and this step's arrivals
            others = self.copies_of(name, False, now)
            if others:
                others[0].queued += moved
            elif moved > 0:
                self.carry[name] = self.carry.get(name, 0.0) + moved

    def _load(self, model: SimModel, now: float) -> Optional[Copy]:
        ready = [i for i in self.instances.values()
                 if i.ready_at <= now and not i.leaving and model.name not in i.copies]
        if not ready:
            return None
        inst = min(ready, key=lambda i: (sum(c.in_flight() for c in i.copies.values()), i.instance_id))
        self._room(inst, model, now)
        copy = Copy(model, now + model.load_s, last_used=now)
        inst.copies[model.name] = copy
        self.tally.loads += 1
        return copy

    def route(self, now: float, rates) -> Dict[Copy, float]:
        self.routed = routed = {}
        order = sorted(zip(self.w.models, rates), key=lambda mr: -mr[1])
        for model, rate in order:
            rate += self.carry.pop(model.name, 0.0)  # over one step (dt = 1 s)
            if rate <= 0:
                continue
            holders = self.copies_of(model.name, False, now)
            loading = [c for c in holders if not c.ready(now)]
            if not holders or (not loading and all(c.in_flight() >= self.p.max_ongoing for c in holders)):
                added = self._load(model, now)
                holders = holders + ([added] if added else [])
            if not holders:
                raise RuntimeError(f"no replica can take {model.name} at {now:.0f}s")
            serving = [c for c in holders if c.ready(now)] or holders
            for c in serving:
                routed[c] = rate / len(serving)
                c.last_used = now
        return routed

    def decide(self, now: float) -> None:
        serving = [i for i in self.instances.values() if not i.leaving]
        ongoing = sum(c.in_flight() for i in serving for c in i.copies.values())
        desired = min(self.p.max_replicas, max(self.p.min_replicas, math.ceil(ongoing / self.p.target_ongoing)))
        if desired == len(serving):
            self.want_since = self.want_up = None
            return
        up = desired > len(serving)
        if self.want_up is not up:
            self.want_since, self.want_up = now, up
        if now - self.want_since < (self.p.upscale_delay_s if up else self.p.downscale_delay_s):
            return
        if up:
            for _ in range(desired - len(serving)):
                self.start_instance(now + self.w.startup_s)
        else:
            by_load = sorted(serving, key=lambda i: (sum(c.in_flight() for c in i.copies.values()), i.instance_id))
            for inst in by_load[:len(serving) - desired]:
                inst.leaving = True
                for c in inst.copies.values():
                    c.leaving = True
        self.want_since = self.want_up = None
