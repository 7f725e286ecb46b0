"""model_placement's inputs from what tarn-am knows (pure): the agents' telemetry (each
model's state and measured memory, the GPUs' memory) and the deployment's ModelPlan.

- A model's footprint is the largest memory any agent measured for it (a load on a busier
  GPU may measure more; the larger is the safe one), its declared memory until measured.
- An instance's capacity and use: its GPUs' total and used memory where NVML reads them
  (what CUDA contexts and other processes hold is counted); without a readable GPU, the
  container's memory against the footprints of the models it holds.
- A model loading, ready or unloading holds memory; only loading and ready ones count as
  copies (an unloading copy is on its way out).

Not known here yet: which node caches which model's files (``cached`` stays empty until
the agents report their node cache).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional

from tarn_shared import events as ev

from .model_copies import ModelPlan
from .model_placement import InstanceMemory, ModelDemand, desired_copies, footprint_bytes

COPIES = (ev.ModelLoadState.LOADING, ev.ModelLoadState.READY)
HOLDING = COPIES + (ev.ModelLoadState.UNLOADING,)


def measured_footprints(samples: Iterable[ev.TelemetrySample]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for sample in samples:
        for model in sample.model_states or ():
            if model.memory_bytes is not None and model.memory_bytes > 0:
                out[model.name] = max(out.get(model.name, 0), model.memory_bytes)
    return out


def instance_memory(sample: ev.TelemetrySample, node: str, container_memory_bytes: int,
                    footprints: Mapping[str, int]) -> InstanceMemory:
    states = [m for m in sample.model_states or () if m.state in HOLDING]
    held = {m.name: m.memory_bytes if m.memory_bytes is not None else footprints.get(m.name, 0) for m in states}
    if sample.gpus:
        capacity = sum(g.memory_total_bytes for g in sample.gpus)
        used = sum(g.memory_used_bytes for g in sample.gpus)
    else:
        capacity, used = container_memory_bytes, sum(held.values())
    return InstanceMemory(sample.instance_id, node, capacity, used,
                          frozenset(m.name for m in states if m.state in COPIES), frozenset(), held,
                          frozenset(m.name for m in states if m.state is ev.ModelLoadState.LOADING))


def model_demands(plan: ModelPlan, repository_models: Iterable[str], wanted: Mapping[str, int],
                  measured: Mapping[str, int]) -> List[ModelDemand]:
    """Each deployed model's desired copies (``wanted``, e.g. from per-model scaling,
    held within its min/max; its min without a word) and footprint."""
    names = sorted(plan.models) if plan.default is None else sorted(set(plan.models) | set(repository_models))
    out = []
    for name in names:
        target = plan.target_for(name)
        if target is None:
            continue
        copies = desired_copies(wanted.get(name, target.min_copies), target.min_copies, target.max_copies)
        out.append(ModelDemand(name, footprint_bytes(target.memory_bytes, measured.get(name)), copies))
    return out


def instances_from(samples: Iterable[ev.TelemetrySample], node_of: Mapping[str, str],
                    container_memory_bytes: int, footprints: Optional[Mapping[str, int]] = None) -> List[InstanceMemory]:
    """The instances with a sample and a known node (ready members), in id order."""
    samples = [s for s in samples if s.instance_id in node_of]
    footprints = measured_footprints(samples) if footprints is None else footprints
    return [instance_memory(s, node_of[s.instance_id], container_memory_bytes, footprints)
            for s in sorted(samples, key=lambda s: s.instance_id)]
