"""The one adapter to Ranger Admin: the plugin download endpoints a Ranger plugin polls.

Policies ``/service/plugins/policies/download/{service}`` (``lastKnownVersion``), roles
``/service/roles/download/{service}`` (``lastKnownRoleVersion``) and the user store
``/service/xusers/download/{service}`` (``lastKnownUserStoreVersion``), and their
``secure`` variants used with basic or Kerberos (SPNEGO) authentication, exactly as
Ranger's RangerAdminRESTClient calls them: with ``lastActivationTime``, ``pluginId``
(``<appId>@<host>-<service>``) and ``clusterName``. 304 (or 204) means unchanged.
httpx and library errors become the project's error types here and nowhere else.
"""
from __future__ import annotations

import json
import socket
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


def _auth(settings: AuthzSettings) -> Optional[httpx.Auth]:
    if settings.ranger_auth == "basic":
        return httpx.BasicAuth(settings.ranger_user or "", settings.ranger_password.get_secret_value()
                               if settings.ranger_password else "")
    if settings.ranger_auth == "kerberos":
        # Not exercised by the tests: there is no KDC on these machines.
        import gssapi
        from httpx_gssapi import OPTIONAL, HTTPSPNEGOAuth

        principal = settings.ranger_kerberos_principal
        creds = None
        if principal:
            name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
            creds = gssapi.Credentials(name=name, usage="initiate")
        return HTTPSPNEGOAuth(creds=creds, mutual_authentication=OPTIONAL)
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
