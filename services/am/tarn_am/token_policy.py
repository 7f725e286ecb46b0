"""When tarn-am re-obtains the HDFS delegation tokens new containers get, and what it says
when it cannot (pure: no I/O, no clock).

YARN's ResourceManager renews the tokens the application was submitted with, but never past
their max date (`dfs.namenode.delegation.token.max-lifetime`, 7 days by default), and skein's
application master hands every container those same tokens. So a container started after
that date could not stage. tarn-am logs in with the keytab shipped to it and gets a fresh
token, with itself as the renewer, once a share of the current one's life has passed; a new
container gets the freshest (docs/kerberos.md). It never renews a token it handed out: each
one is re-obtained while the last still has half of its life left, far more than a
container's staging needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tarn_shared.hadoop_tokens import HadoopToken, utc_text

REFRESH_FRACTION = 0.5  # of a token's life (issue to expiry) after which a fresh one is got
RETRY_S = 30.0  # after a failed attempt
MAX_SLEEP_S = 3600.0


@dataclass(frozen=True)
class HeldToken:
    """A token tarn-am got, with the expiry the NameNode gave when asked (its renew date, never
    after its max date)."""
    file_system: str
    token: HadoopToken
    issue_ms: int
    expires_ms: int

    @property
    def refresh_at_ms(self) -> int:
        return self.issue_ms + int(REFRESH_FRACTION * (self.expires_ms - self.issue_ms))


def held(file_system: str, token: HadoopToken, renewed_until_ms: Optional[int]) -> HeldToken:
    ident = token.identifier_fields()
    if ident is None:
        raise ValueError(f"{token.kind} is not a delegation token")
    expiry = ident.max_date_ms if renewed_until_ms is None else min(renewed_until_ms, ident.max_date_ms)
    return HeldToken(file_system, token, ident.issue_date_ms, expiry)


def due(current: Optional[HeldToken], now_ms: int) -> bool:
    return current is None or now_ms >= current.refresh_at_ms


def next_check_s(current: Optional[HeldToken], now_ms: int, last_failed: bool) -> float:
    """Seconds until this file system's token is looked at again."""
    if last_failed or current is None:
        return RETRY_S
    return min(MAX_SLEEP_S, max(1.0, (current.refresh_at_ms - now_ms) / 1000))


def renewal_failure(file_system: str, principal: str, keytab: str, error: str,
                    current: Optional[HeldToken], now_ms: int) -> str:
    """One line naming what failed, what it costs and what to check."""
    if current is None:
        cost = "new containers get only the tokens YARN gave at submission"
    elif current.expires_ms <= now_ms:
        cost = f"the last token tarn-am got expired at {utc_text(current.expires_ms)}: new containers cannot stage"
    else:
        cost = (f"new containers still get the last one, valid until {utc_text(current.expires_ms)}; "
                "after that they cannot stage")
    return (f"tarn-am could not re-obtain the HDFS delegation token for {file_system or 'the default file system'} "
            f"as {principal} with the keytab {keytab}: {error}; {cost}. Check the keytab (`klist -k`), "
            f"the KDC and the NameNode")


def no_keytab_warning(token: HadoopToken) -> Optional[str]:
    """What a deployment submitted without --principal/--keytab is told at start: when its
    token ends (renewals by YARN stop at its max date)."""
    ident = token.identifier_fields()
    if ident is None:
        return None
    return (f"{token.describe()} ends at {utc_text(ident.max_date_ms)} (its max lifetime) and tarn-am has no "
            "keytab to re-obtain it: containers started after then cannot stage; submit with --principal and "
            "--keytab for a deployment that lives longer")
