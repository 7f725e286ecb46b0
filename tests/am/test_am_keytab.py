"""`tarn submit --principal --keytab` on a Kerberized cluster ships the keytab to tarn-am
(and only to it), so that it can re-obtain the containers' delegation tokens."""
from __future__ import annotations

from tarn_am.cli.am_keytab import KEYTAB_FILE, KRB5_CONF_FILE, ship_keytab
from tarn_am.cli.kerberos_login import KeytabLogin
from tarn_am.cli.spec import build_spec, launcher_for
from tarn_am.settings import AmSettings
from tests.am.test_submit_spec import options

CORE_SITE = ("<configuration><property><name>hadoop.security.authentication</name><value>{}</value></property>"
             "</configuration>")


def spec_for(tmp_path, authentication: str, environ=None):
    (tmp_path / "core-site.xml").write_text(CORE_SITE.format(authentication))
    (tmp_path / "alice.keytab").write_bytes(b"\x05\x02")
    o = options(["submit", "--model-repository", "hdfs://nn1:8020/models", "--runtime", "process"])
    spec = build_spec(o, ["nm1"], launcher_for(o, "/usr/bin/python3"))
    shipped = ship_keytab(spec, KeytabLogin("alice@TARN.TEST", str(tmp_path / "alice.keytab")),
                          {"HADOOP_CONF_DIR": str(tmp_path), **(environ or {})})
    return spec, shipped


def test_the_keytab_and_its_principal_go_to_the_master_only(tmp_path):
    spec, shipped = spec_for(tmp_path, "kerberos", {"KRB5_CONFIG": "/etc/tarn/krb5.conf"})

    assert shipped
    assert spec.master.files[KEYTAB_FILE].source.endswith("/alice.keytab")
    assert spec.master.files[KRB5_CONF_FILE].source == "file:///etc/tarn/krb5.conf"
    env = spec.master.env
    assert (env["TARN_AM_KERBEROS_PRINCIPAL"], env["TARN_AM_KERBEROS_KEYTAB"]) == ("alice@TARN.TEST", KEYTAB_FILE)
    assert env["TARN_AM_TOKEN_FILE_SYSTEMS"] == "hdfs://nn1:8020" and env["KRB5_CONFIG"] == KRB5_CONF_FILE
    assert all(KEYTAB_FILE not in service.files for service in spec.services.values())


def test_a_cluster_without_kerberos_gets_no_keytab(tmp_path):
    spec, shipped = spec_for(tmp_path, "simple")
    assert not shipped and KEYTAB_FILE not in spec.master.files
    assert "TARN_AM_KERBEROS_KEYTAB" not in spec.master.env


def test_tarn_am_reads_what_submit_shipped(tmp_path, monkeypatch):
    spec, _ = spec_for(tmp_path, "kerberos")
    for key, value in spec.master.env.items():
        monkeypatch.setenv(key, value)
    settings = AmSettings()
    assert settings.kerberos_principal == "alice@TARN.TEST" and str(settings.kerberos_keytab) == KEYTAB_FILE
    assert settings.token_file_systems == ["hdfs://nn1:8020"]


def test_a_principal_without_its_keytab_is_one_error_naming_both(monkeypatch):
    import pytest

    from tarn_shared.errors import ConfigError

    monkeypatch.setenv("TARN_AM_DEPLOYMENT", "d")
    monkeypatch.setenv("TARN_AM_KERBEROS_PRINCIPAL", "alice@TARN.TEST")
    with pytest.raises(ConfigError, match="TARN_AM_KERBEROS_PRINCIPAL and TARN_AM_KERBEROS_KEYTAB go together"):
        AmSettings.load()
