"""The adapter to tarn-authz: GET /authorize?model=&action=&user= answers true or false."""
from __future__ import annotations

from typing import Optional

import httpx

from tarn_shared.errors import UnavailableError

ACTIONS = ("infer", "metadata", "list")


class AuthzClient:
    def __init__(self, base_url: Optional[str], timeout_s: float = 2.0, token: Optional[str] = None) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        headers = {"X-TARN-Token": token} if token else {}
        self._http = httpx.AsyncClient(timeout=timeout_s, headers=headers, trust_env=False)

    async def close(self) -> None:
        await self._http.aclose()

    async def allowed(self, model: str, action: str, user: Optional[str]) -> bool:
        """authz's decision; with no authz configured nothing is filtered (no Ranger service)."""
        if self.base_url is None:
            return True
        params = {"model": model, "action": action}
        if user:
            params["user"] = user
        headers = {"X-TARN-User": user} if user else {}
        try:
            response = await self._http.get(f"{self.base_url}/authorize", params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise UnavailableError(f"authz unreachable at {self.base_url}: {exc}") from None
        if response.status_code >= 500:
            raise UnavailableError(f"authz answered {response.status_code}")
        if response.status_code != 200:
            return False  # a refused or malformed question is a denial (fail closed)
        return response.text.strip().lower() == "true"
