"""gateway-sync's Kerberos login for ZooKeeper's SASL/GSSAPI, checked before it serves and
when ZooKeeper refuses it. kazoo reports a failed SASL login only as AUTH_FAILED ("Unknown
error") and then stops connecting: without this a replica with no ticket or the wrong keytab
stays standby for ever. The verdict is pure; ``kerberos_login`` is the one call to GSSAPI."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

# MIT krb5 error codes (krb5_err.et, signed): what each says to fix.
KDC_UNREACHABLE = -1765328228  # KRB5_KDC_UNREACH: the KDC is down, gateway-sync is not misconfigured
HINTS = {
    -1765328360: "the keytab's keys are not the principal's current ones: export the keytab again",  # PREAUTH_FAILED
    -1765328353: "the keytab's keys are not the principal's current ones: export the keytab again",  # BAD_INTEGRITY
    -1765328347: "this host's clock and the KDC's differ by more than the allowed skew: sync the clock",  # SKEW
}
FIX = "set KRB5_CLIENT_KTNAME to gateway-sync's keytab (or KRB5CCNAME to a ticket cache that kinit filled)"


@dataclass(frozen=True)
class Login:
    """What GSSAPI said: the principal logged in as, or the error (MIT's minor status)."""
    principal: Optional[str] = None
    error: Optional[str] = None
    error_code: int = 0


@dataclass(frozen=True)
class LoginProblem:
    message: str
    fatal: bool  # a configuration to fix; otherwise (the KDC unreachable) retrying may help


def sasl_writers(acl_specs: Sequence[str]) -> List[str]:
    """The principals zk_acl lets create or write znodes (``sasl:PRINCIPAL:perms``)."""
    writers = []
    for spec in acl_specs:
        scheme, _, rest = spec.partition(":")
        principal, _, perms = rest.rpartition(":")
        if scheme == "sasl" and set(perms) & {"c", "w"}:
            writers.append(principal)
    return writers


def login_problem(hosts: str, login: Login, writers: Sequence[str],
                  environ: Mapping[str, str] = os.environ) -> Optional[LoginProblem]:
    where = (f"KRB5_CLIENT_KTNAME={environ.get('KRB5_CLIENT_KTNAME') or 'unset'}, "
             f"KRB5CCNAME={environ.get('KRB5CCNAME') or 'unset'}")
    head = f"cannot log in to ZooKeeper at {hosts} with SASL GSSAPI"
    if login.error is not None:
        if login.error_code == KDC_UNREACHABLE:
            return LoginProblem(f"{head}: {login.error}; retrying until the KDC answers", fatal=False)
        hint = HINTS.get(login.error_code, FIX)
        return LoginProblem(f"{head}: Kerberos says: {login.error} ({where}); {hint}", fatal=True)
    if writers and login.principal not in writers:
        return LoginProblem(f"{head} as zk_acl expects: gateway-sync logs in as {login.principal} ({where}), but "
                            f"zk_acl lets only {', '.join(writers)} write its znodes; {FIX}", fatal=True)
    return None


def check(hosts: str, mechanism: Optional[str], acl_specs: Sequence[str]) -> Optional[LoginProblem]:
    """Before serving: a GSSAPI replica's login, as ZooKeeper will see it."""
    if mechanism != "GSSAPI":
        return None
    return login_problem(hosts, kerberos_login(hosts), sasl_writers(acl_specs))


def kerberos_login(hosts: str, service: str = "zookeeper") -> Login:
    """Log in as kazoo's SASL will (the default credentials) and get a ticket for the first
    ZooKeeper server's service principal, as its SASL handshake does."""
    import gssapi  # the 'kerberos' extra; only a GSSAPI replica gets here

    host = hosts.partition("/")[0].split(",")[0].rpartition(":")[0].strip("[]")
    try:
        credentials = gssapi.Credentials(usage="initiate")
        target = gssapi.Name(f"{service}@{host}", gssapi.NameType.hostbased_service)
        gssapi.SecurityContext(name=target, creds=credentials, usage="initiate").step()
        return Login(principal=str(credentials.name))
    except gssapi.exceptions.GSSError as exc:
        code = exc.min_code - (1 << 32) if exc.min_code >= 1 << 31 else exc.min_code
        statuses = exc.get_all_statuses(exc.min_code, False) if exc.min_code else []
        return Login(error=" ".join(statuses) or str(exc), error_code=code)
