"""tarn-authz's settings: the seeds' flags and RANGER_* variables, required values, clear errors."""
from __future__ import annotations

import pytest

from tarn_authz.__main__ import main, parse_flags
from tarn_authz.settings import AuthzSettings
from tarn_shared.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("RANGER_SERVICE", "RANGER_APP_ID", "RANGER_AUDIT", "TARN_AUTHZ_RANGER_SERVICE",
                 "TARN_AUTHZ_GATEWAY_TOKEN", "TARN_AUTHZ_POLICY_DIR", "TARN_AUTHZ_RANGER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TARN_AUTHZ_GATEWAY_TOKEN", "gw")


def test_seed_short_flags_map_to_settings():
    assert parse_flags(["-rs", "triton_prod", "-ra", "tarn-gw", "-raudit"]) == {
        "ranger_service": "triton_prod", "ranger_app_id": "tarn-gw", "ranger_audit": True}
    assert parse_flags(["--ranger-service", "s", "--ranger-app-id", "a", "--ranger-audit"])["ranger_audit"] is True


def test_seed_environment_variables_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("RANGER_SERVICE", "triton_prod")
    monkeypatch.setenv("RANGER_APP_ID", "tarn-gw")
    monkeypatch.setenv("RANGER_AUDIT", "true")
    monkeypatch.setenv("TARN_AUTHZ_POLICY_DIR", str(tmp_path))
    settings = AuthzSettings.load()
    assert (settings.ranger_service, settings.ranger_app_id, settings.ranger_audit) == ("triton_prod", "tarn-gw", True)


def test_prefixed_variable_wins_over_the_seed_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("RANGER_SERVICE", "from_seed")
    monkeypatch.setenv("TARN_AUTHZ_RANGER_SERVICE", "from_tarn")
    assert AuthzSettings.load(policy_dir=tmp_path).ranger_service == "from_tarn"
    assert AuthzSettings.load(policy_dir=tmp_path, ranger_service="flag").ranger_service == "flag"


def test_defaults_follow_the_seeds(tmp_path):
    settings = AuthzSettings.load(policy_dir=tmp_path)
    assert (settings.ranger_app_id, settings.ranger_audit, settings.ranger_auth) == ("tarn", False, "none")


def test_missing_gateway_token_is_a_config_error(monkeypatch):
    monkeypatch.delenv("TARN_AUTHZ_GATEWAY_TOKEN")
    with pytest.raises(ConfigError, match="GATEWAY_TOKEN"):
        AuthzSettings.load()


def test_a_service_needs_a_policy_source():
    with pytest.raises(ConfigError, match="ranger_url .* or policy_dir"):
        AuthzSettings.load(ranger_service="s")


def test_basic_auth_needs_credentials():
    with pytest.raises(ConfigError, match="ranger_user and ranger_password"):
        AuthzSettings.load(ranger_url="http://r:6080", ranger_auth="basic")


def test_bad_configuration_exits_2_with_a_message(capsys):
    assert main(["-rs", "triton_prod"]) == 2
    assert "tarn-authz: invalid settings" in capsys.readouterr().err


def test_maximum_policy_age_defaults_to_an_hour_and_zero_means_no_limit(monkeypatch, tmp_path):
    assert AuthzSettings.load(policy_dir=tmp_path).max_policy_age_s == 3600.0
    monkeypatch.setenv("TARN_AUTHZ_MAX_POLICY_AGE_S", "0")
    assert AuthzSettings.load(policy_dir=tmp_path).max_policy_age_s == 0.0
    monkeypatch.setenv("TARN_AUTHZ_MAX_POLICY_AGE_S", "-5")
    with pytest.raises(ConfigError, match="max_policy_age_s"):
        AuthzSettings.load(policy_dir=tmp_path)
