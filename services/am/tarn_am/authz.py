"""The adapter to tarn-authz: GET /authorize?model=&action=&user=&service= answers true or false.

The AM asks as a gateway (it names the user), so it presents authz's gateway token, a
credential of its own (TARN_AM_AUTHZ_GATEWAY_TOKEN), never its read token: an AM reader must
not be able to name users at authz. It names the deployment's Ranger service (else the
deployment, whose record authz looks up), never leaving authz to pick a default service."""
from __future__ import annotations

from typing import Optional

import httpx

from tarn_shared.errors import UnavailableError

from .settings import AmSettings

ACTIONS = ("infer", "metadata", "list")
NOT_CONFIGURED = "no authz configured (tarn submit --authz-url): the AM cannot decide"


class AuthzClient:
    def __init__(self, base_url: Optional[str], timeout_s: float = 2.0, token: Optional[str] = None,
                 service: Optional[str] = None, deployment: Optional[str] = None) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        headers = {"X-TARN-Token": token} if token else {}
        self._http = httpx.AsyncClient(timeout=timeout_s, headers=headers, trust_env=False)
        self._scope = {"service": service} if service else {"deployment": deployment} if deployment else {}

    async def close(self) -> None:
        await self._http.aclose()

    async def allowed(self, model: str, action: str, user: Optional[str]) -> bool:
        """authz's decision; with no authz configured the views filter nothing (see decide).
        UnavailableError when authz cannot or will not answer (down, or refusing the AM)."""
        if self.base_url is None:
            return True
        params = {"model": model, "action": action, **self._scope}
        if user:
            params["user"] = user
        try:
            response = await self._http.get(f"{self.base_url}/authorize", params=params)
        except httpx.HTTPError as exc:
            raise UnavailableError(f"authz unreachable at {self.base_url}: {exc}") from None
        if response.status_code != 200:
            raise UnavailableError(refusal(response.status_code, _detail(response)))
        return response.text.strip().lower() == "true"

    async def decide(self, model: str, action: str, user: Optional[str]) -> bool:
        """The answer of the AM's /authorize: fails closed (UnavailableError) without authz."""
        if self.base_url is None:
            raise UnavailableError(NOT_CONFIGURED)
        return await self.allowed(model, action, user)


def authz_client(settings: AmSettings) -> AuthzClient:
    """The AM's client: its gateway credential (not the read token) and its Ranger service."""
    return AuthzClient(settings.authz_url, settings.authz_timeout_s, settings.authz_secret(),
                       service=settings.ranger_service, deployment=settings.deployment)


def refusal(status: int, detail: str) -> str:
    """Why authz gave no decision: its refusals are the AM's misconfiguration, never a "false"."""
    if status in (401, 403):
        return (f"authz refused the AM's credential ({status}: {detail}): set TARN_AM_AUTHZ_GATEWAY_TOKEN "
                "(tarn submit --authz-gateway-token) to tarn-authz's gateway token")
    return f"authz answered {status}: {detail}"


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail or response.text.strip() or response.reason_phrase)[:200]
