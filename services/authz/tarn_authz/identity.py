"""Who is asking, and about whom.

Two kinds of caller, told apart by the token they present (``X-TARN-Token`` or
``Authorization: Bearer``):

- **trusted** (the gateway token, ``TARN_AUTHZ_GATEWAY_TOKEN``): the enforcement points
  (HAProxy's Lua action, the Knox provider, the AM). They authenticated the end user
  themselves, so they name the user: the ``user`` parameter, else ``X-TARN-User``, else
  Knox's ``X-Knox-Actor-ID``; and may add groups with ``X-TARN-Groups`` (comma separated)
  to those the Ranger user store gives.
- **plain** (``TARN_AUTHZ_TOKEN``, or anyone when it is unset): may ask, but only as the
  anonymous user (no user, no groups: only policies for the group ``public`` can allow).
  Naming a user or groups without the gateway token is refused with 403, never silently
  ignored, so a misconfigured gateway is noticed at once.

Any other token is a 401.

The client address audited (``cliIP``) is the end client's: a trusted gateway names it in
``X-Forwarded-For`` (the last entry: the one the gateway itself added); anyone else's
header is ignored and the connection's peer address is used.
"""
from __future__ import annotations

import ipaddress
from typing import NamedTuple, Optional

from fastapi import HTTPException, Request, status

from tarn_shared.auth import presented_token, token_matches

from .settings import AuthzSettings

USER_HEADER = "x-tarn-user"
KNOX_ACTOR_HEADER = "x-knox-actor-id"
GROUPS_HEADER = "x-tarn-groups"
FORWARDED_FOR_HEADER = "x-forwarded-for"
MAX_NAME = 256


class Identity(NamedTuple):
    trusted: bool
    user: Optional[str]
    groups: frozenset


class CallerCheck:
    """Classifies callers once per request; built from the settings once."""

    def __init__(self, settings: AuthzSettings) -> None:
        self._gateway = settings.gateway_token.get_secret_value()
        self._plain = settings.token.get_secret_value() if settings.token else None
        self._allow_query = settings.allow_query_token

    def trusted(self, request: Request) -> bool:
        presented = presented_token(request, self._allow_query)
        if presented is not None and token_matches(self._gateway, presented):
            return True
        if self._plain is None or token_matches(self._plain, presented):
            return False
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid token",
                            headers={"WWW-Authenticate": "Bearer"})

    def identity(self, request: Request, user_param: Optional[str] = None,
                 body_user: Optional[str] = None, body_groups: tuple = ()) -> Identity:
        trusted = self.trusted(request)
        headers = request.headers
        user = user_param or body_user or headers.get(USER_HEADER) or headers.get(KNOX_ACTOR_HEADER) or None
        group_header = headers.get(GROUPS_HEADER)
        if not trusted:
            if user is not None or group_header or body_groups:
                raise HTTPException(status.HTTP_403_FORBIDDEN,
                                    "only callers holding the gateway token may name the user or groups")
            return Identity(False, None, frozenset())
        groups = frozenset(g.strip() for g in (group_header or "").split(",") if g.strip()) | frozenset(body_groups)
        if user is not None:
            user = user.strip() or None
        if user is not None and len(user) > MAX_NAME:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"user name longer than {MAX_NAME} characters")
        return Identity(True, user, groups)


def client_address(request: Request, identity: Identity) -> Optional[str]:
    """The end client's address for the audit: what a trusted gateway forwarded, else the peer."""
    peer = request.client.host if request.client else None
    if not identity.trusted:
        return peer
    forwarded = request.headers.get(FORWARDED_FOR_HEADER, "").rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(forwarded))
    except ValueError:
        return peer
