"""tarn-am's one adapter to GSSAPI: accept a SPNEGO token (``Authorization: Negotiate ...``)
with the HTTP/<host> key of a keytab, and say whose it is. gssapi is imported only here,
and only when the API is configured for SPNEGO (tarn-am's `kerberos` extra)."""
from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Optional

from tarn_shared.errors import ConfigError


class Rejected(Exception):
    """The token proves nobody (bad, expired, for another service, replayed): a 401."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class SpnegoAcceptor:
    """Accepting credentials from ``keytab`` (MIT's default keytab when None) for ``principal``
    (any key in it when None); a keytab that cannot serve fails here, at start."""

    def __init__(self, keytab: Optional[Path], principal: Optional[str]) -> None:
        try:
            import gssapi
        except ImportError:
            raise ConfigError("TARN_AM_AUTH with spnego needs python-gssapi: pip install 'tarn-am[kerberos]' "
                              "(it builds against libkrb5-dev)") from None
        self._gssapi = gssapi
        store = {"keytab": str(keytab)} if keytab else None
        name = gssapi.Name(principal, gssapi.NameType.kerberos_principal) if principal else None
        try:
            self._credentials = gssapi.Credentials(name=name, usage="accept", store=store)
            # The local realm, for short names (Hadoop's DEFAULT auth_to_local rule): krb5.conf's default.
            probe = gssapi.Name("probe", gssapi.NameType.kerberos_principal).canonicalize(gssapi.MechType.kerberos)
        except gssapi.exceptions.GSSError as exc:
            raise ConfigError(f"TARN_AM_SPNEGO_KEYTAB {keytab or '(KRB5_KTNAME)'} cannot accept SPNEGO as "
                              f"{principal or 'any principal in it'}: {_one_line(exc)}") from None
        self.realm = str(probe).partition("@")[2]

    def accept(self, token_b64: str) -> str:
        """The initiator's full principal (alice@REALM) for one ``Negotiate`` token."""
        try:
            token = base64.b64decode(token_b64, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected("the Negotiate token is not base64") from None
        if not token:
            raise Rejected("the Negotiate header carries no token")
        context = self._gssapi.SecurityContext(creds=self._credentials, usage="accept")
        try:
            context.step(token)
        except self._gssapi.exceptions.GSSError as exc:
            raise Rejected(_one_line(exc)) from None
        if not context.complete:  # Kerberos under SPNEGO takes one round; anything more is not ours
            raise Rejected("the SPNEGO exchange did not complete in one round (not Kerberos?)")
        return str(context.initiator_name)
