"""Settings from the environment and arguments; invalid ones fail with one clear message."""
import sys

import pytest

from tarn_shared.errors import ConfigError
from tarn_node_agent.settings import load_settings

CID = "container_e17_1410901177871_0001_01_000005"
BASE = ["--model-repository", "hdfs://nn:8020/models", "--container-id", CID, "--tritonserver", sys.executable]


def test_arguments_fill_settings_and_the_app_id_comes_from_the_container_id(monkeypatch):
    monkeypatch.setenv("TARN_NODE_AGENT_LOAD_MODELS", "a,b")
    monkeypatch.setenv("TARN_NODE_AGENT_MODEL_CONTROL_MODE", "explicit")
    settings = load_settings(BASE + ["--env", "A=1", "--env", "B=x=y", "--tp", "2", "--http-port", "9000"])

    assert settings.app_id == "application_1410901177871_0001"
    assert settings.extra_env() == {"A": "1", "B": "x=y"}
    assert settings.load_models == ["a", "b"]
    assert (settings.tp, settings.http_port) == (2, 9000)
    assert settings.staging_dir.is_absolute()


def test_arguments_override_the_environment(monkeypatch):
    monkeypatch.setenv("TARN_NODE_AGENT_HTTP_PORT", "7000")
    monkeypatch.setenv("TARN_NODE_AGENT_TRITON_ARGS", "--log-verbose=1 '--x=a b'")
    settings = load_settings(BASE + ["--http-port", "7100"])
    assert settings.http_port == 7100
    assert settings.triton_args == ["--log-verbose=1", "--x=a b"]


@pytest.mark.parametrize("extra,message", [
    (["--model-repository", "hdfs://nn/models/../x"], "model_repository"),
    (["--model-repository", "relative/path"], "expected an hdfs:// URI or an absolute path"),
    (["--env", "1BAD=x"], "env"),
    (["--load-models", "a"], "load_models needs model_control_mode 'explicit'"),
    (["--http-port", "70000"], "http_port"),
    (["--grpc-port", "8000"], "must differ"),
    (["--tp", "0"], "tp"),
    (["--secrets", "/local/file.jceks"], "must be on HDFS"),
    (["--tritonserver", "no-such-tritonserver-binary"], "is not on PATH"),
    (["--model-control-mode", "sometimes"], "model_control_mode"),
])
def test_invalid_settings_fail_with_one_message(extra, message):
    with pytest.raises(ConfigError, match=message) as failure:
        load_settings(BASE + extra)
    assert str(failure.value).startswith("invalid settings:")
    assert "\n" not in str(failure.value)


def test_a_missing_repository_and_container_are_both_reported(monkeypatch):
    monkeypatch.delenv("CONTAINER_ID", raising=False)
    with pytest.raises(ConfigError, match="TARN_NODE_AGENT_MODEL_REPOSITORY"):
        load_settings(["--tritonserver", sys.executable])


def test_an_env_value_never_appears_in_the_error():
    with pytest.raises(ConfigError) as failure:
        load_settings(BASE + ["--env", "bad key=hunter2"])
    assert "hunter2" not in str(failure.value)


@pytest.mark.parametrize("name", ["LD_PRELOAD", "PATH", "PYTHONPATH", "GCONV_PATH"])
def test_the_env_setting_may_not_name_a_variable_that_changes_which_code_triton_loads(name):
    with pytest.raises(ConfigError, match=f"{name} may not be set for Triton") as failure:
        load_settings(BASE + ["--env", f"{name}=/tmp/evil"])
    assert "\n" not in str(failure.value) and "/tmp/evil" not in str(failure.value)
