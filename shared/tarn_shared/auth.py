"""Token checking for the services' FastAPI apps.

Accepted: ``X-TARN-Token: <token>`` or ``Authorization: Bearer <token>`` (what Prometheus
sends). ``?token=`` leaks into access logs, so it counts only when a setting enables it.
Comparison is constant-time.
"""
from __future__ import annotations

import hmac
from typing import Callable, Optional

from fastapi import HTTPException, Request, status

TOKEN_HEADER = "X-TARN-Token"


def presented_token(request: Request, allow_query: bool = False) -> Optional[str]:
    header = request.headers.get(TOKEN_HEADER)
    if header:
        return header
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if allow_query:
        return request.query_params.get("token") or None
    return None


def token_matches(expected: str, presented: Optional[str]) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def token_dependency(expected: Optional[str], allow_query: bool = False) -> Callable[[Request], None]:
    """A FastAPI dependency enforcing ``expected``; with no token configured it lets all in."""

    def check(request: Request) -> None:
        if expected is None:
            return
        if not token_matches(expected, presented_token(request, allow_query)):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="missing or invalid token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
