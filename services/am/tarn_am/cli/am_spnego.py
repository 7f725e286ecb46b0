"""`tarn submit --am-auth spnego|token+spnego`: Kerberos (SPNEGO) on tarn-am's API and dashboard.

The flags become tarn-am's TARN_AM_AUTH, _SPNEGO_KEYTAB, _SPNEGO_PRINCIPAL, _OWNER, _ADMINS and
_VIEWERS (settings.py). The HTTP keytab travels as the token renewal's --keytab does (am_keytab
on that branch): a file of the master only, staged in the submitter's private directory,
localized by YARN and made 0400 before tarn-am starts; the Triton containers never get it.
``HTTP/_HOST`` becomes the AM's host in tarn-am (api_auth.server_principal), as in Hadoop."""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

import skein

from tarn_shared.errors import ConfigError

from .am_keytab import ship_krb5_conf
from .kerberos_login import KeytabLogin

FIELDS = ("am_auth", "am_spnego_keytab", "am_spnego_principal", "am_admins", "am_viewers")
HTTP_KEYTAB_FILE = "tarn-am-http.keytab"
DEFAULT_PRINCIPAL = "HTTP/_HOST"
SHORT_NAME = re.compile(r"\A(\*|[A-Za-z0-9_][A-Za-z0-9_.-]*)\Z")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Kerberos on tarn-am's API and dashboard (SPNEGO)")
    group.add_argument("--am-auth", choices=["token", "spnego", "token+spnego"],
                       help="how API callers authenticate: the token (default), a Kerberos ticket, or either")
    group.add_argument("--am-spnego-keytab", metavar="FILE",
                       help="keytab (local or hdfs://) with the HTTP/<host> key; shipped to tarn-am only, mode 0400")
    group.add_argument("--am-spnego-principal", metavar="PRINCIPAL",
                       help=f"the principal tarn-am accepts tickets for (default {DEFAULT_PRINCIPAL}: _HOST "
                            "becomes the AM's host, as in Hadoop)")
    group.add_argument("--am-admins", metavar="USER,...", help="short names that may read and change the "
                                                               "deployment besides its owner (the submitter)")
    group.add_argument("--am-viewers", metavar="USER,...", help="short names that may read it; * for every user")


@dataclass(frozen=True)
class AmAuth:
    mode: str = "token"
    keytab: Optional[str] = None  # a local path (resolved) or an hdfs:// URI
    principal: str = DEFAULT_PRINCIPAL
    owner: Optional[str] = None  # None: tarn-am's default, the container's USER
    admins: Tuple[str, ...] = ()
    viewers: Tuple[str, ...] = ()


def names(text: Optional[str]) -> Tuple[str, ...]:
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def owner_of(login: Optional[KeytabLogin]) -> Optional[str]:
    """The submitting principal's short name (alice/admin@REALM: alice, Hadoop's DEFAULT rule)."""
    return login.principal.partition("@")[0].split("/", 1)[0] if login else None


