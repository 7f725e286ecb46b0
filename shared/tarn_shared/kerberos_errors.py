"""What a Kerberos failure's text means for the operator, for the messages that report it
(pure). MIT's and Java's words for the same failures differ; both are recognized here."""
from __future__ import annotations

from typing import Optional

# MIT: "Clock skew too great" (KRB5KRB_AP_ERR_SKEW, from the KDC or a service) and "Clock skew
# too great in KDC reply" (KRB5_KDCREP_SKEW, the client's own check); Java: "Clock skew too great (37)".
SKEW_MARKERS = ("clock skew too great", "krb_ap_err_skew", "krb5krb_ap_err_skew", "krb5_kdcrep_skew")
SKEW_HINT = ("this host's clock and the KDC's differ by more than Kerberos allows (krb5.conf clockskew, "
             "300 s by default): synchronize the clocks (chrony or ntpd) and retry")


def is_clock_skew(error_text: str) -> bool:
    text = error_text.lower()
    return any(marker in text for marker in SKEW_MARKERS)


def kerberos_hint(error_text: str) -> Optional[str]:
    """What to fix, for the failures whose raw text does not say it; None for the others."""
    if is_clock_skew(error_text):
        return SKEW_HINT
    return None


def explained(error_text: str) -> str:
    """The error's text on one line, led by what to fix when that is known."""
    flat = " ".join(error_text.split())
    hint = kerberos_hint(flat)
    return f"{hint} (Kerberos said: {flat})" if hint else flat
