"""Triton's environment: what it inherits from the agent's is an allowlist; the operator's
`env` setting and the mapped secrets come on top. Python-backend model code can read all of it."""
import sys
from pathlib import Path

from tarn_node_agent.launch import scrubbed_environment
from tarn_node_agent.preparation import prepare
from tarn_node_agent.settings import NodeAgentSettings
from tarn_node_agent.staging import StagingProgress
from tarn_shared.settings import unsafe_env_name

MODELS = Path(__file__).resolve().parents[1] / "models"
AGENT_ENVIRON = {
    "PATH": "/opt/venv/bin:/usr/bin", "LD_LIBRARY_PATH": "/opt/python/lib", "HOME": "/home/yarn",
    "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "CUDA_VISIBLE_DEVICES": "0",
    "NVIDIA_VISIBLE_DEVICES": "GPU-1", "NCCL_DEBUG": "INFO", "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "TRITON_SERVER_VERSION": "2.50",
    # The agent's own: none of these reaches Triton.
    "TARN_NODE_AGENT_REDIS_URL": "redis://agent:pw@r:6379/0", "HADOOP_CREDSTORE_PASSWORD": "store-pw",
    "HADOOP_TOKEN_FILE_LOCATION": "/yarn/container_tokens", "KRB5CCNAME": "FILE:/tmp/krb5cc_1",
    "HADOOP_CONF_DIR": "/etc/hadoop", "CONTAINER_ID": "container_1_0001_01_000002", "NM_HOST": "nm1",
    "REDIS_URL": "redis://x", "JAVA_HOME": "/usr/lib/jvm", "YARN_CONTAINER_RUNTIME_TYPE": "docker",
}
INHERITED = ["CUDA_VISIBLE_DEVICES", "HOME", "LANG", "LC_ALL", "LD_LIBRARY_PATH", "NCCL_DEBUG",
             "NVIDIA_VISIBLE_DEVICES", "OMPI_ALLOW_RUN_AS_ROOT", "PATH", "TRITON_SERVER_VERSION", "TZ"]


def test_triton_inherits_only_paths_locale_and_gpu_settings_never_the_agents_credentials():
    env = scrubbed_environment(AGENT_ENVIRON, {}, {})

    assert sorted(env) == INHERITED
    assert env["PATH"] == AGENT_ENVIRON["PATH"] and env["LD_LIBRARY_PATH"] == AGENT_ENVIRON["LD_LIBRARY_PATH"]


def test_the_operators_env_and_the_secrets_come_on_top_the_secrets_last():
    env = scrubbed_environment(AGENT_ENVIRON, {"HF_HOME": "/cache", "CUDA_VISIBLE_DEVICES": "1", "A": "op"},
                               {"HUGGING_FACE_HUB_TOKEN": "hf_x", "A": "secret"})

    assert env["HF_HOME"] == "/cache" and env["CUDA_VISIBLE_DEVICES"] == "1"
    assert env["HUGGING_FACE_HUB_TOKEN"] == "hf_x" and env["A"] == "secret"
    assert "TARN_NODE_AGENT_REDIS_URL" not in env and "HADOOP_CREDSTORE_PASSWORD" not in env


def test_loader_python_and_shell_variables_are_unsafe_and_ordinary_ones_are_not():
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PATH", "PYTHONPATH", "PYTHONHOME",
                 "PYTHONSTARTUP", "GCONV_PATH", "GLIBC_TUNABLES", "BASH_ENV", "CUDA_INJECTION64_PATH", "ld_preload"):
        assert unsafe_env_name(name), name
    for name in ("HUGGING_FACE_HUB_TOKEN", "HF_HOME", "CUDA_VISIBLE_DEVICES", "MY_PATH", "TRITON_LOG_VERBOSE",
                 "OLD_PATH"):
        assert not unsafe_env_name(name), name


def test_prepare_gives_triton_the_scrubbed_environment(tmp_path):
    settings = NodeAgentSettings(model_repository=str(MODELS), container_id="container_1_0001_01_000002",
                                 overlay_dir=tmp_path, tritonserver=sys.executable, env=["MY_SETTING=on"])

    plan = prepare(settings, AGENT_ENVIRON, StagingProgress()).plan

    assert sorted(plan.env) == sorted(INHERITED + ["MY_SETTING"]) and plan.env["MY_SETTING"] == "on"
