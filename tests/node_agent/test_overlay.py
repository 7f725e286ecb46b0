"""The node-agent never writes into the model repository: the files it rewrites (vLLM's
engine arguments for tp/pp) go to a per-container overlay, which a real tritonserver serves."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import tritonclient.http as httpclient

from tarn_node_agent.overlay import build_overlay
from tarn_node_agent.preparation import plan_for
from tarn_node_agent.settings import NodeAgentSettings
from tarn_node_agent.staging import use_in_place

CID = "container_1700000000000_0042_01_000002"
VLLM_CONFIG = 'name: "llm"\nbackend: "vllm"\ninstance_group [ { kind: KIND_MODEL } ]\n'
DOUBLING_MODEL = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(
            "OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() * 2)]) for r in requests]
'''


def fingerprint(root: Path) -> Dict[str, str]:
    """Every file under ``root`` with its content hash and mtime, and every directory: any
    write shows. Python's bytecode cache, which the python-backend stub may write, is not the agent's."""
    return {str(p.relative_to(root)): f"{hashlib.sha256(p.read_bytes()).hexdigest()}@{p.stat().st_mtime_ns}"
            if p.is_file() else "dir" for p in sorted(root.rglob("*")) if "__pycache__" not in p.parts}


def _vllm_repository(root: Path) -> None:
    (root / "llm" / "1").mkdir(parents=True)
    (root / "llm" / "config.pbtxt").write_text(VLLM_CONFIG)
    (root / "llm" / "1" / "model.json").write_text(json.dumps({"model": "facebook/opt-125m"}))
    (root / "llm" / "1" / "tokenizer.json").write_text("{}")


def _bind_read_only(source: Path, mount: Path) -> bool:
    if subprocess.run(["mount", "--bind", str(source), str(mount)], capture_output=True).returncode != 0:
        return False
    if subprocess.run(["mount", "-o", "remount,ro,bind", str(mount)], capture_output=True).returncode != 0:
        subprocess.run(["umount", str(mount)], capture_output=True)
        return False
    return True


def test_the_vllm_parallelism_rewrite_goes_to_the_overlay_and_works_on_a_read_only_repository(tmp_path):
    source, repository = tmp_path / "source", tmp_path / "nfs"
    source.mkdir()
    repository.mkdir()
    _vllm_repository(source)
    if not _bind_read_only(source, repository):
        pytest.skip("cannot bind-mount read-only here (needs root and CAP_SYS_ADMIN)")
    try:
        before = fingerprint(repository)
        settings = NodeAgentSettings(model_repository=str(repository), container_id=CID, tritonserver=sys.executable,
                                     tp=2, pp=2, overlay_dir=tmp_path / "overlay")
        plan = plan_for(settings, use_in_place(str(repository)), {}, gpu_count=None)

        overlay = tmp_path / "overlay" / CID
        assert f"--model-repository={overlay}" in plan.argv
        engine = json.loads((overlay / "llm" / "1" / "model.json").read_text())
        assert engine == {"model": "facebook/opt-125m", "tensor_parallel_size": 2, "pipeline_parallel_size": 2}
        assert (overlay / "llm" / "config.pbtxt").resolve() == repository / "llm" / "config.pbtxt"
        assert (overlay / "llm" / "1" / "tokenizer.json").resolve() == repository / "llm" / "1" / "tokenizer.json"
        assert fingerprint(repository) == before
        # A restart of the agent in the same container builds it anew, over the old one.
        plan_for(settings, use_in_place(str(repository)), {}, gpu_count=None)
        assert json.loads((overlay / "llm" / "1" / "model.json").read_text())["tensor_parallel_size"] == 2
    finally:
        subprocess.run(["umount", str(repository)], capture_output=True)


def test_a_single_gpu_launch_serves_the_repository_itself_without_an_overlay(tmp_path):
    repository = tmp_path / "models"
    repository.mkdir()
    _vllm_repository(repository)
    settings = NodeAgentSettings(model_repository=str(repository), container_id=CID, tritonserver=sys.executable,
                                 overlay_dir=tmp_path / "overlay")
    plan = plan_for(settings, use_in_place(str(repository)), {}, gpu_count=None)
    assert f"--model-repository={repository}" in plan.argv and not (tmp_path / "overlay").exists()


@pytest.mark.integration
def test_tritonserver_serves_the_overlay_with_the_rewritten_file_and_the_linked_rest(
        triton_model_repo, tmp_path, start_triton):
    before = fingerprint(triton_model_repo)
    overlay = build_overlay(triton_model_repo, tmp_path / "overlay" / CID,
                            {Path("identity/1/model.py"): DOUBLING_MODEL})

    server = start_triton(overlay)
    client = httpclient.InferenceServerClient(url=server.http_host_port)
    try:
        values = np.arange(4, dtype=np.float32)
        tensor = httpclient.InferInput("INPUT0", [4], "FP32")
        tensor.set_data_from_numpy(values)
        np.testing.assert_array_equal(client.infer("identity", [tensor]).as_numpy("OUTPUT0"), values * 2)
        inputs = []
        for name in ("INPUT0", "INPUT1"):
            tensor = httpclient.InferInput(name, [4], "FP32")
            tensor.set_data_from_numpy(values)
            inputs.append(tensor)
        np.testing.assert_array_equal(client.infer("add_sub", inputs).as_numpy("OUTPUT0"), values * 2)
    finally:
        client.close()
    assert (overlay / "add_sub").is_symlink() and not (overlay / "identity").is_symlink()
    assert fingerprint(triton_model_repo) == before
