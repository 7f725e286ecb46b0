"""`tarn submit`: flag validation with clear errors, and the skein spec it builds."""
from __future__ import annotations

import pytest

from tarn_shared.errors import ConfigError
from tarn_shared.locations import parse_credential_location

from tarn_am.cli.arguments import build_parser, submit_values
from tarn_am.cli.options import SubmitOptions
from tarn_am.cli.spec import NodeInfo, PythonLauncher, build_spec, eligible_nodes, launcher_for, slots_for

SEEDS_EXAMPLE = [
    "submit", "--model-repository", "hdfs:///user/models", "--image", "nvcr.io/nvidia/tritonserver:24.09-py3",
    "--port", "8000", "--metrics-port", "8002", "--am-port", "8888", "--address", "0.0.0.0",
    "--token", "my-secret-token", "--tp", "2", "--pp", "1", "--secrets", "hdfs:///user/secrets/hf.jceks",
    "--placement-tag", "nvidia", "--scale-up", "0.8", "--scale-down", "0.2", "--min-instances", "2",
    "--max-instances", "8", "--cooldown", "120000", "--env", "TRITON_LOG_VERBOSE=1", "--env", "B=x=y",
    "-rs", "triton_prod", "-ra", "tarn", "-raudit", "--zk-ensemble", "zk1:2181,zk2:2181",
]


def options(argv, environ=None) -> SubmitOptions:
    return SubmitOptions.parse(submit_values(build_parser().parse_args(argv), environ or {}))


def test_the_seeds_example_parses_in_the_seeds_units():
    o = options(SEEDS_EXAMPLE)
    assert o.cooldown_s == 120.0 and o.gpus == 2 and o.min_instances == 2 and o.max_instances == 8
    assert o.env == {"TRITON_LOG_VERBOSE": "1", "B": "x=y"}
    assert o.ranger_service == "triton_prod" and o.ranger_audit and o.token.get_secret_value() == "my-secret-token"


def test_ranger_and_token_fall_back_to_the_environment():
    o = options(["submit", "--model-repository", "/nfs/models", "--runtime", "process"],
                {"RANGER_SERVICE": "svc", "RANGER_APP_ID": "app", "RANGER_AUDIT": "true", "TARN_TOKEN": "t"})
    assert (o.ranger_service, o.ranger_app_id, o.ranger_audit) == ("svc", "app", True)
    assert o.token.get_secret_value() == "t"


@pytest.mark.parametrize("extra, message", [
    (["--scale-down", "0.9"], "--scale-down (0.9) must be lower than --scale-up (0.8)"),
    (["--min-instances", "5", "--max-instances", "2"], "--min-instances (5) must not exceed --max-instances (2)"),
    (["--port", "8002"], "must differ"),
    (["--tp", "0"], "--tp"),
    (["--cooldown", "-1"], "--cooldown"),
    (["--zk-path", "services"], "--zk-path"),
    (["--env", "1BAD=x"], "--env"),
    (["--env", "TARN_AM_TOKEN=x"], "set by TARN itself"),
    (["--redis-url", "http://x"], "--redis-url"),
    (["--name", "a:b"], "--name"),
])
def test_invalid_flags_fail_with_a_message_naming_the_flag(extra, message):
    with pytest.raises(ConfigError) as err:
        options(["submit", "--model-repository", "hdfs:///m", "--image", "img"] + extra)
    assert message in str(err.value)


def test_docker_runtime_needs_an_image():
    with pytest.raises(ConfigError, match="--image is required"):
        options(["submit", "--model-repository", "hdfs:///m"])


def test_a_local_secrets_path_is_refused_with_the_agents_message():
    # The node-agent reads --secrets with the same parser: what submit accepts, every container can read.
    with pytest.raises(ValueError) as agent:
        parse_credential_location("/etc/tarn/hf.jceks")
    with pytest.raises(ConfigError) as err:
        options(["submit", "--model-repository", "hdfs:///m", "--image", "img", "--secrets", "/etc/tarn/hf.jceks"])
    assert f"--secrets: {agent.value}" in str(err.value)


