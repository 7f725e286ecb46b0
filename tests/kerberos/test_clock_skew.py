"""A client whose clock is an hour ahead: the session's KDC refuses it (KRB_AP_ERR_SKEW) and
tarn-am's keytab login says so in one line naming the fix. (Token renewal, a deployment
outliving its first HDFS delegation token, runs on the session's one deployment, whose stack's
tokens are short: test_demo_kerberos.py.)"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tarn_shared.kerberos_errors import SKEW_HINT

from .conftest import kdc

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(300)]
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")  # Debian's libfaketime


def test_a_clock_an_hour_ahead_is_refused_by_the_kdc_and_tarn_am_names_the_fix(secure_stack, tmp_path):
    # Not a skip: only GPU tests may skip, and deploy/local/install-deps installs it.
    assert LIBFAKETIME.exists(), f"{LIBFAKETIME} is missing: install the Debian package libfaketime " \
                                 "(deploy/local/install-deps does)"
    # bob pre-authenticates, so the KDC itself checks his clock (KRB_AP_ERR_SKEW); and this
    # client does not take the KDC's time instead of its own (MIT's kdc_timesync, on by default).
    preauth = ["kadmin.local", "-r", kdc.REALM, "-q", f"modprinc +requires_preauth {kdc.principal('bob')}"]
    subprocess.run(preauth, env=secure_stack.kdc.env(), check=True, capture_output=True, timeout=30)
    try:
        _assert_skew_refused(secure_stack, tmp_path)
    finally:  # bob as the session's other tests know him
        preauth[-1] = preauth[-1].replace("+requires_preauth", "-requires_preauth")
        subprocess.run(preauth, env=secure_stack.kdc.env(), check=True, capture_output=True, timeout=30)


def _assert_skew_refused(secure_stack, tmp_path) -> None:
    krb5_conf = tmp_path / "krb5.conf"
    krb5_conf.write_text(secure_stack.kdc.krb5_conf.read_text().replace("[libdefaults]", "[libdefaults]\n  kdc_timesync = 0"))
    login = ("from tarn_am.token_keeper import TokenError, WebHdfsTokens\n"
             "try:\n    WebHdfsTokens(*__import__('sys').argv[1:4]).obtain('')\n"
             "except TokenError as exc:\n    print(exc)\n")
    result = subprocess.run(
        [sys.executable, "-c", login, kdc.principal("bob"), str(secure_stack.kdc.keytab("bob")),
         secure_stack.env["HADOOP_CONF_DIR"]],
        env={"PATH": "/usr/bin:/bin", "KRB5_CONFIG": str(krb5_conf), "LD_PRELOAD": str(LIBFAKETIME),
             "FAKETIME": "+1h"}, capture_output=True, text=True, timeout=60)
    assert result.stdout.startswith(f"cannot log in: {SKEW_HINT} (Kerberos said: "), result.stdout + result.stderr
    assert "Clock skew too great" in result.stdout and result.stdout.count("\n") == 1
