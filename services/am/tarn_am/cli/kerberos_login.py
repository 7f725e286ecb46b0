"""`--principal P --keytab K`: how a `tarn` command logs in to a Kerberized cluster.

Without them the commands use the caller's ticket cache (kinit). With them skein's driver
logs in from the keytab, and so does the command's own SPNEGO (the WebHDFS check), into a
ticket cache of the process's own: the caller's cache is left alone."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tarn_shared.kerberos_errors import explained, is_clock_skew

from .am_client import CliError

# A ticket cache in this process's memory, for the tickets got from the keytab.
PROCESS_CCACHE = "MEMORY:tarn-keytab"


@dataclass(frozen=True)
class KeytabLogin:
    principal: str
    keytab: str


def keytab_login(principal: Optional[str], keytab: Optional[str]) -> Optional[KeytabLogin]:
    """The login the flags ask for (None: the ticket cache); a bad pair is a one-line error."""
    if principal is None and keytab is None:
        return None
    if not principal or not keytab:
        raise CliError("--principal and --keytab go together (or neither: the ticket cache from kinit is used)")
    path = Path(keytab).expanduser()
    if not path.is_file():
        raise CliError(f"--keytab {keytab}: no such file")
    if not os.access(path, os.R_OK):
        raise CliError(f"--keytab {keytab}: not readable by this user")
    return KeytabLogin(principal, str(path.resolve()))


def gssapi_credentials(login: KeytabLogin):
    """GSSAPI initiator credentials for ``login`` (MIT's credential store: the keytab as the
    client keytab, tickets in this process's memory). A keytab without the principal's
    key fails here, naming both."""
    import gssapi

    try:
        credentials = gssapi.Credentials(name=gssapi.Name(login.principal, gssapi.NameType.kerberos_principal),
                                         usage="initiate",
                                         store={"client_keytab": login.keytab, "ccache": PROCESS_CCACHE})
        credentials.lifetime  # acquiring is lazy in MIT: ask the KDC now
    except gssapi.exceptions.GSSError as exc:
        if is_clock_skew(str(exc)):
            raise CliError(f"cannot log in as {login.principal}: {explained(str(exc))}") from None
        # MIT says "No credentials cache found" when the keytab lacks the key: name the check.
        raise CliError(f"cannot log in as {login.principal} with --keytab {login.keytab} (does it hold that "
                       f"principal's key? `klist -k {login.keytab}` lists them): {' '.join(str(exc).split())}") from None
    return credentials
