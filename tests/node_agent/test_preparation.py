"""The launch plan read from a staged repository: backends from config.pbtxt, engine
arguments rewritten for tensor and pipeline parallelism into the container's overlay."""
import json
import sys

import pytest

from tarn_node_agent.preparation import checked_gateway_key, plan_for
from tarn_node_agent.secrets import SecretEnvironment
from tarn_node_agent.settings import NodeAgentSettings
from tarn_node_agent.staging import use_in_place
from tarn_shared.errors import ConfigError


def test_a_vllm_model_gets_its_parallel_sizes_written_to_the_overlay_before_triton_starts(tmp_path):
    repo, overlay_dir = tmp_path / "repo", tmp_path / "overlay"
    model = repo / "llm"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text('backend: "vllm"\n')
    source = json.dumps({"model": "facebook/opt-125m"})
    (model / "1" / "model.json").write_text(source)
    container = "container_1700000000000_0042_01_000002"
    settings = NodeAgentSettings(model_repository=str(repo), container_id=container, overlay_dir=overlay_dir,
                                 tritonserver=sys.executable, tp=2, pp=1, http_port=9000)

    plan = plan_for(settings, use_in_place(str(repo)), {"A": "1"})

    assert f"--model-repository={overlay_dir / container}" in plan.argv and "--http-port=9000" in plan.argv
    assert plan.env == {"A": "1"} and "tensor_parallel_size=2" in plan.parallelism
    assert (model / "1" / "model.json").read_text() == source  # the repository is never written
    assert json.loads((overlay_dir / container / "llm" / "1" / "model.json").read_text()) == {
        "model": "facebook/opt-125m", "tensor_parallel_size": 2, "pipeline_parallel_size": 1}


def test_with_a_gateway_key_triton_restricts_every_api_but_health_and_metadata_on_http_and_grpc(tmp_path):
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    settings = NodeAgentSettings(model_repository=str(repo), container_id="container_1700000000000_0042_01_000002",
                                 tritonserver=sys.executable, triton_args=["--log-verbose=1"])

    plan = plan_for(settings, use_in_place(str(repo)), {}, gateway_key="k" * 32)

    spec = ("inference,model-repository,model-config,shared-memory,statistics,trace,logging"
            ":tarn-gateway-key=" + "k" * 32)
    assert plan.argv[-3:] == ["--log-verbose=1", f"--http-restricted-api={spec}", f"--grpc-restricted-protocol={spec}"]
    assert "k" * 32 not in " ".join(plan.env.values())
    assert not any("restricted" in arg for arg in plan_for(settings, use_in_place(str(repo)), {}).argv)


def test_require_gateway_key_refuses_a_credential_file_without_one():
    settings = NodeAgentSettings(model_repository="/models", container_id="container_1700000000000_0042_01_000002",
                                 tritonserver=sys.executable, require_gateway_key=True)
    with pytest.raises(ConfigError, match="no credential file .secrets. holds a tarn.gateway.key alias"):
        checked_gateway_key(settings, SecretEnvironment({}))
    assert checked_gateway_key(settings, SecretEnvironment({}, [], "k" * 32)) == "k" * 32
