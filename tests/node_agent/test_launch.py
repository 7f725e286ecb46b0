"""The tritonserver command lines, including the multi-GPU launches that cannot run here."""
import json
from pathlib import Path

import pytest

from tarn_shared.errors import ConfigError
from tarn_node_agent.launch import TritonOptions, TritonPorts, model_backend, plan_launch, with_parallelism

REPO = Path("/staged/repo-1")
OVERLAY = Path("/container/tarn-overlay/container_1")


def options(**overrides):
    values = dict(executable="/opt/tritonserver/bin/tritonserver", model_repository=REPO, bind="0.0.0.0",
                  ports=TritonPorts(http=8000, grpc=8001, metrics=8002), model_control_mode="explicit",
                  load_models=["llm"], exit_timeout_s=30, extra_args=["--log-verbose=1"])
    values.update(overrides)
    return TritonOptions(**values)


def test_a_single_gpu_command_has_ports_metrics_mode_models_and_exit_timeout():
    plan = plan_launch(options(), {"llm": "python"}, {}, {"HUGGING_FACE_HUB_TOKEN": "t"})

    assert plan.argv == [
        "/opt/tritonserver/bin/tritonserver", "--model-repository=/staged/repo-1",
        "--http-address=0.0.0.0", "--http-port=8000", "--grpc-address=0.0.0.0", "--grpc-port=8001",
        "--allow-metrics=true", "--metrics-address=0.0.0.0", "--metrics-port=8002", "--exit-timeout-secs=30",
        "--model-control-mode=explicit", "--load-model=llm", "--strict-readiness=false", "--log-verbose=1"]
    assert plan.env == {"HUGGING_FACE_HUB_TOKEN": "t"} and not plan.rewrites


def test_only_explicit_model_control_keeps_the_server_ready_while_a_model_loads():
    # Per-model placement loads while serving: a load must not make the whole server unready.
    polled = plan_launch(options(model_control_mode="poll", load_models=[]), {"llm": "python"}, {}, {})
    assert "--strict-readiness=false" not in polled.argv
    assert "--strict-readiness=false" in plan_launch(options(), {"llm": "python"}, {}, {}).argv


def test_tensorrt_llm_runs_one_rank_per_gpu_under_mpi():
    plan = plan_launch(options(tp=2, pp=2), {"llm": "tensorrtllm", "preprocessing": "python"}, {}, {})

    assert plan.argv[:2] == ["mpirun", "--allow-run-as-root"]
    ranks = " ".join(plan.argv[2:]).split(" : ")
    assert len(ranks) == 4
    assert all(r.startswith("-n 1 /opt/tritonserver/bin/tritonserver --model-repository=/staged/repo-1") for r in ranks)
    assert "--load-model=llm" in ranks[0] and "--model-control-mode=explicit" in ranks[0]
    for rank, words in enumerate(ranks):
        assert f"--backend-config=python,shm-region-prefix-name=prefix{rank}_" in words
        assert "--disable-auto-complete-config" in words
    # Ranks other than 0 load the TensorRT-LLM models only.
    assert "--load-model=preprocessing" not in " ".join(ranks[1:]) and "--load-model=llm" in ranks[3]
    assert "world_size=4" in plan.parallelism


def test_vllm_gets_tensor_and_pipeline_parallel_sizes_in_its_engine_arguments():
    engine = json.dumps({"model": "facebook/opt-125m", "gpu_memory_utilization": 0.5})
    plan = plan_launch(options(tp=4, pp=2), {"llm": "vllm"}, {"llm": engine}, {}, overlay=OVERLAY)

    assert plan.argv[:2] == ["/opt/tritonserver/bin/tritonserver", f"--model-repository={OVERLAY}"]
    assert list(plan.rewrites) == [Path("llm/1/model.json")]  # inside the repository, written to the overlay
    rewritten = json.loads(plan.rewrites[Path("llm/1/model.json")])
    assert rewritten == {"model": "facebook/opt-125m", "gpu_memory_utilization": 0.5,
                         "tensor_parallel_size": 4, "pipeline_parallel_size": 2}


@pytest.mark.parametrize("backends,message", [
    ({"m": "python"}, "found: neither"),
    ({"a": "vllm", "b": "tensorrtllm"}, "found: tensorrtllm, vllm"),
])
def test_parallelism_without_a_single_parallel_backend_is_a_clear_error(backends, message):
    with pytest.raises(ConfigError, match=message):
        plan_launch(options(tp=2), backends, {}, {})


def test_vllm_without_engine_arguments_is_a_clear_error():
    with pytest.raises(ConfigError, match="no 1/model.json"):
        plan_launch(options(tp=2, parallel_backend="vllm"), {"llm": "vllm"}, {}, {}, overlay=OVERLAY)
    with pytest.raises(ConfigError, match="not JSON"):
        with_parallelism("{nope", 2, 1)


def test_the_backend_is_read_from_config_pbtxt():
    assert model_backend('name: "x"\nbackend: "tensorrtllm"\n') == "tensorrtllm"
    assert model_backend('platform: "onnxruntime_onnx"') is None
