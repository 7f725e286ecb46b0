"""A replay server for Ranger Admin's plugin download endpoints.

Ranger Admin cannot be run on these machines (it ships as source releases and Docker
images only), so tarn-authz's download client is tested against this small, real HTTP
server instead. It replays payloads that Ranger's own Java classes wrote (see
make_payloads.py) and reproduces the HTTP behaviour of Ranger's ServiceREST / RoleREST /
XUserREST download endpoints that a plugin depends on:

- ``GET /service/plugins/policies/download/{service}`` (``lastKnownVersion``),
  ``/service/roles/download/{service}`` (``lastKnownRoleVersion``),
  ``/service/xusers/download/{service}`` (``lastKnownUserStoreVersion``) and the
  ``secure`` variants (``/service/plugins/secure/policies/download/``,
  ``/service/roles/secure/download/``, ``/service/xusers/secure/download/``);
- 200 with the payload when the caller's version differs, 304 when it is the current one;
- 404 for a service Ranger does not know;
- the secure variants need authentication: 401 with ``WWW-Authenticate`` without valid
  basic credentials; or, behind the SPNEGO front (spnego/SpnegoFront.java: Hadoop's
  AuthenticationFilter, as in Ranger Admin), the user it authenticated, which must be one of
  ``download_users`` (Ranger's ``policy.download.auth.users``) or gets 403.

Every request is recorded so tests can check the parameters a plugin sends
(``pluginId``, ``clusterName``, ``lastActivationTime``).
"""
from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Dict, List, Optional

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PAYLOADS = Path(__file__).resolve().parent / "payloads"
REMOTE_USER = "X-Ranger-Remote-User"  # set by the SPNEGO front

KINDS = {  # kind: (payload file, version field, version parameter)
    "policies": ("policies.json", "policyVersion", "lastKnownVersion"),
    "roles": ("roles.json", "roleVersion", "lastKnownRoleVersion"),
    "users": ("userstore.json", "userStoreVersion", "lastKnownUserStoreVersion"),
}


class RangerReplay:
    def __init__(self, user: str = "rangeradmin", password: str = "s3cret",
                 download_users: Optional[set] = None) -> None:
        self.credentials = (user, password)
        self.download_users = download_users  # set: behind the SPNEGO front, which names the caller
        self.current: Dict[str, Path] = {}  # service -> folder with the current version's payloads
        self.requests: List[dict] = []
        self.broken: Optional[bytes] = None  # when set, answered instead of the policies (a corrupt download)

    def publish(self, service: str, version: str) -> None:
        """Make payloads/<service>/<version>/ the current state of the service."""
        self.current[service] = PAYLOADS / service / version

    def app(self) -> Starlette:
        routes = []
        for kind, plain, secure in (("policies", "/service/plugins/policies/download/{service}",
                                     "/service/plugins/secure/policies/download/{service}"),
                                    ("roles", "/service/roles/download/{service}",
                                     "/service/roles/secure/download/{service}"),
                                    ("users", "/service/xusers/download/{service}",
                                     "/service/xusers/secure/download/{service}")):
            routes.append(Route(plain, self._handler(kind, secure=False)))
            routes.append(Route(secure, self._handler(kind, secure=True)))
        return Starlette(routes=routes)

    def _authenticated(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) == self.credentials

    def _handler(self, kind: str, secure: bool):
        file_name, version_field, version_param = KINDS[kind]

        async def handle(request: Request) -> Response:
            service = request.path_params["service"]
            remote_user = request.headers.get(REMOTE_USER)
            self.requests.append({"kind": kind, "secure": secure, "service": service,
                                  "params": dict(request.query_params), "remote_user": remote_user})
            if secure and self.download_users is not None:
                if remote_user is None:  # the front let it through unauthenticated: never
                    return Response(status_code=401)
                if remote_user not in self.download_users:
                    return JSONResponse({"statusCode": 1, "msgDesc": f"User {remote_user} is not allowed to "
                                         "download policies"}, status_code=403)
            elif secure and not self._authenticated(request):
                return Response(status_code=401, headers={"WWW-Authenticate": 'Basic realm="Ranger"'})
            folder = self.current.get(service)
            if folder is None:
                return JSONResponse({"statusCode": 1, "msgDesc": f"Service:{service} not found"}, status_code=404)
            if kind == "policies" and self.broken is not None:
                return Response(self.broken, media_type="application/json")
            path = folder / file_name
            body = path.read_bytes()
            current = json.loads(body).get(version_field)
            known = request.query_params.get(version_param, "-1")
            if current is not None and known == str(current):
                return Response(status_code=304)
            return Response(body, media_type="application/json")

        return handle
