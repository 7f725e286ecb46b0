"""How instances are shown: the seeds' text (``host:port`` per ready instance) and JSON. Pure."""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

from pydantic import BaseModel

from tarn_shared.events import InstanceState
from tarn_shared.membership import Member

from .container_facts import ContainerFacts
from .containers import ObservedContainer
from .view import Telemetry


class GpuView(BaseModel):
    index: int
    utilization_pct: float
    memory_used_bytes: int
    memory_total_bytes: int


class InstanceView(BaseModel):
    instance_id: str
    skein_id: Optional[str] = None
    host: Optional[str] = None
    address: Optional[str] = None  # host:port of Triton's HTTP endpoint
    url: Optional[str] = None
    container_state: Optional[str] = None
    state: str  # the instance's lifecycle state, or the container's while no agent spoke
    ready: bool
    draining: bool = False
    seq: Optional[int] = None
    models: List[str] = []
    load: Optional[float] = None
    gpus: Optional[List[GpuView]] = None
    gpu_error: Optional[str] = None
    started_at: Optional[float] = None  # the container's start (skein), epoch seconds
    uptime_s: Optional[float] = None
    restarts: Optional[int] = None  # failed containers of the same node's slot before this one
    logs_url: Optional[str] = None  # the container's logs on its NodeManager


def instance_views(containers: Sequence[ObservedContainer], members: Mapping[str, Member],
                   telemetry: Mapping[str, Telemetry], draining: frozenset,
                   allowed_model: Optional[callable] = None,
                   facts: Mapping[str, ContainerFacts] = {}) -> List[InstanceView]:
    """One row per active container (with what its agent said), plus agent-known instances
    that skein does not list (yet); stopped ones are left out."""
    rows: Dict[str, InstanceView] = {}
    for container in containers:
        if not container.active:
            continue
        member = members.get(container.instance_id)
        rows[container.instance_id] = _row(container.instance_id, container, member,
                                           telemetry.get(container.instance_id), draining, allowed_model,
                                           facts.get(container.instance_id))
    for instance_id, member in members.items():
        if instance_id in rows or member.state is InstanceState.STOPPED:
            continue
        rows[instance_id] = _row(instance_id, None, member, telemetry.get(instance_id), draining, allowed_model)
    return sorted(rows.values(), key=lambda r: (r.host or "", r.instance_id))


def _row(instance_id: str, container: Optional[ObservedContainer], member: Optional[Member],
         telemetry: Optional[Telemetry], draining: frozenset, allowed_model,
         facts: Optional[ContainerFacts] = None) -> InstanceView:
    endpoints = member.endpoints if member else None
    sample = telemetry.sample if telemetry else None
    models = list(member.models) if member else []
    if allowed_model is not None:
        models = [m for m in models if allowed_model(m)]
    state = member.state.value if member else (container.state if container else "unknown")
    return InstanceView(
        instance_id=instance_id,
        skein_id=container.skein_id if container else None,
        host=(endpoints.host if endpoints else None) or (container.host if container else None) or None,
        address=endpoints.address if endpoints else None,
        url=f"http://{endpoints.address}" if endpoints else None,
        container_state=container.state if container else None,
        state=state,
        ready=bool(member and member.routable and instance_id not in draining),
        draining=instance_id in draining or (member is not None and member.state in (
            InstanceState.DRAINING, InstanceState.UNROUTED)),
        seq=member.seq if member else None,
        models=models,
        load=sample.load if sample else None,
        gpus=[GpuView(index=g.index, utilization_pct=g.utilization_pct, memory_used_bytes=g.memory_used_bytes,
                      memory_total_bytes=g.memory_total_bytes) for g in sample.gpus]
        if sample and sample.gpus is not None else None,
        gpu_error=sample.gpu_error if sample else None,
        started_at=facts.started_at if facts else None,
        uptime_s=facts.uptime_s if facts else None,
        restarts=facts.restarts if facts else None,
        logs_url=facts.logs_url if facts else None,
    )


def instances_text(rows: Sequence[InstanceView]) -> str:
    """The seeds' format: one ``host:port`` line per ready instance, nothing else."""
    lines = sorted({r.address for r in rows if r.ready and r.address})
    return "".join(f"{line}\n" for line in lines)


def wants_json(accept: Optional[str]) -> bool:
    """JSON only when asked for it: the seeds' updater script sends no Accept header."""
    if not accept:
        return False
    best_json = best_text = -1.0
    for part in accept.split(","):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media in ("application/json", "application/*"):
            best_json = max(best_json, q)
        elif media in ("text/plain", "text/*", "*/*"):
            best_text = max(best_text, q)
    return best_json > 0 and best_json >= best_text
