"""Who may call tarn-am's API: the token (tarn_shared.auth), a Kerberos ticket over SPNEGO,
or either (TARN_AM_AUTH). A SPNEGO caller is known by the short name of its principal, and
may read the deployment when it is the owner, an admin or a viewer, and change it (/scale,
/autoscale, /stop) when it is the owner or an admin, as YARN's VIEW_APP and MODIFY_APP ACLs
do. A token holder is trusted as before: the token is the deployment's shared secret."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, FrozenSet, Optional, Tuple

from fastapi import HTTPException, Request, status

from tarn_shared.auth import presented_token, token_matches

from .settings import AmSettings
from .spnego_acceptor import Rejected, SpnegoAcceptor

log = logging.getLogger(__name__)
Check = Callable[[Request], None]


def short_name(principal: str, realm: str) -> str:
    """Hadoop's DEFAULT auth_to_local rule: alice@REALM and alice/host@REALM are alice in the
    local realm; a principal of another realm keeps its whole name (it matches no short name)."""
    name, at, principal_realm = principal.rpartition("@")
    if not at:
        name, principal_realm = principal, realm
    return name.split("/", 1)[0] if principal_realm == realm else principal


@dataclass(frozen=True)
class Access:
    """The deployment's ACL for SPNEGO callers."""

    owner: Optional[str]
    admins: FrozenSet[str] = frozenset()
    viewers: FrozenSet[str] = frozenset()  # "*": every authenticated user

    def allows(self, user: str, change: bool) -> bool:
        if user == self.owner or user in self.admins:
            return True
        return not change and ("*" in self.viewers or user in self.viewers)

    def who_may(self, change: bool) -> str:
        def names(group) -> str:
            return ", ".join(sorted(group)) or "none"

        listed = [f"its owner ({self.owner or 'none'})", f"admins ({names(self.admins)})"]
        settings = ["TARN_AM_OWNER", "TARN_AM_ADMINS"]
        if not change:
            listed.append(f"viewers ({names(self.viewers)})")
            settings.append("TARN_AM_VIEWERS")
        return f"only {', '.join(listed[:-1])} and {listed[-1]} may; see {', '.join(settings)}"


def caller(request: Request) -> Optional[str]:
    """The SPNEGO-authenticated caller's short name; None for a token holder or an open API."""
    return getattr(request.state, "tarn_user", None)


def let_in(request: Request) -> None:
    """The check of an open API (annotated: FastAPI would read a bare parameter as a query)."""


def challenge(tokens: bool, spnego: bool) -> str:
    return ", ".join(scheme for scheme, on in (("Negotiate", spnego), ("Bearer", tokens)) if on)


def api_guard(secret: Optional[str], allow_query: bool, tokens: bool, acceptor: Optional[SpnegoAcceptor],
              access: Access, change: bool) -> Check:
    """A FastAPI dependency: the token (when ``tokens``) or SPNEGO (with ``acceptor``) gets in."""
    if acceptor is None and (not tokens or secret is None):
        return let_in  # token mode without a token: open, as it always was

    def check(request: Request) -> None:
        if tokens and secret is not None and token_matches(secret, presented_token(request, allow_query)):
            return
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if acceptor is None or scheme.lower() != "negotiate":
            what = "a Kerberos ticket (SPNEGO)" if acceptor is not None else "a token"
            raise _unauthorized(f"missing or invalid {'token or ' if tokens and acceptor else ''}{what}",
                                tokens and secret is not None, acceptor is not None)
        try:
            principal = acceptor.accept(value.strip())
        except Rejected as exc:
            raise _unauthorized(f"Kerberos (SPNEGO) refused: {exc}", tokens and secret is not None, True) from None
        user = short_name(principal, acceptor.realm)
        if not access.allows(user, change):
            log.warning("API call refused", extra={"principal": principal, "user": user,
                                                   "path": request.url.path, "change": change})
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"{user} ({principal}) may not {'change' if change else 'read'} this "
                                       f"deployment: {access.who_may(change)}")
        request.state.tarn_user = user

    return check


def _unauthorized(detail: str, tokens: bool, spnego: bool) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail,
                         headers={"WWW-Authenticate": challenge(tokens, spnego)})


def api_guards(settings: AmSettings) -> Tuple[Check, Check, Check]:
    """(reads, changes, the dashboard page) for ``settings``; a keytab that cannot serve fails here."""
    spnego = settings.auth in ("spnego", "token+spnego")
    tokens = settings.auth in ("token", "token+spnego")
    acceptor = SpnegoAcceptor(settings.spnego_keytab, settings.spnego_principal) if spnego else None
    access = Access(settings.owner, frozenset(settings.admins), frozenset(settings.viewers))
    read = api_guard(settings.read_secret(), settings.allow_query_token, tokens, acceptor, access, change=False)
    admin = api_guard(settings.admin_secret(), settings.allow_query_token, tokens, acceptor, access, change=True)
    # The page holds no data: open unless the API is SPNEGO only (the browser negotiates, then fetches).
    page = read if settings.auth == "spnego" else let_in
    return read, admin, page
