"""`tarn submit --am-auth spnego|token+spnego`: the flags are checked with one-line errors, the
HTTP keytab goes to the master only (0400 before tarn-am starts), the owner is the submitting
principal's short name, and tarn-am reads what submit set, with _HOST its own host."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tarn_am.api_auth import server_principal
from tarn_am.cli.__main__ import main
from tarn_am.cli.am_keytab import KRB5_CONF_FILE
from tarn_am.cli.am_spnego import HTTP_KEYTAB_FILE
from tarn_am.settings import AmSettings

SUBMIT = ["submit", "--name", "krb", "--runtime", "process", "--model-repository", "hdfs:///models",
          "--nodes", "nm1", "--dry-run"]


@pytest.fixture
def http_keytab(tmp_path) -> Path:
    """A real keytab holding HTTP/nm1@TARN.TEST only (ktutil writes it; no KDC needed)."""
    path = tmp_path / "http.keytab"
    script = f"addent -password -p HTTP/nm1@TARN.TEST -k 1 -e aes256-cts-hmac-sha1-96\nsecret\nwkt {path}\nquit\n"
    subprocess.run(["ktutil"], input=script, text=True, capture_output=True, check=True, timeout=30)
    assert path.stat().st_size > 0
    return path


@pytest.fixture
def tarn(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KRB5_CONFIG", raising=False)

    def run(*args: str):
        code = main([*SUBMIT, *args])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if code == 0 else None), err
    return run


@pytest.mark.parametrize("args, message", [
    (["--am-auth", "spnego"], "--am-auth spnego needs --am-spnego-keytab FILE"),
    (["--am-admins", "bob"], "--am-admins only apply with --am-auth spnego or token+spnego"),
    (["--am-auth", "token+spnego", "--am-spnego-keytab", "/nonexistent/http.keytab"],
     "--am-spnego-keytab /nonexistent/http.keytab: no such file"),
    (["--am-auth", "spnego", "--am-spnego-keytab", "s3://b/http.keytab"], "give a local file or an hdfs:// URI"),
    (["--am-auth", "spnego", "--am-spnego-keytab", "hdfs:///k", "--am-spnego-principal", "alice@TARN.TEST"],
     "--am-spnego-principal 'alice@TARN.TEST': use HTTP/<host>[@REALM]"),
    (["--am-auth", "spnego", "--am-spnego-keytab", "hdfs:///k", "--am-viewers", "bob@TARN.TEST"],
     "--am-viewers bob@TARN.TEST: use short names (bob, not bob@REALM) or *"),
    (["--am-auth", "spnego", "--am-spnego-keytab", "hdfs:///k", "--am-admins", "*"], "--am-admins *: use short names"),
])
def test_bad_spnego_flags_are_one_line_usage_errors(tarn, args, message):
    code, _, err = tarn(*args)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("tarn submit: invalid submit options: ") and message in err, err


def test_a_keytab_without_the_named_principal_is_refused_before_yarn(tarn, http_keytab):
    code, _, err = tarn("--am-auth", "spnego", "--am-spnego-keytab", str(http_keytab),
                        "--am-spnego-principal", "HTTP/nm2@TARN.TEST")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"--am-spnego-keytab {http_keytab} does not hold HTTP/nm2@TARN.TEST's key" in err
    assert "No key table entry found" in err
    code, spec, _ = tarn("--am-auth", "spnego", "--am-spnego-keytab", str(http_keytab),
                         "--am-spnego-principal", "HTTP/nm1@TARN.TEST")
    assert code == 0 and spec["master"]["env"]["TARN_AM_SPNEGO_PRINCIPAL"] == "HTTP/nm1@TARN.TEST"


def test_the_keytab_goes_to_the_master_only_read_only_and_the_submitter_owns_the_deployment(
        tarn, http_keytab, tmp_path, monkeypatch):
    alice = tmp_path / "alice.keytab"
    alice.write_bytes(b"\x05\x02")  # --keytab is only shipped, not read, by a dry run
    (tmp_path / "krb5.conf").write_text("[libdefaults]\n  default_realm = TARN.TEST\n")
    monkeypatch.setenv("KRB5_CONFIG", str(tmp_path / "krb5.conf"))
    code, spec, _ = tarn("--am-auth", "token+spnego", "--am-spnego-keytab", str(http_keytab),
                         "--am-admins", "carol, dave", "--am-viewers", "*",
                         "--principal", "alice/ops@TARN.TEST", "--keytab", str(alice))
    assert code == 0
    master = spec["master"]
    assert {k: v for k, v in master["env"].items() if k in (
        "TARN_AM_AUTH", "TARN_AM_SPNEGO_KEYTAB", "TARN_AM_SPNEGO_PRINCIPAL", "TARN_AM_OWNER", "TARN_AM_ADMINS",
        "TARN_AM_VIEWERS", "KRB5_CONFIG")} == {
        "TARN_AM_AUTH": "token+spnego", "TARN_AM_SPNEGO_KEYTAB": HTTP_KEYTAB_FILE,
        "TARN_AM_SPNEGO_PRINCIPAL": "HTTP/_HOST", "TARN_AM_OWNER": "alice", "TARN_AM_ADMINS": "carol,dave",
        "TARN_AM_VIEWERS": "*", "KRB5_CONFIG": KRB5_CONF_FILE}
    assert master["files"][HTTP_KEYTAB_FILE]["source"] == f"file://{http_keytab}"
    assert master["files"][KRB5_CONF_FILE]["source"] == f"file://{tmp_path / 'krb5.conf'}"
    assert master["script"].startswith(f"chmod 0400 {HTTP_KEYTAB_FILE}\n")
    assert all(HTTP_KEYTAB_FILE not in service["files"] for service in spec["services"].values())
    assert all("TARN_AM_SPNEGO_KEYTAB" not in service["env"] for service in spec["services"].values())


def test_an_hdfs_keytab_is_localized_from_hdfs_and_a_token_deployment_gets_no_spnego(tarn):
    code, spec, _ = tarn("--am-auth", "spnego", "--am-spnego-keytab", "hdfs:///user/alice/http.keytab")
    assert code == 0 and spec["master"]["files"][HTTP_KEYTAB_FILE]["source"] == "hdfs:///user/alice/http.keytab"
    assert "TARN_AM_OWNER" not in spec["master"]["env"]  # no --principal: tarn-am's default, USER
    code, spec, _ = tarn()
    assert code == 0 and HTTP_KEYTAB_FILE not in spec["master"]["files"]
    assert "TARN_AM_AUTH" not in spec["master"]["env"] and not spec["master"]["script"].startswith("chmod")


def test_tarn_am_reads_what_submit_set_and_host_becomes_its_own_lower_case_host(tarn, http_keytab, monkeypatch):
    code, spec, _ = tarn("--am-auth", "spnego", "--am-spnego-keytab", str(http_keytab), "--am-viewers", "bob")
    for key, value in spec["master"]["env"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("NM_HOST", "NM1")
    settings = AmSettings()
    assert (settings.auth, str(settings.spnego_keytab), settings.viewers) == ("spnego", HTTP_KEYTAB_FILE, ["bob"])
    assert server_principal(settings.spnego_principal, settings.public_host()) == "HTTP/nm1"
    assert server_principal("HTTP/_HOST@TARN.TEST", "Tarn-NM2") == "HTTP/tarn-nm2@TARN.TEST"
    assert server_principal("HTTP/web1@TARN.TEST", "nm1") == "HTTP/web1@TARN.TEST"
    assert server_principal(None, "nm1") is None
