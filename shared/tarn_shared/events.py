"""Every event that crosses a Redis stream, typed, in one module.

Wire format: one stream entry field, ``event``, holding the event as JSON with its
``type`` and ``schema_version`` ("MAJOR.MINOR"). Within a major version, consumers
ignore fields they do not know, so a newer producer never breaks an older consumer;
an unknown major version is a SchemaError that the streams client dead-letters.
Changes to this module are additive only: new optional fields, new event types.

Streams are keyed by the deployment's stable name (``--name``), so a resubmitted
application keeps them:

==============================  ====================================================
``tarn:deployments`` (hash)     deployment name -> DeploymentRecord JSON
``tarn:deployments:events``     DeploymentRecord published on every change
``tarn:<name>:lifecycle``       container and instance events, MembershipSnapshot, MembershipDelta
``tarn:<name>:telemetry``       TelemetrySample, InstanceHeartbeat (trimmed)
``tarn:<name>:commands:<cid>``  commands addressed to one container
``tarn:<name>:acks``            CommandAck from the node-agents
``tarn:audit``                  AuditDecision
``<stream>:dead``               entries that could not be decoded or handled
==============================  ====================================================

Sequence rules (see ``tarn_shared.membership``): every instance event carries ``seq``,
a number the instance's node-agent increases with each lifecycle event it emits. A
consumer never lets an older ``seq`` overwrite a newer one, so a stale snapshot cannot
bring back an instance seen draining or stopped later. The AM publishes a
MembershipDelta on every change and a full MembershipSnapshot every
``FULL_SNAPSHOT_INTERVAL_S`` (and whenever a delta would be no smaller), so what a change
costs does not grow with the fleet.
"""
from __future__ import annotations

import json
import time
import uuid
from enum import Enum
from typing import Annotated, Dict, List, Literal, Optional, Type, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .errors import SchemaError, UnsupportedVersion

SCHEMA_MAJOR = 1
SCHEMA_MINOR = 0
SCHEMA_VERSION = f"{SCHEMA_MAJOR}.{SCHEMA_MINOR}"

# The AM publishes a full snapshot at least this often; consumers treat one older than
# SNAPSHOT_STALE_AFTER_S as no news rather than as the truth.
SNAPSHOT_INTERVAL_S = 5.0
SNAPSHOT_STALE_AFTER_S = 3 * SNAPSHOT_INTERVAL_S
# Since deltas carry every change, the full snapshot (2.4 MB at 10,000 instances) only bounds
# how far back a restarted reader replays and how long a member nobody announced lingers.
FULL_SNAPSHOT_INTERVAL_S = 60.0
# Telemetry streams are trimmed (approximately) to this many entries: 20 s of 1,000 instances
# at one sample a second, about 20 MB of Redis (a sample with two models and a GPU is ~1 kB).
# tarn-am reads it live from "$" and keeps only each instance's latest sample.
TELEMETRY_MAXLEN = 20_000

ENTRY_FIELD = "event"


# ---------------------------------------------------------------- stream names

def deployments_key() -> str:
    return "tarn:deployments"


def gateway_places_key(group: str) -> str:
    """The places one gateway-sync replica group owns (hash: place -> deployment)."""
    return f"tarn:gateway-sync:{group}:places"


def deployments_stream() -> str:
    return "tarn:deployments:events"


def lifecycle_stream(deployment: str) -> str:
    return f"tarn:{_checked(deployment)}:lifecycle"


def telemetry_stream(deployment: str) -> str:
    return f"tarn:{_checked(deployment)}:telemetry"


def commands_stream(deployment: str, container_id: str) -> str:
    return f"tarn:{_checked(deployment)}:commands:{_checked(container_id)}"


def acks_stream(deployment: str) -> str:
    return f"tarn:{_checked(deployment)}:acks"


def audit_stream() -> str:
    return "tarn:audit"


def dead_letter_stream(stream: str) -> str:
    return f"{stream}:dead"


def _checked(part: str) -> str:
    # A name with ':' or whitespace would make stream names ambiguous.
    if not part or any(c in part for c in ": \t\r\n"):
        raise ValueError(f"invalid name for a stream key: {part!r}")
    return part