def problems(mode: str, keytab: Optional[str], principal: Optional[str], admins: Sequence[str],
             viewers: Sequence[str]) -> List[str]:
    """What is wrong with the flags, each named; pure (the keytab's content is checked apart)."""
    found = []
    spnego = mode != "token"
    if spnego and not keytab:
        found.append(f"--am-auth {mode} needs --am-spnego-keytab FILE (the HTTP/<host> key tarn-am accepts "
                     "tickets with)")
    if not spnego:
        given = [flag for flag, value in (("--am-spnego-keytab", keytab), ("--am-spnego-principal", principal),
                                          ("--am-admins", admins), ("--am-viewers", viewers)) if value]
        if given:
            found.append(f"{', '.join(given)} only apply with --am-auth spnego or token+spnego")
    if principal is not None and not re.match(r"\AHTTP/[^/@\s]+(@[^/@\s]+)?\Z", principal):
        found.append(f"--am-spnego-principal {principal!r}: use HTTP/<host>[@REALM] (SPNEGO clients ask for "
                     f"HTTP/ and the host they reach), e.g. {DEFAULT_PRINCIPAL}")
    for flag, listed in (("--am-admins", admins), ("--am-viewers", viewers)):
        bad = [n for n in listed if not SHORT_NAME.match(n) or (n == "*" and flag == "--am-admins")]
        if bad:
            found.append(f"{flag} {','.join(bad)}: use short names (bob, not bob@REALM)"
                         + ("" if flag == "--am-admins" else " or *"))
    if keytab and "://" not in keytab:
        path = Path(keytab).expanduser()
        if not path.is_file():
            found.append(f"--am-spnego-keytab {keytab}: no such file")
        elif not os.access(path, os.R_OK):
            found.append(f"--am-spnego-keytab {keytab}: not readable by this user")
    elif keytab and not keytab.startswith("hdfs://"):
        found.append(f"--am-spnego-keytab {keytab}: give a local file or an hdfs:// URI")
    return found


def keytab_problem(keytab: str, principal: str) -> Optional[str]:
    """Whether the local ``keytab`` holds ``principal``'s key (GSSAPI reads the keytab only, no
    KDC); None when it does or when this cannot be told here (_HOST, hdfs://, no python-gssapi)."""
    if "_HOST" in principal or "://" in keytab:
        return None  # the AM's host is known only there: tarn-am checks at start
    try:
        import gssapi
    except ImportError:
        return None
    try:
        gssapi.Credentials(name=gssapi.Name(principal, gssapi.NameType.kerberos_principal), usage="accept",
                           store={"keytab": str(Path(keytab).expanduser())})
    except gssapi.exceptions.GSSError as exc:
        return (f"--am-spnego-keytab {keytab} does not hold {principal}'s key (`klist -k {keytab}` lists "
                f"them): {' '.join(str(exc).split())}")
    return None


def am_auth_from(args: argparse.Namespace, login: Optional[KeytabLogin]) -> AmAuth:
    """The flags, checked; every problem in one line (a ConfigError: exit 2)."""
    mode = args.am_auth or "token"
    admins, viewers = names(args.am_admins), names(args.am_viewers)
    found = problems(mode, args.am_spnego_keytab, args.am_spnego_principal, admins, viewers)
    principal = args.am_spnego_principal or DEFAULT_PRINCIPAL
    if not found and mode != "token":
        found = [p for p in [keytab_problem(args.am_spnego_keytab, principal)] if p]
    if found:
        raise ConfigError("invalid submit options: " + "; ".join(found))
    if mode == "token":
        return AmAuth()
    keytab = args.am_spnego_keytab
    if "://" not in keytab:
        keytab = str(Path(keytab).expanduser().resolve())
    return AmAuth(mode, keytab, principal, owner_of(login), admins, viewers)


def apply(spec: skein.ApplicationSpec, auth: AmAuth, environ: Mapping[str, str]) -> None:
    """The settings into the master's environment and the keytab into its files only."""
    if auth.mode == "token":
        return
    master = spec.master
    master.files[HTTP_KEYTAB_FILE] = skein.File(source=auth.keytab)
    master.env.update({"TARN_AM_AUTH": auth.mode, "TARN_AM_SPNEGO_KEYTAB": HTTP_KEYTAB_FILE,
                       "TARN_AM_SPNEGO_PRINCIPAL": auth.principal, "TARN_AM_ADMINS": ",".join(auth.admins),
                       "TARN_AM_VIEWERS": ",".join(auth.viewers)})
    if auth.owner:
        master.env["TARN_AM_OWNER"] = auth.owner
    ship_krb5_conf(master, environ)  # the realm the acceptor reads
    # YARN localizes a private file 0500; the key needs no execute bit (and tarn-am only reads it).
    master.script = f"chmod 0400 {HTTP_KEYTAB_FILE}\n" + master.script
