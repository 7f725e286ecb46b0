"""The one adapter to Ranger Admin: the plugin download endpoints a Ranger plugin polls.

Policies ``/service/plugins/policies/download/{service}`` (``lastKnownVersion``), roles
``/service/roles/download/{service}`` (``lastKnownRoleVersion``) and the user store
``/service/xusers/download/{service}`` (``lastKnownUserStoreVersion``), and their
``secure`` variants used with basic or Kerberos (SPNEGO, authz's own keytab) authentication, exactly as
Ranger's RangerAdminRESTClient calls them: with ``lastActivationTime``, ``pluginId``
(``<appId>@<host>-<service>``) and ``clusterName``. 304 (or 204) means unchanged.
httpx and library errors become the project's error types here and nowhere else.
"""
from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Optional, Type, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from tarn_shared.errors import AuthError, TarnError, UnavailableError

from .ranger.models import RangerModel, RangerRoles, RangerUserStore, ServicePolicies
from .settings import AuthzSettings

M = TypeVar("M", bound=RangerModel)

MAX_PLUGIN_ID_LEN = 255
POLICIES = ("/service/plugins/policies/download/", "/service/plugins/secure/policies/download/",
            "lastKnownVersion")
ROLES = ("/service/roles/download/", "/service/roles/secure/download/", "lastKnownRoleVersion")
USER_STORE = ("/service/xusers/download/", "/service/xusers/secure/download/", "lastKnownUserStoreVersion")


class ServiceNotFound(TarnError):
    """Ranger Admin has no service of that name (404)."""


class MalformedPolicies(TarnError):
    """A download or file that is not valid JSON in Ranger's format."""


def plugin_id(app_id: str, service: str, host: Optional[str] = None) -> str:
    """RangerRESTUtils.getPluginId: ``<appId>@<hostname>-<service>``, at most 255 characters."""
    value = f"{host or socket.gethostname()}-{service}"
    if app_id:
        value = f"{app_id}@{value}"
    return value[:MAX_PLUGIN_ID_LEN]


def parse(model: Type[M], raw: bytes | str, what: str) -> M:
    """Ranger JSON into its model; anything else is a MalformedPolicies naming the problem."""
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPolicies(f"{what} is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedPolicies(f"{what} is not a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise MalformedPolicies(f"{what} is not a valid {model.__name__}: {where}: {first.get('msg')} "
                                f"({exc.error_count()} problem(s))") from None


class KerberosAuth(httpx.Auth):
    """SPNEGO as authz's principal: with ``keytab``, its key logs in into a ticket cache in this
    process's memory (MIT's client keytab, renewed from it as tickets expire); without, the
    credential cache (kinit). A login that fails fails the download with an AuthError naming the
    keytab, so the refresh keeps the last good policies."""

    def __init__(self, principal: Optional[str], keytab: Optional[Path]) -> None:
        self.principal = principal
        self.keytab = keytab
        # The tickets from this keytab, in this process's memory: one cache per login, so a cache
        # filled by one keytab never stands in for another.
        self.ccache = "MEMORY:tarn-authz-" + hashlib.sha256(f"{principal}\0{keytab}".encode()).hexdigest()[:16]

    def auth_flow(self, request: httpx.Request):
        from httpx_gssapi import OPTIONAL, HTTPSPNEGOAuth

        yield from HTTPSPNEGOAuth(creds=self.credentials(), mutual_authentication=OPTIONAL).auth_flow(request)

    def credentials(self):
        import gssapi

        who = self.principal or "the cache's default principal"
        if self.keytab is not None and not self.keytab.is_file():
            raise AuthError(f"cannot log in to Kerberos as {who}: TARN_AUTHZ_RANGER_KERBEROS_KEYTAB "
                            f"{self.keytab}: no such file")
        name = gssapi.Name(self.principal, gssapi.NameType.kerberos_principal) if self.principal else None
        store = {"client_keytab": str(self.keytab), "ccache": self.ccache} if self.keytab else None
        try:
            credentials = gssapi.Credentials(name=name, usage="initiate", store=store)
            credentials.lifetime  # MIT acquires lazily: log in now, so a bad keytab is named here
        except gssapi.exceptions.GSSError as exc:
            where = (f"TARN_AUTHZ_RANGER_KERBEROS_KEYTAB {self.keytab} (does it hold {who}'s key? `klist -k` "
                     "lists them)" if self.keytab else "the credential cache (kinit -kt, or set "
                     "TARN_AUTHZ_RANGER_KERBEROS_KEYTAB)")
            raise AuthError(f"cannot log in to Kerberos as {who} with {where}: {' '.join(str(exc).split())}") from None
        return credentials


def _auth(settings: AuthzSettings) -> Optional[httpx.Auth]:
    if settings.ranger_auth == "basic":
        return httpx.BasicAuth(settings.ranger_user or "", settings.ranger_password.get_secret_value()
                               if settings.ranger_password else "")
    if settings.ranger_auth == "kerberos":
        return KerberosAuth(settings.ranger_kerberos_principal, settings.ranger_kerberos_keytab)
    return None


class RangerAdminClient:
    """Conditional downloads for one Ranger service; ``None`` from a fetch means unchanged."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, service: str, *, app_id: str,
                 cluster_name: str = "", secure: bool = False, host: Optional[str] = None) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self.service = service
        self.secure = secure
        self.plugin_id = plugin_id(app_id, service, host)
        self.cluster_name = cluster_name

    @classmethod
    def open_http(cls, settings: AuthzSettings) -> httpx.AsyncClient:
        return httpx.AsyncClient(auth=_auth(settings), timeout=settings.ranger_timeout_s,
                                 verify=settings.ranger_verify_tls, follow_redirects=False,
                                 headers={"Accept": "application/json"})

    async def policies(self, last_known_version: int, last_activation_ms: int) -> Optional[ServicePolicies]:
        return await self._download(POLICIES, ServicePolicies, last_known_version, last_activation_ms,
                                    supportsPolicyDeltas="false")

    async def roles(self, last_known_version: int, last_activation_ms: int) -> Optional[RangerRoles]:
        return await self._download(ROLES, RangerRoles, last_known_version, last_activation_ms)

    async def user_store(self, last_known_version: int, last_activation_ms: int) -> Optional[RangerUserStore]:
        return await self._download(USER_STORE, RangerUserStore, last_known_version, last_activation_ms)

    async def _download(self, endpoint: tuple, model: Type[M], last_known_version: int, last_activation_ms: int,
                        **extra: str) -> Optional[M]:
        plain, secure, version_param = endpoint
        path = (secure if self.secure else plain) + quote(self.service, safe="")
        params = {version_param: str(last_known_version), "lastActivationTime": str(last_activation_ms),
                  "pluginId": self.plugin_id, "clusterName": self.cluster_name, **extra}
        what = f"{model.__name__} of {self.service!r} from {self._base}{path}"
        try:
            response = await self._client.get(self._base + path, params=params)
        except httpx.HTTPError as exc:
            raise UnavailableError(f"Ranger Admin unreachable ({what}): {exc!r}") from None
        status = response.status_code
        if status in (304, 204):
            return None
        if status == 200:
            return parse(model, response.content, what)
        if status == 404:
            raise ServiceNotFound(f"Ranger Admin has no service {self.service!r} ({what}): {response.text[:200]}")
        if status in (401, 403):
            raise AuthError(f"Ranger Admin refused the download ({status}, {what}); check ranger_auth and "
                            f"the service's policy.download.auth.users")
        raise UnavailableError(f"Ranger Admin answered {status} ({what}): {response.text[:200]}")
