"""The node-agent's one Settings class: given by the AM through TARN_NODE_AGENT_* and arguments."""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal, Optional, Sequence

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tarn_shared import defaults
from tarn_shared.cli_help import settings_help
from tarn_shared.errors import ConfigError
from tarn_shared.locations import CredentialLocationStr, Location, LocationStr, parse_credential_location, parse_location
from tarn_shared.settings import ENV_NAME, CommaList, LineList, TarnSettings, unsafe_env_name

MODEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
# YARN names containers container_[e<epoch>_]<cluster ts>_<app>_<attempt>_<container>.
CONTAINER_ID = re.compile(r"^container_(?:e\d+_)?(\d+)_(\d+)_\d+_\d+$")
STREAM_NAME = re.compile(r"^[^:\s]+$")


class NodeAgentSettings(TarnSettings):
    model_config = SettingsConfigDict(env_prefix="TARN_NODE_AGENT_", extra="ignore", env_file=None)

    # -- identity
    deployment: str = Field(defaults.DEPLOYMENT, description="the deployment's stable name (keys its Redis streams)")
    container_id: Optional[str] = Field(None, description="YARN container id; default: $CONTAINER_ID")
    app_id: Optional[str] = Field(None, description="YARN application id; default: from the container id")
    advertise_host: Optional[str] = Field(None, description="host name announced to the gateways; default: FQDN")

    # -- model repository and staging
    model_repository: LocationStr = Field(..., description="hdfs:// URI, or an absolute path used in place")
    staging_dir: Path = Field(Path("tarn-models"), description="local directory the repository is staged into")
    webhdfs_url: Optional[str] = Field(
        None, description="http(s)://namenode:port of WebHDFS; default: from $HADOOP_CONF_DIR/hdfs-site.xml")
    hdfs_user: Optional[str] = Field(None, description="user for simple auth; default: $HADOOP_USER_NAME or login")
    hdfs_auth: Literal["auto", "simple", "kerberos", "token"] = Field(
        "auto", description="auto: delegation token from $HADOOP_TOKEN_FILE_LOCATION, else Kerberos "
                            "when a ticket cache is configured, else simple")
    staging_parallelism: int = Field(4, ge=1, le=64, description="files (and byte ranges) downloaded at once")
    staging_cache_dir: Optional[Path] = Field(
        None, description="node cache shared by the node's containers and deployments; default: "
                          "<NodeManager local dir>/usercache/<user>/tarn-cache (from $LOCAL_DIRS), "
                          "else <staging_dir>/.cache")
    staging_cache_max_gb: float = Field(
        100.0, gt=0, description="node cache size cap; unused files are evicted least recently used first")
    staging_range_mb: int = Field(
        128, ge=1, le=65536, description="files larger than this are read as parallel byte ranges of "
                                         "about this size (whole HDFS blocks)")
    verify_checksums: bool = Field(True, description="compare each file with HDFS's own checksum")
    overlay_dir: Path = Field(Path("tarn-overlay"), description="this container's copies of the model files "
                                                               "the agent rewrites (the repository is never written)")
    secrets: Optional[CredentialLocationStr] = Field(None, description="JCEKS credential file: hdfs://... or jceks://hdfs@host:port/...")
    require_gateway_key: bool = Field(
        False, description="refuse to start Triton unless the credential file holds tarn.gateway.key (the "
                           "key HAProxy and Knox add; without it Triton answers anyone who reaches its ports)")

    # -- tritonserver
    tritonserver: str = Field("tritonserver", description="tritonserver executable (path or name on PATH)")
    triton_args: Annotated[List[str], NoDecode] = Field(
        default_factory=list, description="extra tritonserver arguments (environment: shell-style words)")
    triton_bind: str = Field("0.0.0.0", description="address tritonserver's HTTP, gRPC and metrics listen on "
                                                     "(e.g. the address only the gateways' network reaches)")
    http_port: int = Field(8000, ge=1, le=65535)
    grpc_port: int = Field(8001, ge=1, le=65535)
    metrics_port: int = Field(8002, ge=1, le=65535)
    tp: int = Field(1, ge=1, le=64, description="tensor parallel size")
    pp: int = Field(1, ge=1, le=64, description="pipeline parallel size")
    parallel_backend: Literal["auto", "tensorrtllm", "vllm"] = Field(
        "auto", description="how tp x pp > 1 is launched; auto: from the models' backend")
    mpirun: str = Field("mpirun", description="MPI launcher for the TensorRT-LLM multi-process launch")
    env: LineList = Field(
        default_factory=list, description="KEY=VALUE for Triton's environment (environment: one per line)")
    model_control_mode: Literal["none", "poll", "explicit"] = Field("none")
    load_models: CommaList = Field(
        default_factory=list, description="models loaded at start (explicit mode; environment: comma separated)")
    exit_timeout_s: int = Field(30, ge=0, description="tritonserver --exit-timeout-secs")

    # -- behaviour
    ready_timeout_s: float = Field(600.0, gt=0, description="deadline for the first /v2/health/ready")
    heartbeat_interval_s: float = Field(defaults.HEARTBEAT_INTERVAL_S, gt=0)
    telemetry_interval_s: float = Field(defaults.TELEMETRY_INTERVAL_S, gt=0,
                                        description="tarn submit --telemetry-interval sets it, the policy's period")
    health_interval_s: float = Field(2.0, gt=0, description="readiness probe period once started")
    probe_timeout_s: float = Field(5.0, gt=0, description="one readiness probe; longer counts as a hang")
    drain_unrouted_timeout_s: float = Field(15.0, gt=0, description="how long a drain waits for gateway-sync")
    model_unload_timeout_s: float = Field(
        30.0, gt=0, description="longest an unload waits for the gateways to route the model away and Triton to "
                                "finish its requests; then it unloads anyway (logged, counted)")
    model_unrouted_wait_s: float = Field(
        5.0, gt=0, description="how long an unload waits for gateway-sync's first model.unrouted before taking "
                               "it that no gateway-sync routes this deployment")
    terminate_drain_timeout_s: Optional[float] = Field(
        None, ge=0, description="how long the drain on SIGTERM may take; default: the NodeManager's "
                                "yarn.nodemanager.sleep-delay-before-sigkill.ms ($HADOOP_CONF_DIR/yarn-site.xml) "
                                "less 10 s for stopping Triton")
    target_queue_time_us: float = Field(100_000.0, gt=0, description="queue time per request at load 1.0")
    target_pending_requests: float = Field(8.0, gt=0, description="pending requests at load 1.0")
    target_gpu_utilization_pct: float = Field(90.0, gt=0, le=100, description="GPU utilization at load 1.0")

    # -- own HTTP endpoint
    agent_host: str = Field("0.0.0.0")
    agent_port: int = Field(0, ge=0, le=65535, description="/healthz and /metrics; 0 picks a free port")

    @field_validator("triton_args", mode="before")
    @classmethod
    def _words(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip().startswith("[") else shlex.split(value)
        return value

    @field_validator("env")
    @classmethod
    def _env_pairs(cls, value: List[str]) -> List[str]:
        for item in value:
            key, sep, _ = item.partition("=")
            if not sep or not ENV_NAME.match(key):
                # Name the key only: the value may be a secret.
                raise ValueError(f"expected KEY=VALUE with KEY a variable name, got key {key[:64]!r}")
            if unsafe_env_name(key):
                raise ValueError(f"{key} may not be set for Triton: it changes which code it loads")
        return value

    @field_validator("load_models")
    @classmethod
    def _model_names(cls, value: List[str]) -> List[str]:
        for name in value:
            if not MODEL_NAME.match(name):
                raise ValueError(f"invalid model name {name[:64]!r}")
        return value

    @field_validator("deployment")
    @classmethod
    def _deployment(cls, value: str) -> str:
        if not STREAM_NAME.match(value):
            raise ValueError("must be non-empty without ':' or whitespace")
        return value

    @field_validator("secrets", mode="before")
    @classmethod
    def _no_secrets(cls, value: Optional[str]) -> Optional[str]:
        return value or None  # an empty variable means no credential file

    @field_validator("webhdfs_url")
    @classmethod
    def _webhdfs(cls, value: Optional[str]) -> Optional[str]:
        if value and not re.match(r"^https?://[^/\s]+/?$", value.split(";")[0]):
            raise ValueError("expected http(s)://host:port")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> "NodeAgentSettings":
        container = self.container_id or os.environ.get("CONTAINER_ID")
        if not container:
            raise ValueError("container_id is required (or $CONTAINER_ID, which YARN sets)")
        if not STREAM_NAME.match(container):
            raise ValueError("container_id must be without ':' or whitespace")
        self.container_id = container
        if not self.app_id:
            match = CONTAINER_ID.match(container)
            if not match:
                raise ValueError("app_id is required when the container id is not a YARN container id")
            self.app_id = f"application_{match.group(1)}_{match.group(2)}"
        if self.load_models and self.model_control_mode != "explicit":
            raise ValueError("load_models needs model_control_mode 'explicit'")
        if len({self.http_port, self.grpc_port, self.metrics_port}) != 3:
            raise ValueError("http_port, grpc_port and metrics_port must differ")
        if not self.staging_dir.is_absolute():
            self.staging_dir = Path.cwd() / self.staging_dir
        if not self.overlay_dir.is_absolute():
            self.overlay_dir = Path.cwd() / self.overlay_dir
        if self.staging_cache_dir is not None and not self.staging_cache_dir.is_absolute():
            self.staging_cache_dir = Path.cwd() / self.staging_cache_dir
        if os.sep not in self.tritonserver and shutil.which(self.tritonserver) is None:
            raise ValueError(f"tritonserver executable {self.tritonserver!r} is not on PATH")
        if os.sep in self.tritonserver and not os.access(self.tritonserver, os.X_OK):
            raise ValueError(f"tritonserver executable {self.tritonserver!r} does not exist or is not executable")
        return self

    # -- derived
    @property
    def repository(self) -> Location:
        return parse_location(self.model_repository)

    @property
    def secrets_location(self) -> Optional[Location]:
        return parse_credential_location(self.secrets) if self.secrets else None

    @property
    def world_size(self) -> int:
        return self.tp * self.pp

    def extra_env(self) -> Dict[str, str]:
        return dict(item.split("=", 1) for item in self.env)


def argument_parser() -> argparse.ArgumentParser:
    """``--field-name VALUE`` for every setting; list settings repeat (``--env K=V --env K2=V2``).
    Each flag's help names its environment variable and default, so --help needs no configuration."""
    parser = argparse.ArgumentParser(
        prog="tarn-node-agent", argument_default=argparse.SUPPRESS,
        description="The entry point of every Triton container: stage the model repository, start "
                    "tritonserver, report to the AM. Each setting is a flag or an environment variable; "
                    "a flag beats the environment.")
    for item in settings_help(NodeAgentSettings):
        flag = "--" + item.field.replace("_", "-")
        # argparse %-formats help strings
        helptext = f"{item.description} [{item.variables[0]}; {_default_words(item.default)}]".replace("%", "%%")
        if item.type == "list":
            parser.add_argument(flag, dest=item.field, action="append", help=helptext)
        else:
            parser.add_argument(flag, dest=item.field, help=helptext)
    return parser


def _default_words(default: str) -> str:
    return "required" if default == "required" else f"default {default}"


def load_settings(argv: Optional[Sequence[str]] = None) -> NodeAgentSettings:
    """Arguments override the environment; raises ConfigError with one message."""
    parser = argument_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        if exc.code == 0:
            raise
        raise ConfigError("invalid arguments (see --help)") from None
    return NodeAgentSettings.load(**vars(args))