# ---------------------------------------------------------------- base

def _now() -> float:
    return time.time()


def _new_id() -> str:
    return uuid.uuid4().hex


class Event(BaseModel):
    """Common envelope. ``ts`` is the producer's wall clock in seconds."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str
    schema_version: str = SCHEMA_VERSION
    event_id: str = Field(default_factory=_new_id)
    ts: float = Field(default_factory=_now)
    deployment: str


class InstanceState(str, Enum):
    REQUESTED = "requested"
    STARTING = "starting"
    READY = "ready"
    UNREADY = "unready"
    DRAINING = "draining"
    UNROUTED = "unrouted"
    STOPPED = "stopped"


class Endpoints(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    host: str
    http_port: int = Field(ge=1, le=65535)
    grpc_port: Optional[int] = Field(None, ge=1, le=65535)
    metrics_port: Optional[int] = Field(None, ge=1, le=65535)
    # The node-agent's own /healthz and /metrics (picked at start), for Prometheus to discover.
    agent_port: Optional[int] = Field(None, ge=1, le=65535)

    @property
    def address(self) -> str:
        """``host:port`` of the HTTP endpoint: the znode name and the /instances line."""
        return f"{self.host}:{self.http_port}"


# ---------------------------------------------------------------- deployment

class DeploymentRecord(Event):
    """What ``tarn submit`` asked for, published by the AM so the separately deployed
    gateway-sync and authz learn the flags that concern them."""

    type: Literal["deployment.record"] = "deployment.record"
    app_id: str
    am_address: Optional[str] = None  # http://host:port of the AM REST API
    zk_ensemble: Optional[str] = None
    zk_path: str = "/services/triton/instances"
    haproxy_backend: str = "triton_backend"
    ranger_service: Optional[str] = None
    ranger_app_id: Optional[str] = None
    ranger_audit: bool = False
    authz_url: Optional[str] = None
    model_repository: Optional[str] = None
    min_instances: int = 1
    max_instances: int = 1
    # --placement per-model: the models that may scale to zero (min 0). gateway-sync keeps each one's
    # map entry while it has no copy, so its requests wait at the gateway for a copy (cold start).
    cold_models: List[str] = Field(default_factory=list, max_length=1024)
    removed: bool = False  # set on the announcement sent when the deployment is stopped


# ---------------------------------------------------------------- containers (AM)

class ContainerEvent(Event):
    app_id: str
    container_id: str
    host: Optional[str] = None
    service: Optional[str] = None  # the skein service the container belongs to


class ContainerRequested(Event):
    type: Literal["container.requested"] = "container.requested"
    app_id: str
    service: str
    reason: str = ""


class ContainerRunning(ContainerEvent):
    type: Literal["container.running"] = "container.running"


class ContainerCompleted(ContainerEvent):
    type: Literal["container.completed"] = "container.completed"
    exit_status: Optional[int] = None
    diagnostics: str = ""


class ContainerFailed(ContainerEvent):
    type: Literal["container.failed"] = "container.failed"
    exit_status: Optional[int] = None
    diagnostics: str = ""
    restarts: int = 0


# ---------------------------------------------------------------- instances (node-agent)

class InstanceEvent(Event):
    """An instance is one tritonserver in one container; ``instance_id`` is the container id."""

    app_id: str
    instance_id: str
    seq: int = Field(ge=0)
    endpoints: Endpoints
    models: List[str] = Field(default_factory=list)


class InstanceReady(InstanceEvent):
    type: Literal["instance.ready"] = "instance.ready"
    state: Literal[InstanceState.READY] = InstanceState.READY


class InstanceUnready(InstanceEvent):
    type: Literal["instance.unready"] = "instance.unready"
    state: Literal[InstanceState.UNREADY] = InstanceState.UNREADY
    reason: str = ""


class InstanceDraining(InstanceEvent):
    type: Literal["instance.draining"] = "instance.draining"
    state: Literal[InstanceState.DRAINING] = InstanceState.DRAINING
    command_id: Optional[str] = None
    timeout_s: Optional[float] = None


class InstanceUnrouted(InstanceEvent):
    """Published by gateway-sync once the draining instance is out of HAProxy and ZooKeeper
    (no new requests reach it), and again, at the same ``seq``, whenever ``open_requests``
    changes: the requests HAProxy still holds for it (its server's ``scur`` + ``qcur``, summed
    over every HAProxy; 0 once the server is gone; None: not counted). The node-agent waits
    for 0 before it stops Triton."""

    type: Literal["instance.unrouted"] = "instance.unrouted"
    state: Literal[InstanceState.UNROUTED] = InstanceState.UNROUTED
    open_requests: Optional[int] = Field(None, ge=0)


class ModelUnrouted(Event):
    """Published by gateway-sync (per-model routing) once ``model`` is routed away from an
    instance that is still ready but whose ready announcement at ``seq`` no longer lists it:
    its server left the model's slot backend on every HAProxy. Again, at the same ``seq``,
    whenever ``open_requests`` changes (the requests HAProxy still holds for it there, summed
    over every HAProxy; 0 once the server is gone), until 0. It lets an unload wait for the
    gateways: announce the instance ready without the model, wait for 0, then unload."""

    type: Literal["model.unrouted"] = "model.unrouted"
    app_id: str
    instance_id: str
    seq: int = Field(ge=0)
    model: str
    open_requests: int = Field(ge=0)


class ModelDemanded(Event):
    """Published by gateway-sync on the deployment's lifecycle stream while a gateway holds a
    request for ``model`` whose slot has no usable server (a model scaled to zero): at most
    once per model per few seconds per replica. tarn-am loads one copy of a model at 0 copies."""

    type: Literal["model.demanded"] = "model.demanded"
    model: str = Field(min_length=1, max_length=128)
    backend: str = ""  # the HAProxy backend the request came in for


class InstanceStopped(InstanceEvent):
    type: Literal["instance.stopped"] = "instance.stopped"
    state: Literal[InstanceState.STOPPED] = InstanceState.STOPPED
    exit_code: Optional[int] = None
    reason: str = ""


class InstanceHeartbeat(Event):
    """Sent on the telemetry stream every few seconds while the agent lives."""

    type: Literal["instance.heartbeat"] = "instance.heartbeat"
    app_id: str
    instance_id: str
    seq: int = Field(ge=0)
    state: InstanceState
    endpoints: Optional[Endpoints] = None


class MemberState(BaseModel):
    """One instance as the AM knows it, inside a MembershipSnapshot."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    instance_id: str
    state: InstanceState
    seq: int = Field(ge=0)
    endpoints: Optional[Endpoints] = None
    models: List[str] = Field(default_factory=list)


