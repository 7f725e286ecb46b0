import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tarn_shared.auth import token_dependency
from tarn_shared.errors import ConfigError
from tarn_shared.settings import ENV_NAME, CommaList, LineList, TarnSettings


def app_with(token, allow_query=False):
    app = FastAPI()

    @app.get("/private", dependencies=[Depends(token_dependency(token, allow_query))])
    def private():
        return {"ok": True}

    return TestClient(app)


@pytest.mark.parametrize("headers, status", [
    ({}, 401),
    ({"X-TARN-Token": "wrong"}, 401),
    ({"X-TARN-Token": "s3cret"}, 200),
    ({"Authorization": "Bearer s3cret"}, 200),
    ({"Authorization": "bearer s3cret"}, 200),
    ({"Authorization": "Bearer wrong"}, 401),
    ({"Authorization": "Basic s3cret"}, 401),
    ({"Authorization": "Bearer "}, 401),
])
def test_token_is_accepted_from_the_header_or_as_a_bearer_and_nothing_else(headers, status):
    response = app_with("s3cret").get("/private", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_query_token_is_refused_unless_enabled():
    assert app_with("s3cret").get("/private?token=s3cret").status_code == 401
    assert app_with("s3cret", allow_query=True).get("/private?token=s3cret").status_code == 200
    assert app_with("s3cret", allow_query=True).get("/private?token=nope").status_code == 401


def test_without_a_configured_token_every_caller_is_let_in():
    assert app_with(None).get("/private").status_code == 200


class ExampleSettings(TarnSettings):
    model_config = SettingsConfigDict(env_prefix="TARN_EXAMPLE_")
    zk_hosts: str = Field(description="required: no default")
    interval_s: float = 2.0


def test_settings_read_the_service_prefix_from_the_environment(monkeypatch):
    monkeypatch.setenv("TARN_EXAMPLE_ZK_HOSTS", "127.0.0.1:2181")
    monkeypatch.setenv("TARN_EXAMPLE_TOKEN", "abc")
    settings = ExampleSettings.load()
    assert settings.zk_hosts == "127.0.0.1:2181"
    assert settings.token.get_secret_value() == "abc"
    assert "abc" not in repr(settings)


def test_invalid_settings_fail_with_one_message_naming_each_field_and_its_variable(monkeypatch):
    monkeypatch.delenv("TARN_EXAMPLE_ZK_HOSTS", raising=False)
    monkeypatch.setenv("TARN_EXAMPLE_INTERVAL_S", "soon")
    with pytest.raises(ConfigError) as info:
        ExampleSettings.load()
    message = str(info.value)
    assert "zk_hosts (TARN_EXAMPLE_ZK_HOSTS)" in message
    assert "interval_s (TARN_EXAMPLE_INTERVAL_S)" in message
    assert "soon" not in message  # inputs are never echoed: they may be secrets


class ListSettings(TarnSettings):
    model_config = SettingsConfigDict(env_prefix="TARN_TEST_", extra="ignore", env_file=None)
    hosts: CommaList = Field(default_factory=list)
    lines: LineList = Field(default_factory=list)


@pytest.mark.parametrize("raw, expected", [
    ("a,b", ["a", "b"]),
    (" a , ,b ", ["a", "b"]),
    ("", []),
    ('["a,b", "c"]', ["a,b", "c"]),
])
def test_a_comma_list_comes_from_commas_or_a_json_array(monkeypatch, raw, expected):
    monkeypatch.setenv("TARN_TEST_HOSTS", raw)
    assert ListSettings.load().hosts == expected


def test_a_line_list_keeps_commas_inside_items(monkeypatch):
    monkeypatch.setenv("TARN_TEST_LINES", "A=1,2\nB=3\n")
    assert ListSettings.load().lines == ["A=1,2", "B=3"]


def test_a_malformed_json_list_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv("TARN_TEST_HOSTS", "[not json")
    with pytest.raises(ConfigError, match="TARN_TEST_HOSTS"):
        ListSettings.load()


@pytest.mark.parametrize("name, valid", [("HF_TOKEN", True), ("_x1", True), ("1A", False), ("A-B", False),
                                         ("A B", False), ("A=B", False), ("", False), ("A\nB", False),
                                         ("A\n", False)])
def test_an_environment_variable_name_follows_the_shells_rule(name, valid):
    assert bool(ENV_NAME.match(name)) is valid
