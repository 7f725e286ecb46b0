"""Python-backend model code can read everything in Triton's environment. A real node-agent
starts the real tritonserver on tests/env_models, whose model returns os.environ: the agent's
Redis URL, its HADOOP_CREDSTORE_PASSWORD, YARN's delegation-token file and a Kerberos ticket
cache never reach it; the operator's `--env` and the mapped secrets do. A secret that would set
LD_PRELOAD is refused before Triton starts, naming the alias."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import tritonclient.http as httpclient

from tarn_shared import events as ev
from tests.node_agent.agent_process import AgentProcess

pytestmark = [pytest.mark.integration]
MODELS = Path(__file__).resolve().parents[1] / "env_models"
STORE_PASSWORD = "store-pw-NOT-FOR-TRITON"


def agent_credentials(redis_url: str) -> Dict[str, str]:
    return {"TARN_NODE_AGENT_REDIS_URL": redis_url, "HADOOP_CREDSTORE_PASSWORD": STORE_PASSWORD,
            "HADOOP_TOKEN_FILE_LOCATION": "/nonexistent/container_tokens", "KRB5CCNAME": "FILE:/tmp/krb5cc_tarn_test",
            "TARN_NODE_AGENT_ENV": "OPERATOR_SETTING=from-submit-env"}


def model_environ(agent: AgentProcess) -> Dict[str, str]:
    client = httpclient.InferenceServerClient(url=agent.address)
    try:
        tensor = httpclient.InferInput("INPUT0", [1], "FP32")
        tensor.set_data_from_numpy(np.zeros(1, dtype=np.float32))
        return json.loads(client.infer("environ", [tensor]).as_numpy("ENVIRON")[0])
    finally:
        client.close()


def proc_environ(pid: int) -> Dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def assert_no_agent_credentials(env: Dict[str, str], redis_url: str) -> None:
    assert not [k for k in env if k.startswith("TARN_") or k.startswith("HADOOP_") or k.startswith("KRB5")]
    assert not [k for k, v in env.items() if redis_url in v or STORE_PASSWORD in v]


@pytest.fixture
def start(tmp_path, redis_url, deployment):
    agents = []

    def start_agent(extra=()) -> AgentProcess:
        agent = AgentProcess(tmp_path / f"a{len(agents)}", redis_url, deployment,
                             f"container_1700000000000_0099_01_00000{len(agents) + 2}", MODELS, extra=list(extra),
                             env=agent_credentials(redis_url))
        agents.append(agent)
        return agent

    yield start_agent
    for agent in agents:
        agent.stop()


def test_model_code_sees_the_operators_env_but_never_the_agents_credentials(start, redis_url):
    agent = start()
    agent.wait_ready()
    agent_env = proc_environ(agent.process.pid)
    assert agent_env["HADOOP_CREDSTORE_PASSWORD"] == STORE_PASSWORD  # the agent has them; Triton must not

    for env in (model_environ(agent), proc_environ(agent.triton_pid)):
        assert_no_agent_credentials(env, redis_url)
        assert env["OPERATOR_SETTING"] == "from-submit-env"
    triton_env = proc_environ(agent.triton_pid)
    # The python-backend stub still finds its interpreter and libpython (the model answered).
    assert triton_env["PATH"] == agent_env["PATH"] and triton_env["LD_LIBRARY_PATH"] == agent_env["LD_LIBRARY_PATH"]


@pytest.mark.hadoop
def test_mapped_secrets_reach_model_code_and_an_ld_preload_alias_is_refused_naming_it(start, redis_url,
                                                                                         hadoop_cluster, webhdfs):
    from tests.hadoop.cluster import create_jceks

    folder = f"/tarn-test/triton-environment/{uuid.uuid4().hex[:12]}"
    # simple: the planted token file and ticket cache are not real (auto would try them).
    hdfs = ["--webhdfs-url", hadoop_cluster.webhdfs_url, "--hdfs-user", "root", "--hdfs-auth", "simple"]
    try:
        good = create_jceks(hadoop_cluster, f"{folder}/good.jceks", {"tarn.env.model_flag": "mapped-SECRET"},
                            store_password=STORE_PASSWORD)
        agent = start([*hdfs, "--secrets", good])
        agent.wait_ready()
        env = model_environ(agent)
        assert env["MODEL_FLAG"] == "mapped-SECRET"
        assert_no_agent_credentials(env, redis_url)

        bad = create_jceks(hadoop_cluster, f"{folder}/bad.jceks", {"tarn.env.ld_preload": "/tmp/evil.so"},
                           store_password=STORE_PASSWORD)
        refused = start([*hdfs, "--secrets", bad])
        stopped = refused.wait_for(ev.InstanceStopped, 120, "instance.stopped")
        assert "credential alias 'tarn.env.ld_preload' maps to LD_PRELOAD" in stopped.reason
        assert "/tmp/evil.so" not in stopped.reason
        assert refused.process.wait(30) == 3
    finally:
        webhdfs.delete(folder, recursive=True)