class MembershipSnapshot(Event):
    """The AM's full view, every FULL_SNAPSHOT_INTERVAL_S (MembershipDelta in between).

    ``lifecycle_through`` is the id of the last lifecycle entry the AM had applied when
    it built the snapshot: a consumer may drop an instance missing from the snapshot
    only if everything it knows of that instance came from an entry at or before it.
    """

    type: Literal["membership.snapshot"] = "membership.snapshot"
    app_id: str
    snapshot_seq: int = Field(ge=0)
    lifecycle_through: Optional[str] = None
    desired_count: int = Field(ge=0)
    members: List[MemberState] = Field(default_factory=list)
    interval_s: float = SNAPSHOT_INTERVAL_S


class MembershipDelta(Event):
    """What changed in the AM's view since its previous snapshot or delta, on every change
    between full snapshots: ``members`` newly listed or changed, ``removed`` the ids listed
    before and not any more (stopped, or no container of ours holds them).

    ``lifecycle_through`` as in MembershipSnapshot: a consumer drops a removed id only if
    everything it knows of it came from an entry at or before it. A delta never makes an
    unlisted member go and never stands for the whole fleet: only a full snapshot does.
    ``snapshot_seq`` numbers deltas and snapshots in one sequence; ``full_seq`` is the full
    snapshot this one follows.
    """

    type: Literal["membership.delta"] = "membership.delta"
    app_id: str
    snapshot_seq: int = Field(ge=0)
    full_seq: int = Field(ge=0)
    lifecycle_through: Optional[str] = None
    desired_count: int = Field(ge=0)
    members: List[MemberState] = Field(default_factory=list)
    removed: List[str] = Field(default_factory=list)


