"""gateway-sync's one Settings class: TARN_GATEWAY_SYNC_* environment variables."""
from __future__ import annotations

import socket
from typing import Dict, List, Literal, Optional

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from tarn_shared import defaults
from tarn_shared.settings import CommaList, SpaceList, TarnSettings

from .strict_names import backend_problem, parse_ensemble, zk_path_problem

# The backends of deploy/haproxy's configurations: dynamic servers, and the seeds' slots.
DEFAULT_BACKENDS = [defaults.HAPROXY_BACKEND, "triton_slots"]
# The seeds' Knox namespace; deployments' paths (default /services/triton/instances) lie under it.
DEFAULT_ZK_PATHS = ["/services/triton"]


class GatewaySyncSettings(TarnSettings):
    model_config = SettingsConfigDict(env_prefix="TARN_GATEWAY_SYNC_", extra="ignore", env_file=None)

    redis_url: str = Field(
        defaults.REDIS_URL,
        description="Redis holding TARN's streams: redis://[user:password@]host:port/db with gateway-sync's own "
                    "Redis 7 ACL user (deploy/redis/gateway-sync.conf), or rediss://...?ssl_ca_certs=/path/ca.pem "
                    "for TLS (ssl_certfile= and ssl_keyfile= add a client certificate)")
    zk_hosts: str = Field(..., description="ZooKeeper ensemble for the leader election, and for deployments "
                                            "whose record names none (host:port,...[/chroot])")
    haproxy_sockets: CommaList = Field(..., description="HAProxy Runtime API addresses, comma separated: "
                                                      "unix socket paths or tcp:host:port")
    replica_id: str = Field(default_factory=socket.gethostname,
                            description="Stable name of this replica: its consumer groups and election id")
    deployments: CommaList = Field(default_factory=list,
                                 description="Serve only these deployments, comma separated; empty = every "
                                             "deployment recorded in Redis")
    election_path: str = Field("/tarn/gateway-sync/leader", description="Lock path of the leader election")
    zk_session_timeout_s: float = Field(10.0, ge=1.0, le=60.0)
    zk_digest: Optional[SecretStr] = Field(None, description="user:password for ZooKeeper digest auth")
    zk_sasl_mechanism: Optional[str] = Field(None, description="e.g. DIGEST-MD5 or GSSAPI (kazoo sasl_options)")
    zk_sasl_username: Optional[str] = None
    zk_sasl_password: Optional[SecretStr] = None
    zk_acl: CommaList = Field(default_factory=list,
                            description="ACLs for created znodes, scheme:id:perms, comma separated; empty = open")
    haproxy_layout: Literal["auto", "dynamic", "slots"] = Field(
        "auto", description="auto: a backend with servers named <slot prefix>N uses the seeds' slots")
    haproxy_server_prefix: str = Field("tarn-", description="Name prefix of the dynamic servers gateway-sync owns")
    haproxy_slot_prefix: str = Field("triton-", description="Name prefix of the seeds' placeholder slots")
    haproxy_check: bool = Field(True, description="Add servers with health checks (enable health)")
    haproxy_timeout_s: float = Field(2.0, gt=0)
    haproxy_watch_interval_s: float = Field(1.0, gt=0, description="How often a restart or reload is looked for")
    drain_timeout_s: float = Field(60.0, gt=0, description="Longest a server stays in drain before removal")
    reconcile_interval_s: float = Field(30.0, gt=0, description="How often the full reconcile reads every gateway "
                                                                 "and repairs what drifted")
    reconcile_min_gap_s: float = Field(1.0, ge=0, description="Least time between two full reconciles, whatever "
                                                              "asks for them (events are applied meanwhile)")
    allowed_backends: CommaList = Field(
        default_factory=lambda: list(DEFAULT_BACKENDS),
        description="HAProxy backends a deployment record may name, comma separated; a record naming another is "
                    "refused (Redis is not a trust root)")
    allowed_zk_paths: CommaList = Field(
        default_factory=lambda: list(DEFAULT_ZK_PATHS),
        description="ZooKeeper paths a deployment record may name, comma separated: each one and what lies under "
                    "it, within the ensemble's chroot")
    allowed_zk_ensembles: SpaceList = Field(
        default_factory=list,
        description="ZooKeeper ensembles a deployment record may name besides zk_hosts, separated by spaces "
                    "(host:port,...[/chroot]); gateway-sync connects to them with its own credentials")
    grpc_backends: CommaList = Field(
        default_factory=list,
        description="gRPC backends kept beside HTTP ones, comma separated http_backend=grpc_backend pairs (e.g. "
                    "triton_backend=triton_grpc_backend, as deploy/haproxy/haproxy-authz.cfg.tmpl names them): a "
                    "deployment routed to the first also gets its instances' gRPC ports in the second, added with "
                    "`proto h2`; empty = none")
    host: str = Field("127.0.0.1", description="Address of the health and metrics API")
    port: int = Field(8095, ge=0, le=65535)

    @field_validator("haproxy_sockets")
    @classmethod
    def _at_least_one(cls, value: List[str]) -> List[str]:
        if not value:
            raise ValueError("name at least one HAProxy Runtime API address")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// (TLS) or unix://")
        return value

    @field_validator("allowed_backends")
    @classmethod
    def _backends(cls, value: List[str]) -> List[str]:
        return _each(value, backend_problem)

    @field_validator("allowed_zk_paths")
    @classmethod
    def _zk_paths(cls, value: List[str]) -> List[str]:
        return _each(value, zk_path_problem)

    @field_validator("zk_hosts")
    @classmethod
    def _zk_hosts(cls, value: str) -> str:
        _each([value], lambda v: parse_ensemble(v)[1])
        return value

    @field_validator("allowed_zk_ensembles")
    @classmethod
    def _zk_ensembles(cls, value: List[str]) -> List[str]:
        return _each(value, lambda v: parse_ensemble(v)[1])

    @model_validator(mode="after")
    def _grpc_pairs(self) -> "GatewaySyncSettings":
        grpc = self.grpc_backend_of()
        for backend in grpc.values():
            if backend in self.allowed_backends:  # a record naming it would put HTTP servers in an h2 backend
                raise ValueError(f"grpc backend {backend!r} is also in allowed_backends")
        if len(set(grpc.values())) != len(grpc):
            raise ValueError("two HTTP backends share one grpc backend")
        return self

    def grpc_backend_of(self) -> Dict[str, str]:
        """The gRPC backend kept beside each HTTP backend that has one."""
        pairs = {}
        for pair in self.grpc_backends:
            http, sep, grpc = pair.partition("=")
            problem = "" if sep else f"grpc_backends entry {pair!r} is not http_backend=grpc_backend"
            problem = problem or backend_problem(http) or backend_problem(grpc)
            if problem:
                raise ValueError(problem)
            pairs[http] = grpc
        return pairs

    def allowed_ensembles(self) -> List[str]:
        """Every ensemble a record may name: zk_hosts first."""
        return [self.zk_hosts] + [e for e in self.allowed_zk_ensembles if e != self.zk_hosts]

    def zk_auth(self) -> List[tuple]:
        return [("digest", self.zk_digest.get_secret_value())] if self.zk_digest else []

    def zk_sasl_options(self) -> Optional[dict]:
        if not self.zk_sasl_mechanism:
            return None
        options = {"mechanism": self.zk_sasl_mechanism}
        if self.zk_sasl_username:
            options["username"] = self.zk_sasl_username
        if self.zk_sasl_password:
            options["password"] = self.zk_sasl_password.get_secret_value()
        return options


def _each(values: List[str], problem_of) -> List[str]:
    for value in values:
        problem = problem_of(value)
        if problem:
            raise ValueError(problem)
    return values
