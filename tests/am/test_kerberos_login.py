"""`--principal`/`--keytab`: checked before anything starts, each problem in one line."""
from __future__ import annotations

import pytest

from tarn_am.cli.am_client import CliError
from tarn_am.cli.arguments import build_parser, submit_values
from tarn_am.cli.kerberos_login import KeytabLogin, keytab_login


def test_no_flags_means_the_ticket_cache():
    assert keytab_login(None, None) is None


def test_a_principal_and_a_readable_keytab_log_in_from_the_keytab(tmp_path):
    keytab = tmp_path / "alice.keytab"
    keytab.write_bytes(b"\x05\x02")
    assert keytab_login("alice@TARN.TEST", str(keytab)) == KeytabLogin("alice@TARN.TEST", str(keytab))


@pytest.mark.parametrize("principal, keytab, message", [
    ("alice@TARN.TEST", None, "--principal and --keytab go together"),
    (None, "/etc/alice.keytab", "--principal and --keytab go together"),
    ("alice@TARN.TEST", "/no/such.keytab", "--keytab /no/such.keytab: no such file"),
])
def test_a_half_or_missing_login_is_refused_naming_the_flag(principal, keytab, message):
    with pytest.raises(CliError, match=message):
        keytab_login(principal, keytab)


def test_the_login_flags_do_not_reach_the_deployment_options():
    args = build_parser().parse_args(["submit", "--model-repository", "/m", "--principal", "a@R", "--keytab", "/k"])
    assert (args.principal, args.keytab) == ("a@R", "/k")
    assert "principal" not in submit_values(args, {}) and "keytab" not in submit_values(args, {})
    status = build_parser().parse_args(["status", "--principal", "a@R", "--keytab", "/k"])
    assert status.principal == "a@R"


def test_a_secure_yarn_without_a_ticket_is_one_line_naming_kinit_and_the_flags():
    from tarn_am.cli.exits import kerberos_hint

    hint = kerberos_hint("Kerberos ticket not found, please kinit and restart")
    assert hint.startswith("YARN refused tarn: no valid Kerberos ticket; run kinit, or give --principal and --keytab")
    assert kerberos_hint("Application application_1_0001 not found") == ""
