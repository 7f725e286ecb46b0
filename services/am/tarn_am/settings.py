"""tarn-am's one Settings class; `tarn submit` fills it through TARN_AM_* in the master's env."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, List, Literal, Optional

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tarn_shared import defaults
from tarn_shared.settings import CommaList, TarnSettings

from . import policy_config as policy
from .containers import Slot
from .model_copies import ModelPlan, plan_from_env
from .policy_config import AutoscaleConfig
from .reconcile import ReconcileTimings

# The node-agents' default telemetry interval: the dashboard's charts take a point per interval.
TELEMETRY_INTERVAL_S = defaults.TELEMETRY_INTERVAL_S

POLICY_FIELDS = ("scale_up", "scale_down", "min_instances", "max_instances", "cooldown_s", "stabilization_s",
                 "telemetry_interval_s", "start_timeout_s", "heartbeat_timeout_s", "agent_heartbeat_interval_s",
                 "crash_loop_failures", "crash_loop_window_s", "restart_backoff_initial_s", "restart_backoff_max_s",
                 "drain_timeout_s", "blocked_timeout_s")


class AmSettings(TarnSettings):
    model_config = SettingsConfigDict(env_prefix="TARN_AM_", extra="ignore", env_file=None)

    deployment: str = Field(..., description="The deployment's stable name (--name): keys its streams")
    app_id: Optional[str] = Field(None, description="YARN application id; skein's container env gives it")
    # "service=host,service=host": the per-node skein services (see cli/spec.py)
    slots: CommaList = Field(default_factory=list,
                             description="per-node skein services as service=host, comma separated")
    address: str = Field("0.0.0.0", description="bind address of the REST API")
    port: int = Field(8888, ge=0, le=65535, description="REST API port; 0 picks one, kept across restarts")
    advertise_host: Optional[str] = Field(None, description="host in the published address (default NM_HOST)")
    port_file: Path = Field(Path(".tarn-am-port"), description="remembers a picked port across restarts")
    admin_token: Optional[SecretStr] = Field(None, description="token for /scale; defaults to the token")
    authz_url: Optional[str] = Field(None, description="tarn-authz base URL (--authz-url); unset: /authorize "
                                     "answers 503, /models and the dashboard filter nothing")
    authz_gateway_token: Optional[SecretStr] = Field(
        None, description="tarn-authz's gateway token, the AM's credential there (--authz-gateway-token, or "
                          "TARN_AUTHZ_GATEWAY_TOKEN to tarn submit); apart from the read token")
    authz_timeout_s: float = Field(2.0, gt=0, description="timeout of one call to authz")

    # Who may use the API (api_auth.py): the token, Kerberos (SPNEGO), or either.
    auth: Literal["token", "spnego", "token+spnego"] = Field(
        "token", description="how API callers authenticate: the token, SPNEGO (a Kerberos ticket), or either")
    spnego_keytab: Optional[Path] = Field(None, description="keytab with the HTTP/<host> key SPNEGO accepts "
                                          "with (default: MIT's, KRB5_KTNAME)")
    spnego_principal: Optional[str] = Field(None, description="the HTTP/<host>@REALM principal of "
                                            "TARN_AM_SPNEGO_KEYTAB to accept as (default: any in the keytab)")
    owner: Optional[str] = Field(default_factory=lambda: os.environ.get("USER"),
                                 description="short name of the deployment's owner, who may read and change it "
                                             "over SPNEGO (default: the container's USER, the submitting user)")
    admins: CommaList = Field(default_factory=list, description="short names that may read and change the "
                              "deployment over SPNEGO besides the owner, comma separated")
    viewers: CommaList = Field(default_factory=list, description="short names that may read it (instances, "
                               "status, dashboard) over SPNEGO besides owner and admins; * for every user")

    # The policy's values are checked together by policy_config.policy_problems (see _policy).
    min_instances: int = Field(1, description="--min-instances: the autoscaler never goes below it")
    max_instances: int = Field(1, description="--max-instances: the autoscaler never goes above it")
    initial_instances: Optional[int] = Field(None, ge=0, description="instances to start with (default min)")
    scale_up: float = Field(defaults.SCALE_UP, description="--scale-up: load per instance above which instances are added")
    scale_down: float = Field(defaults.SCALE_DOWN, description="--scale-down: load per instance below which instances drain")
    cooldown_s: float = Field(120.0, description="--cooldown (given in ms to tarn submit) between opposite moves")
    stabilization_s: float = Field(policy.STABILIZATION_S,
                                   description="--stabilization: load stays below scale-down this long before a drain")
    telemetry_interval_s: float = Field(defaults.TELEMETRY_INTERVAL_S,
                                        description="--telemetry-interval: the agents' period, the policy's too")
    agent_heartbeat_interval_s: float = Field(defaults.HEARTBEAT_INTERVAL_S,
                                              description="the node-agents' heartbeat interval, for the timeout's check")
    autoscale: bool = Field(True, description="let the autoscaling policy move the target")

    # recorded for gateway-sync and authz (DeploymentRecord)
    zk_ensemble: Optional[str] = Field(None, description="--zk-ensemble: where gateway-sync registers instances")
    zk_path: str = Field(defaults.ZK_PATH, description="--zk-path: parent of the instance znodes")
    haproxy_backend: str = Field(defaults.HAPROXY_BACKEND, description="--haproxy-backend: gateway-sync's backend")
    ranger_service: Optional[str] = Field(None, description="--ranger-service: the Ranger service authz serves")
    ranger_app_id: Optional[str] = Field(None, description="--ranger-app-id: plugin id and audit agent")
    ranger_audit: bool = Field(False, description="--ranger-audit: authz audits this deployment's decisions")
    model_repository: Optional[str] = Field(None, description="--model-repository, for /models and the dashboard")
    placement: Literal["all-models", "per-model"] = Field(
        "all-models", description="--placement: every model on every instance, or per-model copies")
    model_plan: Annotated[Optional[ModelPlan], NoDecode, BeforeValidator(plan_from_env)] = Field(
        None, description="per-model mode: each model's min/max copies and declared memory (base64 of its JSON, "
                          "or JSON, from tarn submit)")
    container_memory_mb: int = Field(8192, ge=32, description="--container-memory: an instance's capacity for "
                                     "per-model placement where no GPU is readable")

    loop_interval_s: float = Field(1.0, gt=0, description="period of the reconcile loop")
    drain_timeout_s: float = Field(60.0, description="how long a drain may take before the container is released")
    start_timeout_s: float = Field(policy.START_TIMEOUT_S, description="--start-timeout: how long a container "
                                                                       "may take to become ready")
    heartbeat_timeout_s: float = Field(policy.HEARTBEAT_TIMEOUT_S,
                                       description="--heartbeat-timeout: silence after which an instance counts as lost")
    blocked_timeout_s: float = Field(policy.BLOCKED_TIMEOUT_S, description="--blocked-timeout: how long a "
                                     "container request YARN does not fill waits before it is reported and re-placed")
    restart_backoff_initial_s: float = Field(2.0, description="first delay before replacing a failed container")
    restart_backoff_max_s: float = Field(60.0, description="ceiling of the restart backoff")
    crash_loop_failures: int = Field(policy.CRASH_LOOP_FAILURES, description="--crash-loop-failures: failures "
                                     "within the window that pause a node (or, of tarn-am, stop the supervisor)")
    crash_loop_window_s: float = Field(policy.CRASH_LOOP_WINDOW_S,
                                       description="--crash-loop-window: window of the crash-loop detection")
    history_window_s: float = Field(3600.0, ge=60, le=86400,
                                    description="span of the dashboard's charts, one point per telemetry interval")
    history_persist_s: float = Field(30.0, ge=1, description="how often the charts' history is stored in Redis")

    @field_validator("slots")
    @classmethod
    def _slots(cls, items: List[str]) -> List[str]:
        for item in items:
            service, sep, host = item.partition("=")
            if not sep or not service or not host:
                raise ValueError(f"{item!r} is not service=host")
        return items

    @model_validator(mode="after")
    def _policy(self) -> "AmSettings":
        policy.check({name: getattr(self, name) for name in POLICY_FIELDS},
                     {name: f"TARN_AM_{name.upper()}" for name in POLICY_FIELDS})
        return self

    def slot_list(self) -> List[Slot]:
        return [Slot(*item.split("=", 1)) for item in self.slots]

    def reconcile_timings(self) -> ReconcileTimings:
        return ReconcileTimings(
            restart_backoff_initial_s=self.restart_backoff_initial_s,
            restart_backoff_max_s=self.restart_backoff_max_s,
            crash_loop_failures=self.crash_loop_failures,
            crash_loop_window_s=self.crash_loop_window_s,
            drain_timeout_s=self.drain_timeout_s,
            start_timeout_s=self.start_timeout_s,
            heartbeat_timeout_s=self.heartbeat_timeout_s,
            blocked_timeout_s=self.blocked_timeout_s,
        )

    def autoscale_config(self) -> AutoscaleConfig:
        # The policy never scales to zero: min-instances 0 means "no floor beyond one serving instance".
        return AutoscaleConfig(
            scale_up=self.scale_up, scale_down=self.scale_down, min_instances=max(1, self.min_instances),
            max_instances=self.max_instances, cooldown_s=self.cooldown_s, stabilization_s=self.stabilization_s,
            telemetry_interval_s=self.telemetry_interval_s)

    def admin_secret(self) -> Optional[str]:
        chosen = self.admin_token or self.token
        return chosen.get_secret_value() if chosen else None

    def authz_secret(self) -> Optional[str]:
        return self.authz_gateway_token.get_secret_value() if self.authz_gateway_token else None

    def read_secret(self) -> Optional[str]:
        return self.token.get_secret_value() if self.token else None