# ---------------------------------------------------------------- telemetry

class GpuSample(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    index: int
    uuid: Optional[str] = None
    name: Optional[str] = None
    utilization_pct: float = Field(ge=0, le=100)
    memory_used_bytes: int = Field(ge=0)
    memory_total_bytes: int = Field(ge=0)


class MigDeviceSample(BaseModel):
    """One MIG device of a MIG-enabled GPU: NVML reads its memory, not its utilization."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    gpu_index: int
    mig_index: int
    uuid: Optional[str] = None
    gpu_uuid: Optional[str] = None
    memory_used_bytes: int = Field(ge=0)
    memory_total_bytes: int = Field(ge=0)


class GpuUnreadable(BaseModel):
    """An allocated GPU (or MIG device) NVML could not read this interval, and why."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    index: int
    mig_index: Optional[int] = None
    uuid: Optional[str] = None
    error: str


class ModelSample(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    version: Optional[str] = None
    request_rate_per_s: float = Field(0.0, ge=0)
    failure_rate_per_s: float = Field(0.0, ge=0)
    queue_time_per_request_us: float = Field(0.0, ge=0)
    pending_requests: float = Field(0.0, ge=0)


class ModelLoadState(str, Enum):
    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"
    UNLOADED = "unloaded"
    FAILED = "failed"


class DeviceMemory(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    index: int
    bytes: int = Field(ge=0)


class ModelOnInstance(BaseModel):
    """One model on one instance (``--placement per-model``): its state in Triton, and what
    its load measured. ``memory_bytes`` is the footprint placement counts: the GPU memory
    the load added (NVML, summed over the devices) where GPUs are readable, else the growth
    of the Triton process group's RSS; None when neither could be read."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    state: ModelLoadState
    memory_bytes: Optional[int] = Field(None, ge=0)
    memory_source: Optional[Literal["nvml", "rss"]] = None
    host_memory_bytes: Optional[int] = Field(None, ge=0)  # the RSS growth, also with GPUs
    gpu_memory_bytes: Optional[List[DeviceMemory]] = None  # per device, where readable
    load_time_s: Optional[float] = Field(None, ge=0)
    error: Optional[str] = None


class TelemetrySample(Event):
    """One interval of an instance's load. ``gpus`` is None when no allocated GPU could be
    read (``gpu_error`` says why): unavailable is never reported as zeros. One failing GPU
    is listed in ``gpus_unreadable`` while the others are still read."""

    type: Literal["telemetry.sample"] = "telemetry.sample"
    app_id: str
    instance_id: str
    interval_s: float = Field(gt=0)
    triton_up: bool = True
    load: float = Field(0.0, ge=0)  # normalized: 1.0 = at the target queue time
    models: List[ModelSample] = Field(default_factory=list)
    gpus: Optional[List[GpuSample]] = None
    gpu_error: Optional[str] = None
    # Additive: the allocated MIG devices, and devices that failed while the others were read.
    mig_devices: Optional[List[MigDeviceSample]] = None
    gpus_unreadable: Optional[List[GpuUnreadable]] = None
    # Additive: the models Triton holds, with their measured memory (explicit model control).
    model_states: Optional[List[ModelOnInstance]] = None


# ---------------------------------------------------------------- commands

class Command(Event):
    """Addressed to one container; re-sent by the AM until acknowledged."""

    app_id: str
    container_id: str
    command_id: str = Field(default_factory=_new_id)


class DrainCommand(Command):
    type: Literal["command.drain"] = "command.drain"
    timeout_s: float = Field(60.0, gt=0)


class LoadModelCommand(Command):
    type: Literal["command.load_model"] = "command.load_model"
    model: str
    config: Optional[str] = None  # a config.pbtxt override in JSON, as Triton's API takes it


class UnloadModelCommand(Command):
    type: Literal["command.unload_model"] = "command.unload_model"
    model: str


class AckStatus(str, Enum):
    ACCEPTED = "accepted"
    DONE = "done"
    FAILED = "failed"


class CommandAck(Event):
    type: Literal["command.ack"] = "command.ack"
    app_id: str
    container_id: str
    command_id: str
    command_type: str
    status: AckStatus
    message: str = ""
    model_state: Optional[ModelOnInstance] = None  # additive: a load's or unload's outcome


# ---------------------------------------------------------------- audit

class AuditDecision(Event):
    """One authorization decision, with Ranger's AuthzAuditEvent field names."""

    type: Literal["audit.decision"] = "audit.decision"
    repoType: int = 0
    repo: str  # the Ranger service name
    reqUser: str
    evtTime: str  # "yyyy-MM-dd HH:mm:ss.SSS", as Ranger writes it
    access: str
    resource: str
    resType: str = "model"
    action: str
    result: int  # 1 allowed, 0 denied
    agent: str  # the Ranger app id
    policy: int = -1
    reason: Optional[str] = None  # why, when no policy decided (e.g. failing closed on stale policies)
    enforcer: str = "ranger-acl"
    cliIP: Optional[str] = None
    agentHost: Optional[str] = None
    logType: str = "RangerAudit"
    id: str = Field(default_factory=_new_id)
    seq_num: int = 0
    event_count: int = 1
    event_dur_ms: int = 0
    additional_info: Optional[str] = None  # JSON; a summary of gateway cache hits says so here
    cluster_name: str = ""
    policy_version: Optional[int] = None
    reqData: Optional[str] = None


# ---------------------------------------------------------------- codec

_EVENT_TYPES: Dict[str, Type[Event]] = {
    model.model_fields["type"].default: model
    for model in (
        DeploymentRecord,
        ContainerRequested, ContainerRunning, ContainerCompleted, ContainerFailed,
        InstanceReady, InstanceUnready, InstanceDraining, InstanceUnrouted, InstanceStopped, ModelUnrouted, ModelDemanded,
        InstanceHeartbeat, MembershipSnapshot, MembershipDelta, TelemetrySample,
        DrainCommand, LoadModelCommand, UnloadModelCommand, CommandAck,
        AuditDecision,
    )
}

AnyInstanceEvent = Union[InstanceReady, InstanceUnready, InstanceDraining, InstanceUnrouted, InstanceStopped]
AnyCommand = Union[DrainCommand, LoadModelCommand, UnloadModelCommand]


def event_types() -> Dict[str, Type[Event]]:
    return dict(_EVENT_TYPES)


def encode(event: Event) -> Dict[str, str]:
    """The stream entry fields for ``event``."""
    return {ENTRY_FIELD: event.model_dump_json()}


# One pass of pydantic's JSON parser picks the type by its tag: the hot path of every consumer.
_ANY_EVENT = TypeAdapter(Annotated[Union[tuple(_EVENT_TYPES.values())], Field(discriminator="type")])


def decode(fields: Dict) -> Event:
    """Decode a stream entry (bytes or str keys/values) into its typed event.

    Raises SchemaError for anything that is not a well-formed event of a known type,
    UnsupportedVersion for another major version.
    """
    raw = fields.get(ENTRY_FIELD, fields.get(ENTRY_FIELD.encode()))
    if raw is None:
        raise SchemaError(f"entry has no '{ENTRY_FIELD}' field")
    try:
        event = _ANY_EVENT.validate_json(raw)
        if _major(event.schema_version) == SCHEMA_MAJOR:
            return event
    except ValidationError:
        pass
    # The slow path says precisely what is wrong.
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SchemaError(f"entry is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise SchemaError("entry is not a JSON object")
    major = _major(payload.get("schema_version"))
    if major != SCHEMA_MAJOR:
        raise UnsupportedVersion(
            f"schema major version {major} is not supported (this consumer reads {SCHEMA_MAJOR}.x)"
        )
    kind = payload.get("type")
    model = _EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise SchemaError(f"unknown event type {kind!r}")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise SchemaError(f"invalid {kind} event: {_brief(exc)}") from None


def _major(version: object) -> Optional[int]:
    if not isinstance(version, str):
        return None
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _brief(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()[:5]
    )
