"""tarn-authz's one Settings class: TARN_AUTHZ_* environment variables, plus the seeds'
RANGER_SERVICE, RANGER_APP_ID and RANGER_AUDIT (and their flags, see __main__)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from tarn_shared.settings import TarnSettings

PREFIX = "TARN_AUTHZ_"


def _env(name: str, *seeds: str) -> AliasChoices:
    # An explicit alias turns the env prefix off for the field, so list every spelling.
    return AliasChoices(PREFIX + name.upper(), *seeds, name)


class AuthzSettings(TarnSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", env_file=None, populate_by_name=True)

    # -- what to serve -----------------------------------------------------------------------
    ranger_service: Optional[str] = Field(
        None, validation_alias=_env("ranger_service", "RANGER_SERVICE"),
        description="Ranger service instance answered by default (the seeds' --ranger-service/-rs). "
                    "Services named by deployment records in Redis are served as well.")
    ranger_app_id: str = Field("tarn", validation_alias=_env("ranger_app_id", "RANGER_APP_ID"),
                               description="Ranger application id: the pluginId prefix and the audit 'agent'")
    ranger_audit: bool = Field(False, validation_alias=_env("ranger_audit", "RANGER_AUDIT"),
                               description="Audit decisions (Ranger's AuthzAuditEvent) for the default service")
    serve_deployments: bool = Field(True, description="Also serve every Ranger service named by a deployment "
                                                      "record in Redis (tarn:deployments)")

    # -- where policies come from ------------------------------------------------------------
    ranger_url: Optional[str] = Field(None, description="Ranger Admin base URL (http://host:6080); unset = "
                                                        "read policies from policy_dir only")
    ranger_auth: Literal["none", "basic", "kerberos"] = Field(
        "none", description="none: the plugin download endpoints; basic or kerberos: the secure ones")
    ranger_user: Optional[str] = Field(None, description="Basic-auth user for Ranger Admin")
    ranger_password: Optional[SecretStr] = Field(None, description="Basic-auth password for Ranger Admin")
    ranger_kerberos_principal: Optional[str] = Field(
        None, description="Principal for SPNEGO (a ticket must be in the credential cache, e.g. from kinit -kt)")
    ranger_kerberos_keytab: Optional[Path] = Field(
        None, description="Keytab with ranger_kerberos_principal's key: authz logs in itself, into a ticket "
                          "cache in its own memory (unset: the credential cache)")
    ranger_cluster_name: str = Field("", description="clusterName sent with every download")
    ranger_timeout_s: float = Field(10.0, gt=0)
    ranger_verify_tls: bool = True
    policy_dir: Optional[Path] = Field(
        None, description="Folder with <service>.json (ServicePolicies), <service>_roles.json and "
                          "<service>_userstore.json; the embedded default when ranger_url is unset")
    cache_dir: Path = Field(Path("/var/lib/tarn/authz/policycache"),
                            description="Last good download per service, used at start when Ranger is down")
    refresh_interval_s: float = Field(30.0, gt=0, description="How often policies, roles and users are refreshed")
    deployments_interval_s: float = Field(10.0, gt=0, description="How often deployment records are re-read")
    max_policy_age_s: float = Field(
        3600.0, ge=0, description="Fail closed: once a service's policies in force have gone this many seconds "
                                  "without their source confirming them current (refreshes failing, or policy "
                                  "sets refused), every decision is denied with the reason. 0 = no limit")

    # -- callers -----------------------------------------------------------------------------
    gateway_token: SecretStr = Field(
        ..., description="Token of the trusted callers (HAProxy Lua, Knox provider, the AM): only they may "
                         "name the user (X-TARN-User, X-Knox-Actor-ID, ?user=) and groups (X-TARN-Groups)")
    # `token` (inherited): other callers; they are answered as the anonymous user.

    # -- audit -------------------------------------------------------------------------------
    audit_log: Optional[Path] = Field(
        None, description="JSON-lines file in the format of Ranger's log4j audit destination; unset = none")
    audit_queue_size: int = Field(10_000, ge=1, description="Audit events waiting for Redis (and for HDFS); "
                                                           "beyond it the oldest are dropped and counted")
    audit_hdfs_url: Optional[str] = Field(
        None, description="WebHDFS base URL (http://namenode:9870) of Ranger's HDFS audit destination; unset = none")
    audit_hdfs_dir: str = Field("/ranger/audit", description="xasecure.audit.destination.hdfs.dir: files go to "
                                "<dir>/<ranger_app_id>/<yyyyMMdd>/<ranger_app_id>_ranger_audit_<host>.log")
    audit_hdfs_user: str = Field("ranger", description="The HDFS user writing the audit files (simple auth)")

    # -- HTTP --------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address of the API")
    port: int = Field(8096, ge=0, le=65535)
    spoa_socket: Optional[Path] = Field(
        None, description="Unix socket of the SPOE agent answering HAProxy's access questions over SPOP "
                          "(render_authz.py --authz-spoa-socket). Mode 0660: whoever may connect names the "
                          "user, like the gateway token. Unset = off")

    @field_validator("audit_hdfs_url")
    @classmethod
    def _webhdfs_url(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("is WebHDFS's http:// or https:// base URL (the NameNode's web address)")
        return value.rstrip("/") if value else None

    @field_validator("audit_hdfs_dir")
    @classmethod
    def _absolute_dir(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/"):
            raise ValueError("is an absolute HDFS path without '..'")
        return value.rstrip("/") or "/"

    @field_validator("ranger_service")
    @classmethod
    def _service_name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (not value.strip() or "/" in value):
            raise ValueError("a Ranger service name is non-empty and has no '/'")
        return value.strip() if value else None

    @model_validator(mode="after")
    def _consistent(self) -> "AuthzSettings":
        if self.ranger_url is None and self.policy_dir is None and self.ranger_service is not None:
            raise ValueError("set ranger_url (Ranger Admin) or policy_dir (local policies)")
        if self.ranger_auth == "basic" and (not self.ranger_user or self.ranger_password is None):
            raise ValueError("ranger_auth=basic needs ranger_user and ranger_password")
        if self.ranger_kerberos_keytab is not None and not self.ranger_kerberos_principal:
            raise ValueError("ranger_kerberos_keytab needs ranger_kerberos_principal (the key to log in with)")
        return self

    @property
    def secure_download(self) -> bool:
        return self.ranger_auth != "none"
