"""The launch plan read from a staged repository: backends from config.pbtxt, engine
arguments rewritten for tensor and pipeline parallelism into the container's overlay."""
import json
import sys

from tarn_node_agent.preparation import plan_for
from tarn_node_agent.settings import NodeAgentSettings
from tarn_node_agent.staging import use_in_place


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
