"""Clock skew, in the words MIT Kerberos and Java use for it, named with what to fix."""
from __future__ import annotations

import pytest

from tarn_shared.kerberos_errors import SKEW_HINT, explained, is_clock_skew

# Captured from the stack's real KDC with the client's clock an hour ahead (libfaketime):
# gssapi with kdc_timesync off, the principal requiring preauth (the KDC answers KRB_AP_ERR_SKEW),
# and kinit without preauth (MIT's own check of the KDC's reply).
MIT_GSSAPI = ("Major (458752): No credentials were supplied, or the credentials were unavailable or inaccessible, "
              "Minor (2529638949): Clock skew too great")
MIT_KINIT = "kinit: Clock skew too great in KDC reply while getting initial credentials"
JAVA = "GSSException: No valid credentials provided (Mechanism level: Clock skew too great (37))"  # Java's KrbException 37


@pytest.mark.parametrize("text", [MIT_GSSAPI, MIT_KINIT, JAVA, "KRB_AP_ERR_SKEW"])
def test_clock_skew_is_named_with_its_fix_first(text):
    assert is_clock_skew(text)
    line = explained(text)
    assert line.startswith(SKEW_HINT) and "synchronize the clocks" in line and text in line
    assert "\n" not in line


def test_other_kerberos_failures_pass_through_on_one_line():
    text = "Minor (2529639107):\n No credentials cache found"
    assert not is_clock_skew(text)
    assert explained(text) == "Minor (2529639107): No credentials cache found"

