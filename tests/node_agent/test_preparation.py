"""The launch plan read from a staged repository: backends from config.pbtxt, engine
arguments rewritten in place for tensor and pipeline parallelism."""
import json
import sys

from tarn_node_agent.preparation import plan_for
from tarn_node_agent.settings import NodeAgentSettings
from tarn_node_agent.staging import use_in_place


def test_a_vllm_model_gets_its_parallel_sizes_written_before_triton_starts(tmp_path):
    model = tmp_path / "llm"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text('backend: "vllm"\n')
    (model / "1" / "model.json").write_text(json.dumps({"model": "facebook/opt-125m"}))
    settings = NodeAgentSettings(model_repository=str(tmp_path), container_id="container_1700000000000_0042_01_000002",
                                 tritonserver=sys.executable, tp=2, pp=1, http_port=9000)

    plan = plan_for(settings, use_in_place(str(tmp_path)), {"A": "1"})

    assert f"--model-repository={tmp_path}" in plan.argv and "--http-port=9000" in plan.argv
    assert plan.env == {"A": "1"} and "tensor_parallel_size=2" in plan.parallelism
    assert json.loads((model / "1" / "model.json").read_text()) == {
        "model": "facebook/opt-125m", "tensor_parallel_size": 2, "pipeline_parallel_size": 1}
