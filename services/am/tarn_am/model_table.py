"""What operators see of ``--placement per-model`` (pure): each model's copies wanted and
loaded, where (a cell per instance: its state and measured memory), its memory (measured or
declared), queue time, load time and last error; and each instance's memory. GET /api/models,
`tarn models`, the dashboard's model × instance matrix and /metrics' per-model figures read it.

A cell's state is the agent's word (its telemetry's model states); a command in flight the
agent has not reported yet shows as "load commanded" / "unload commanded"."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Literal, Mapping, Optional, Sequence, Tuple

from pydantic import BaseModel

from tarn_shared import events as ev
from tarn_shared.membership import Member

from .model_commands import LoadFailure
from .model_fleet import instance_memory, measured_footprints
from .model_round import ModelLine

ALL_MODELS_NOTE = ("this deployment loads every model on every instance (--placement all-models): copies per "
                   "model are placed only with tarn submit --placement per-model; GET /models lists the models")


class ModelCell(BaseModel):
    state: str  # loading, ready, unloading, unloaded, failed; or "load commanded" / "unload commanded"
    memory_bytes: Optional[int] = None  # what the agent measured for this copy
    memory_source: Optional[str] = None  # nvml or rss
    load_time_s: Optional[float] = None
    error: Optional[str] = None


class ModelRow(BaseModel):
    name: str
    wanted: int
    loaded: int  # copies ready
    loading: int  # copies loading, or with a load commanded
    missing: int  # copies wanted that placement found no room for this round
    instances: List[str]  # where it is loaded or loading
    cells: Dict[str, ModelCell]  # by instance id: where it is, was asked to be, or failed
    memory_bytes: int  # the footprint placement counts
    memory_source: Literal["measured", "declared"]
    queue_time_us: Optional[float] = None  # per request, over the instances serving it; None: no fresh figure
    load_time_s: Optional[float] = None  # the slowest measured load of its copies
    last_error: Optional[str] = None
    why: List[str] = []


class InstanceColumn(BaseModel):
    instance_id: str
    host: Optional[str] = None
    address: Optional[str] = None
    state: str
    capacity_bytes: Optional[int] = None  # its GPUs' memory, else the container's memory
    used_bytes: Optional[int] = None
    memory_of: Optional[Literal["gpu", "container"]] = None  # None: no telemetry yet


class ModelsView(BaseModel):
    deployment: str
    placement: str
    note: Optional[str] = None  # why there are no rows (an all-models deployment)
    instances: List[InstanceColumn] = []
    models: List[ModelRow] = []
    # Parts left out, and why: "models" while authz cannot say which the caller may list.
    unavailable: Dict[str, str] = {}


@dataclass(frozen=True)
class TableInputs:
    lines: Sequence[ModelLine]  # placement's last round (model_round)
    members: Mapping[str, Member]
    latest: Mapping[str, ev.TelemetrySample]  # each instance's latest sample, however old: what it holds
    fresh: Sequence[ev.TelemetrySample]  # recent samples: queue times
    failures: Mapping[Tuple[str, str], LoadFailure]  # (instance, model): the command book's failed loads
    container_memory_bytes: int


def model_rows(inputs: TableInputs) -> List[ModelRow]:
    measured = measured_footprints(inputs.latest.values())
    queue = queue_times(inputs.fresh)
    return [_row(line, inputs, line.name in measured, queue.get(line.name)) for line in inputs.lines]


def instance_columns(inputs: TableInputs) -> List[InstanceColumn]:
    footprints = {line.name: line.footprint_bytes for line in inputs.lines}
    out = []
    for instance_id, member in sorted(inputs.members.items()):
        if member.state is ev.InstanceState.STOPPED:
            continue
        endpoints = member.endpoints
        column = InstanceColumn(instance_id=instance_id, host=endpoints.host if endpoints else None,
                                address=endpoints.address if endpoints else None, state=member.state.value)
        sample = inputs.latest.get(instance_id)
        if sample is not None:
            memory = instance_memory(sample, column.host or "", inputs.container_memory_bytes, footprints)
            column = column.model_copy(update=dict(capacity_bytes=memory.capacity_bytes, used_bytes=memory.used_bytes,
                                                   memory_of="gpu" if sample.gpus else "container"))
        out.append(column)
    return out


def queue_times(samples: Sequence[ev.TelemetrySample]) -> Dict[str, float]:
    """Each model's queue time per request (µs), weighted by each instance's request rate
    (an idle copy does not halve a busy one's figure); a plain mean while none is served."""
    seen: Dict[str, List[Tuple[float, float]]] = {}
    for sample in samples:
        for model in sample.models:
            seen.setdefault(model.name, []).append((model.queue_time_per_request_us, model.request_rate_per_s))
    out = {}
    for name, figures in seen.items():
        rate = sum(r for _, r in figures)
        out[name] = sum(q * r for q, r in figures) / rate if rate > 0 else sum(q for q, _ in figures) / len(figures)
    return out


def _row(line: ModelLine, inputs: TableInputs, measured: bool, queue_us: Optional[float]) -> ModelRow:
    cells: Dict[str, ModelCell] = {}
    for instance_id, sample in sorted(inputs.latest.items()):
        for state in sample.model_states or ():
            if state.name == line.name and state.state is not ev.ModelLoadState.UNLOADED:
                cells[instance_id] = ModelCell(state=state.state.value, memory_bytes=state.memory_bytes,
                                               memory_source=state.memory_source, load_time_s=state.load_time_s,
                                               error=state.error)
    for kind, instance_ids in (("load", line.loading), ("unload", line.unloading)):
        for instance_id in instance_ids:
            reported = cells.get(instance_id)
            # a failed load asked again, a ready copy asked to go: the command is the news
            if reported is None or reported.state == ("failed" if kind == "load" else "ready"):
                cells[instance_id] = ModelCell(state=f"{kind} commanded")
    failed = sorted(((f.failed_at, i, f.message) for (i, m), f in inputs.failures.items() if m == line.name),
                    reverse=True)
    last_error = f"load on {failed[0][1]}: {failed[0][2]}" if failed else next(
        (f"{i}: {c.error}" for i, c in sorted(cells.items()) if c.error), None)
    states = {i: c.state for i, c in cells.items()}
    load_times = [c.load_time_s for c in cells.values() if c.load_time_s is not None]
    # per-model scaling may give the line its own (windowed) queue time: that is the figure it decides on
    line_queue = getattr(line, "queue_time_us", None)
    return ModelRow(
        name=line.name, wanted=line.wanted, loaded=sum(1 for s in states.values() if s == "ready"),
        loading=sum(1 for s in states.values() if s in ("loading", "load commanded")), missing=line.missing,
        instances=sorted(i for i, s in states.items() if s in ("ready", "loading", "load commanded")),
        cells=cells, memory_bytes=line.footprint_bytes, memory_source="measured" if measured else "declared",
        queue_time_us=line_queue if line_queue is not None else queue_us,
        load_time_s=max(load_times) if load_times else None, last_error=last_error, why=list(line.why))


def models_view(deployment: str, placement: str, inputs: Optional[TableInputs],
                listable: Optional[Mapping[str, bool]] = None,
                unavailable: Optional[Dict[str, str]] = None) -> ModelsView:
    """The whole answer; ``listable`` (authz's word per model) leaves out what the caller may not list."""
    if inputs is None:
        return ModelsView(deployment=deployment, placement=placement, note=ALL_MODELS_NOTE)
    rows = [r for r in model_rows(inputs) if listable is None or listable.get(r.name, False)]
    return ModelsView(deployment=deployment, placement=placement, instances=instance_columns(inputs), models=rows,
                      unavailable=unavailable or {})


def inputs_of(controller, now: float, max_age_s: float) -> Optional[TableInputs]:
    """The table's inputs from tarn-am's controller; None when it does not place per model."""
    placer = controller.policy.models
    if placer is None:
        return None
    view = controller.view
    return TableInputs(lines=placer.lines(), members=view.membership.members,
                       latest={i: t.sample for i, t in view.telemetry.items()},
                       fresh=view.fresh_telemetry(now, max_age_s), failures=placer.book.failures,
                       container_memory_bytes=controller.settings.container_memory_mb << 20)
