"""What `tarn submit` accepts: the seeds' flags (in the seeds' units) plus ours, validated.

Pure: argparse turns argv into a dict, ``SubmitOptions.parse`` checks it and raises one
ConfigError naming every bad flag. ``--cooldown`` is in milliseconds, as in the seeds.
"""
from __future__ import annotations

import re
from typing import Dict, List, Literal, Mapping, Optional

from pydantic import (BaseModel, ByteSize, ConfigDict, Field, SecretStr, ValidationError, field_validator,
                      model_validator)

from tarn_shared import defaults
from tarn_shared.errors import ConfigError
from tarn_shared.locations import CredentialLocationStr, LocationStr
from tarn_shared.settings import ENV_NAME, CommaList, unsafe_env_name

from .. import policy_config as policy
from ..model_copies import ModelPlan, ModelsFile, placement_problems, resolve_plan
from ..policy_config import policy_problems

NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")  # \Z: "$" lets a trailing newline through
# Environment the AM itself sets for the agent; --env must not override it.
RESERVED_ENV_PREFIXES = ("TARN_", "YARN_CONTAINER_RUNTIME_")
# The node-agent's credentials: --env is also Triton's, whose model code could read them.
AGENT_CREDENTIALS = ("HADOOP_CREDSTORE_PASSWORD", "HADOOP_TOKEN_FILE_LOCATION", "KRB5CCNAME")

FLAG_OF = {  # field -> the flag a user typed, for error messages
    "model_repository": "--model-repository", "image": "--image", "port": "--port",
    "grpc_port": "--grpc-port", "metrics_port": "--metrics-port", "am_port": "--am-port",
    "address": "--address", "token": "--token", "tp": "--tp", "pp": "--pp", "secrets": "--secrets",
    "placement_tag": "--placement-tag", "scale_up": "--scale-up", "scale_down": "--scale-down",
    "min_instances": "--min-instances", "max_instances": "--max-instances", "cooldown_ms": "--cooldown",
    "env": "--env", "zk_ensemble": "--zk-ensemble", "zk_path": "--zk-path",
    "ranger_service": "--ranger-service", "ranger_app_id": "--ranger-app-id",
    "ranger_audit": "--ranger-audit", "name": "--name", "queue": "--queue", "node_label": "--node-label",
    "redis_url": "--redis-url", "authz_url": "--authz-url",
    "authz_gateway_token": "--authz-gateway-token", "haproxy_backend": "--haproxy-backend",
    "runtime": "--runtime", "docker_network": "--docker-network", "docker_mounts": "--docker-mount",
    "python": "--python", "python_env": "--python-env", "container_memory_mb": "--container-memory",
    "container_vcores": "--container-vcores", "am_memory_mb": "--am-memory", "nodes": "--nodes",
    "instances": "--instances", "drain_timeout_s": "--drain-timeout", "tritonserver": "--tritonserver",
    "admin_token": "--admin-token", "allow_query_token": "--allow-query-token",
    "model_control_mode": "--model-control-mode", "agent_env": "--agent-env",
    "stabilization_s": "--stabilization", "telemetry_interval_s": "--telemetry-interval",
    "start_timeout_s": "--start-timeout", "heartbeat_timeout_s": "--heartbeat-timeout",
    "blocked_timeout_s": "--blocked-timeout",
    "crash_loop_failures": "--crash-loop-failures", "crash_loop_window_s": "--crash-loop-window",
    "placement": "--placement", "model_min_copies": "--model-min-copies", "model_max_copies": "--model-max-copies",
    "model_memory": "--model-memory", "models": "--models", "model_queue_ms": "--model-queue-time",
}
# The node-agent's own periods, which the policy is checked against (policy_config.py), and
# their values when --agent-env leaves them alone (the spec sets the telemetry interval).
AGENT_INTERVALS = {
    "agent_telemetry_interval_s": ("TARN_NODE_AGENT_TELEMETRY_INTERVAL_S", None),
    "agent_heartbeat_interval_s": ("TARN_NODE_AGENT_HEARTBEAT_INTERVAL_S", defaults.HEARTBEAT_INTERVAL_S),
}

POLICY_FLAGS = ("scale_up", "scale_down", "min_instances", "max_instances", "stabilization_s", "telemetry_interval_s",
                "start_timeout_s", "heartbeat_timeout_s", "crash_loop_failures", "crash_loop_window_s",
                "drain_timeout_s", "blocked_timeout_s")