def test_env_without_equals_is_rejected():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        options(["submit", "--model-repository", "hdfs:///m", "--env", "NOPE"])


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["submit", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_eligible_nodes_follow_label_and_gpus():
    nodes = [NodeInfo("b", frozenset({"GPU"}), 2), NodeInfo("a", frozenset({"GPU"}), 1),
             NodeInfo("c", frozenset(), 4), NodeInfo("d", frozenset({"GPU"}), 4, running=False)]
    o = options(SEEDS_EXAMPLE + ["--node-label", "GPU"])
    assert eligible_nodes(nodes, o) == ["b"]  # a has too few GPUs, c lacks the label, d is down


def test_slot_names_are_unique_and_valid():
    slots = slots_for(["Node_1.example.com", "node-1.example.com"], "nvidia")
    assert [s.service for s in slots] == ["nvidia-node-1-example-com", "nvidia-node-1-example-com-2"]


def test_spec_emulates_anti_affinity_with_one_pinned_service_per_node():
    o = options(SEEDS_EXAMPLE + ["--node-label", "GPU", "--queue", "gpu"])
    spec = build_spec(o, ["nm1", "nm2"], launcher_for(o, "/usr/bin/python3"))
    assert sorted(spec.services) == ["nvidia-nm1", "nvidia-nm2"]
    for name, service in spec.services.items():
        assert service.nodes == [name.split("-", 1)[1]] and service.relax_locality is False
        assert service.instances == 0 and service.max_restarts == 0 and service.allow_failures is True
        assert service.resources.gpus == 2 and service.node_label == "GPU"
    assert spec.queue == "gpu"
    assert spec.node_label == ""  # the AM container is not held to the label (tests/am/test_node_labels.py)


def test_spec_sets_yarns_docker_runtime_environment():
    o = options(SEEDS_EXAMPLE + ["--docker-mount", "/data:/data:ro"])
    env = build_spec(o, ["nm1"], launcher_for(o, "/usr/bin/python3")).services["nvidia-nm1"].env
    assert env["YARN_CONTAINER_RUNTIME_TYPE"] == "docker"
    assert env["YARN_CONTAINER_RUNTIME_DOCKER_IMAGE"] == "nvcr.io/nvidia/tritonserver:24.09-py3"
    assert env["YARN_CONTAINER_RUNTIME_DOCKER_CONTAINER_NETWORK"] == "host"
    assert "/data:/data:ro" in env["YARN_CONTAINER_RUNTIME_DOCKER_MOUNTS"].split(",")
    assert env["TRITON_LOG_VERBOSE"] == "1"  # --env passes through
    assert env["TARN_NODE_AGENT_ENV"].splitlines() == ["B=x=y", "TRITON_LOG_VERBOSE=1"]
    assert env["TARN_NODE_AGENT_TP"] == "2"


def test_process_runtime_has_no_docker_settings_and_uses_the_chosen_python():
    o = options(["submit", "--model-repository", "hdfs:///m", "--runtime", "process", "--python", "/opt/py/bin/python"])
    spec = build_spec(o, ["nm1"], launcher_for(o, "/usr/bin/python3"))
    service = spec.services["nvidia-nm1"]
    assert not any(k.startswith("YARN_CONTAINER_RUNTIME") for k in service.env)
    assert "/opt/py/bin/python -m tarn_node_agent" in service.script
    assert "/opt/py/bin/python -m tarn_am.supervisor" in spec.master.script


def test_a_packed_environment_is_shipped_and_unpacked():
    o = options(["submit", "--model-repository", "hdfs:///m", "--runtime", "process",
                 "--python-env", "hdfs:///apps/tarn-env.tar.gz"])
    spec = build_spec(o, ["nm1"], launcher_for(o, "/usr/bin/python3"))
    assert spec.master.files["pyenv"].type == "archive"
    assert "conda-unpack" in spec.master.script and "pyenv/bin/python -m tarn_am.supervisor" in spec.master.script


def test_the_master_gets_the_am_settings_and_the_secret_stays_off_command_lines():
    o = options(SEEDS_EXAMPLE)
    spec = build_spec(o, ["nm1", "nm2"], PythonLauncher(interpreter="/usr/bin/python3"))
    env = spec.master.env
    assert env["TARN_AM_SLOTS"] == "nvidia-nm1=nm1,nvidia-nm2=nm2"
    assert env["TARN_AM_COOLDOWN_S"] == "120.0" and env["TARN_AM_MIN_INSTANCES"] == "2"
    assert env["TARN_AM_TOKEN"] == "my-secret-token"
    assert "my-secret-token" not in spec.master.script
    assert all("my-secret-token" not in s.script for s in spec.services.values())


@pytest.mark.parametrize("flag", ["--name", "--haproxy-backend", "--placement-tag"])
def test_a_name_with_a_trailing_newline_is_refused(flag):
    with pytest.raises(ConfigError, match=flag):
        options(["submit", "--model-repository", "/nfs/models", "--runtime", "process", flag, "triton\n"])


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "PATH", "PYTHONPATH", "ld_audit"])
def test_env_may_not_set_a_variable_that_changes_which_code_triton_loads(name):
    with pytest.raises(ConfigError) as err:
        options(["submit", "--model-repository", "hdfs:///m", "--image", "img", "--env", f"{name}=/tmp/x"])
    assert f"--env: {name} may not be set for Triton: it changes which code it loads" in str(err.value)
    assert "/tmp/x" not in str(err.value)


def test_env_may_not_carry_the_agents_credential_store_password_which_belongs_in_agent_env():
    base = ["submit", "--model-repository", "hdfs:///m", "--image", "img"]
    with pytest.raises(ConfigError) as err:
        options(base + ["--env", "HADOOP_CREDSTORE_PASSWORD=pw"])
    assert "--env: HADOOP_CREDSTORE_PASSWORD is the node-agent's own" in str(err.value)
    assert "give it with --agent-env" in str(err.value)
    assert options(base + ["--agent-env", "HADOOP_CREDSTORE_PASSWORD=pw"]).agent_env == {"HADOOP_CREDSTORE_PASSWORD": "pw"}


def test_the_repository_and_credential_file_systems_get_delegation_tokens():
    from tarn_am.cli.spec import token_file_systems

    named = options(["submit", "--model-repository", "hdfs://nn1:8020/models", "--runtime", "process",
                     "--secrets", "jceks://hdfs@nn2:8020/secrets/s.jceks"])
    assert token_file_systems(named) == ["hdfs://nn1:8020", "hdfs://nn2:8020"]
    same = options(["submit", "--model-repository", "hdfs://nn1:8020/models", "--runtime", "process",
                    "--secrets", "hdfs://nn1:8020/secrets/s.jceks"])
    assert token_file_systems(same) == ["hdfs://nn1:8020"]
    # The default file system (hdfs:///, a local path) always gets its token from skein.
    assert token_file_systems(options(["submit", "--model-repository", "hdfs:///models", "--runtime", "process"])) == []
    assert token_file_systems(options(["submit", "--model-repository", "/nfs/models", "--runtime", "process"])) == []
