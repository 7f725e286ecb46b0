"""HTTP from the `tarn` commands to a deployment's tarn-am: the token (--token, TARN_TOKEN),
and SPNEGO with the caller's Kerberos ticket (kinit) or --principal/--keytab's, which tarn-am
asks for with a 401 ``WWW-Authenticate: Negotiate`` when its API wants Kerberos (TARN_AM_AUTH).
Every refusal becomes one line; a 401 says what to fix."""
from __future__ import annotations

from typing import Optional

import httpx

from .am_client import CliError
from .kerberos_login import KeytabLogin, gssapi_credentials
from .webhdfs import spnego_auth


def am_http(token: Optional[str], login: Optional[KeytabLogin] = None) -> httpx.Client:
    headers = {"X-TARN-Token": token} if token else {}
    # httpx-gssapi answers a Negotiate challenge only: a token-only tarn-am never sees a ticket.
    try:
        import httpx_gssapi  # noqa: F401 (the kerberos extra)
    except ImportError:
        auth = None
    else:
        auth = spnego_auth(gssapi_credentials(login) if login else None)
    return httpx.Client(timeout=15.0, headers=headers, auth=auth, trust_env=False)


def checked(response: httpx.Response) -> httpx.Response:
    if response.status_code < 400:
        return response
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text
    where = f"{response.request.method} {response.request.url.path}"
    challenge = response.headers.get("www-authenticate", "")
    if response.status_code == 401 and "negotiate" in challenge.lower():
        raise CliError(f"{where}: 401 {unauthenticated(response.request, 'bearer' in challenge.lower(), detail)}")
    raise CliError(f"{where}: {response.status_code} {detail}")


def unauthenticated(request: httpx.Request, token_offered: bool, detail: str) -> str:
    """tarn-am wants Kerberos: whether a ticket was sent decides the fix."""
    host = request.url.netloc.decode()
    if request.headers.get("Authorization", "").lower().startswith("negotiate "):
        return f"tarn-am at {host} refused the Kerberos ticket: {detail}"
    token = ", or set TARN_TOKEN" if token_offered else ""
    try:
        import httpx_gssapi  # noqa: F401
    except ImportError:
        return (f"tarn-am at {host} wants a Kerberos ticket (SPNEGO), which needs httpx-gssapi: "
                f"pip install 'tarn-am[kerberos]'{token}")
    return (f"tarn-am at {host} wants a Kerberos ticket (SPNEGO) and there is none: run kinit, or give "
            f"--principal and --keytab{token}")