def _port(required: bool = True):
    return Field(..., ge=0 if not required else 1, le=65535)


class SubmitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # the seeds' flags
    model_repository: LocationStr
    image: Optional[str] = None
    port: int = Field(8000, ge=1, le=65535)
    grpc_port: int = Field(8001, ge=1, le=65535)
    metrics_port: int = Field(8002, ge=1, le=65535)
    am_port: int = Field(8888, ge=0, le=65535)  # 0: any free port, published once bound
    address: str = "0.0.0.0"
    token: Optional[SecretStr] = None
    tp: int = Field(1, ge=1, le=64)
    pp: int = Field(1, ge=1, le=64)
    secrets: Optional[CredentialLocationStr] = None  # on HDFS: every container on every node reads it
    placement_tag: str = "nvidia"
    # The policy's values: policy_config.policy_problems checks them together (see _consistent).
    scale_up: float = defaults.SCALE_UP
    scale_down: float = defaults.SCALE_DOWN
    min_instances: int = 1
    max_instances: int = 1
    cooldown_ms: int = 120_000
    env: Dict[str, str] = Field(default_factory=dict)
    zk_ensemble: Optional[str] = None
    zk_path: str = defaults.ZK_PATH
    ranger_service: Optional[str] = None
    ranger_app_id: str = "tarn"
    ranger_audit: bool = False
    # ours
    name: str = defaults.DEPLOYMENT
    queue: str = "default"
    node_label: str = ""
    redis_url: str = defaults.REDIS_URL
    authz_url: Optional[str] = None
    authz_gateway_token: Optional[SecretStr] = None  # the AM's credential at authz, never its read token
    haproxy_backend: str = defaults.HAPROXY_BACKEND
    runtime: Literal["docker", "process"] = "docker"
    docker_network: str = "host"
    docker_mounts: List[str] = Field(default_factory=list)
    python: Optional[str] = None
    python_env: Optional[str] = None
    container_memory_mb: int = Field(8192, ge=32)
    container_vcores: int = Field(2, ge=1)
    am_memory_mb: int = Field(768, ge=256)
    nodes: CommaList = Field(default_factory=list)  # --nodes a,b
    instances: Optional[int] = Field(None, ge=0)
    drain_timeout_s: float = 60.0
    stabilization_s: float = policy.STABILIZATION_S
    telemetry_interval_s: float = defaults.TELEMETRY_INTERVAL_S
    start_timeout_s: float = policy.START_TIMEOUT_S
    heartbeat_timeout_s: float = policy.HEARTBEAT_TIMEOUT_S
    blocked_timeout_s: float = policy.BLOCKED_TIMEOUT_S
    crash_loop_failures: int = policy.CRASH_LOOP_FAILURES
    crash_loop_window_s: float = policy.CRASH_LOOP_WINDOW_S
    tritonserver: Optional[str] = None
    admin_token: Optional[SecretStr] = None
    allow_query_token: bool = False
    model_control_mode: Optional[Literal["none", "poll", "explicit"]] = None  # see triton_model_control_mode
    agent_env: Dict[str, str] = Field(default_factory=dict)
    # per-model placement (model_copies.py): the flags' defaults and the --models file
    placement: Literal["all-models", "per-model"] = "all-models"
    model_min_copies: int = Field(1, ge=0)
    model_max_copies: Optional[int] = Field(None, ge=1)  # default: --max-instances
    model_memory: Optional[ByteSize] = Field(None, gt=0)
    model_queue_ms: Optional[float] = Field(None, gt=0, allow_inf_nan=False)  # default: model_copies.QUEUE_TIME_US
    models: Optional[ModelsFile] = None

    @property
    def triton_model_control_mode(self) -> str:
        return "explicit" if self.placement == "per-model" else self.model_control_mode or "none"

    @property
    def model_plan(self) -> Optional[ModelPlan]:
        return resolve_plan(self)[0] if self.placement == "per-model" else None

    @property
    def gpus(self) -> int:
        return self.tp * self.pp

    @property
    def cooldown_s(self) -> float:
        return self.cooldown_ms / 1000.0

    @property
    def initial_instances(self) -> int:
        return self.min_instances if self.instances is None else self.instances

    @field_validator("name", "placement_tag", "haproxy_backend")
    @classmethod
    def _simple_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("use letters, digits, '_', '.' or '-' (at most 63, starting with a letter or digit)")
        return value

    @field_validator("zk_path")
    @classmethod
    def _zk_path(cls, value: str) -> str:
        if not value.startswith("/") or value.endswith("/") or "//" in value:
            raise ValueError(f"must be an absolute ZooKeeper path such as {defaults.ZK_PATH}")
        return value

    @field_validator("zk_ensemble")
    @classmethod
    def _zk_ensemble(cls, value: Optional[str]) -> Optional[str]:
        hosts = [] if value is None else value.split("/", 1)[0].split(",")  # host:port,...[/chroot]
        for host in hosts:
            name, _, port = host.rpartition(":")
            if not name or not port.isdigit():
                raise ValueError("must be host:port[,host:port...]")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("authz_url")
    @classmethod
    def _authz_url(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not re.match(r"^https?://", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("env", "agent_env")
    @classmethod
    def _env(cls, value: Dict[str, str], info) -> Dict[str, str]:
        for key in value:
            if not ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            # --agent-env exists to reach the agent's own settings; --env is Triton's.
            if info.field_name != "env":
                continue
            if key.startswith(RESERVED_ENV_PREFIXES):
                raise ValueError(f"{key} is set by TARN itself")
            if key in AGENT_CREDENTIALS:
                raise ValueError(f"{key} is the node-agent's own, which Triton must not see: give it with --agent-env")
            if unsafe_env_name(key):
                raise ValueError(f"{key} may not be set for Triton: it changes which code it loads")
        return value

    @field_validator("docker_mounts")
    @classmethod
    def _mounts(cls, value: List[str]) -> List[str]:
        for mount in value:
            parts = mount.split(":")
            if len(parts) != 3 or not parts[0].startswith("/") or not parts[1].startswith("/") \
                    or parts[2] not in ("ro", "rw"):
                raise ValueError(f"{mount!r}: use /host/path:/container/path:ro|rw")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "SubmitOptions":
        problems = self._policy_problems()
        if self.instances is not None and not self.min_instances <= self.instances <= self.max_instances:
            problems.append("--instances must lie between --min-instances and --max-instances")
        if len({self.port, self.grpc_port, self.metrics_port}) != 3:
            problems.append("--port, --grpc-port and --metrics-port must differ")
        if self.runtime == "docker" and not self.image:
            problems.append("--image is required with --runtime docker (YARN's Docker runtime)")
        if self.python and self.python_env:
            problems.append("give --python (an interpreter on every node) or --python-env (a packed "
                            "environment), not both")
        if self.python_env and not self.python_env.endswith((".tar.gz", ".tgz", ".zip")):
            problems.append("--python-env must be a .tar.gz/.tgz/.zip made by conda-pack")
        problems += placement_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def agent_interval_s(self, name: str) -> Optional[float]:
        """The node-agent's period as its containers will read it: --agent-env, else its default."""
        variable, default = AGENT_INTERVALS[name]
        text = self.agent_env.get(variable)
        if text is None:
            return self.telemetry_interval_s if default is None else default
        try:
            return float(text)
        except ValueError:
            return None

    def _policy_problems(self) -> List[str]:
        values = {name: getattr(self, name) for name in POLICY_FLAGS} | {"cooldown_s": self.cooldown_s}
        names = {name: FLAG_OF[name] for name in POLICY_FLAGS} | {"cooldown_s": "--cooldown"}
        problems = []
        for name, (variable, _) in AGENT_INTERVALS.items():
            values[name] = self.agent_interval_s(name)
            names[name] = f"--agent-env {variable}" if variable in self.agent_env else f"{variable}'s default"
            if values[name] is None:
                problems.append(f"--agent-env {variable}: {self.agent_env[variable]!r} is not a number of seconds")
        return problems + policy_problems(values, names)

    @classmethod
    def parse(cls, values: Mapping[str, object]) -> "SubmitOptions":
        try:
            return cls.model_validate({k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            raise ConfigError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        flag = FLAG_OF.get(loc[0], loc[0]) if loc else ""
        if loc[:1] == ["models"] and len(loc) > 1:  # which model and field of the file
            flag = f"--models {'.'.join(loc[1:])}"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{flag}: {message}" if flag else message)
    return "invalid submit options:\n  " + "\n  ".join(lines)


def parse_env_pairs(pairs: Optional[List[str]], flag: str = "--env") -> Dict[str, str]:
    """``KEY=VALUE`` strings (repeatable flag) into a dict; later ones win."""
    env: Dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"invalid submit options:\n  {flag}: {pair!r} is not KEY=VALUE")
        env[key] = value
    return env


def truthy(value: Optional[str]) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")
