"""The seeds' three Open Inference Protocol clients (examples/) against a real tritonserver
serving deploy/demo/models, the repository the demo uploads to HDFS."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import tritonclient.http as httpclient
from PIL import Image

from tests.support.triton import TritonServer

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODELS = ROOT / "deploy" / "demo" / "models"
EXAMPLES = ROOT / "examples"
TEST_MODELS = ROOT / "tests" / "models"

# The seeds' interface: model -> (inputs, outputs) as (name, datatype, shape) with -1 for any.
SEEDS_INTERFACE = {
    "stable_diffusion": ([("PROMPT", "BYTES", [1])], [("IMAGES", "FP32", [-1, -1, -1, 3])]),
    "onnx_resnet50": ([("input_0", "FP32", [-1, 3, 224, 224])], [("output_0", "FP32", [-1, 1000])]),
    "pytorch_densenet": ([("INPUT__0", "FP32", [-1, 3, 224, 224])], [("OUTPUT__0", "FP32", [-1, 1000])]),
}


def test_the_identity_model_has_one_copy_the_demo_uploads_and_the_tests_link_to():
    demo, test = DEMO_MODELS / "identity", TEST_MODELS / "identity"
    assert not any(p.is_symlink() for p in demo.rglob("*")), "the demo repository is uploaded to HDFS: no links"
    for relative in ("config.pbtxt", "1/model.py"):
        assert (test / relative).is_symlink() and (test / relative).resolve() == (demo / relative).resolve(), relative


@pytest.fixture(scope="module")
def demo_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    # A copy: the python backend writes __pycache__ beside model.py.
    workdir = tmp_path_factory.mktemp("demo-triton")
    repository = shutil.copytree(DEMO_MODELS, workdir / "models", ignore=shutil.ignore_patterns("__pycache__"))
    with TritonServer(repository, log_path=workdir / "tritonserver.log") as server:
        yield server


def _run_example(name: str, server: TritonServer, *extra: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--url", server.http_host_port, *extra],
                          capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, f"{name}.py failed:\n{done.stdout}\n{done.stderr}\n{server.log_tail(30)}"
    return done.stdout


@pytest.mark.integration
@pytest.mark.parametrize("model", sorted(SEEDS_INTERFACE))
def test_stand_in_model_has_the_seeds_names_types_and_shapes(demo_triton: TritonServer, model: str):
    client = httpclient.InferenceServerClient(url=demo_triton.http_host_port)
    try:
        metadata = client.get_model_metadata(model)
    finally:
        client.close()
    inputs, outputs = SEEDS_INTERFACE[model]
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
        (n, d, s) for n, d, s in inputs]
    assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["outputs"]] == [
        (n, d, s) for n, d, s in outputs]


@pytest.mark.integration
def test_stable_diffusion_example_saves_an_rgb_image(demo_triton: TritonServer, tmp_path: Path):
    out = tmp_path / "generated_image.png"
    stdout = _run_example("stable_diffusion", demo_triton, "--out", str(out), cwd=tmp_path)
    assert "IMAGES shape: (1, 64, 64, 3), dtype float32" in stdout
    with Image.open(out) as image:
        assert (image.size, image.mode) == ((64, 64), "RGB")
        assert any(low != high for low, high in image.getextrema()), "a constant image: the pattern is broken"


@pytest.mark.integration
def test_stable_diffusion_same_prompt_same_image_other_prompt_other_image(demo_triton: TritonServer, tmp_path: Path):
    images = []
    for i, prompt in enumerate(("a red fox", "a red fox", "a blue whale")):
        out = tmp_path / f"{i}.png"
        _run_example("stable_diffusion", demo_triton, "--prompt", prompt, "--out", str(out), cwd=tmp_path)
        with Image.open(out) as image:
            images.append(image.tobytes())
    assert images[0] == images[1] and images[0] != images[2]


@pytest.mark.integration
def test_onnx_resnet50_example_gets_1000_logits(demo_triton: TritonServer, tmp_path: Path):
    stdout = _run_example("onnx_resnet50", demo_triton, cwd=tmp_path)
    assert "Inference result shape: (1, 1000), dtype float32" in stdout


@pytest.mark.integration
def test_pytorch_densenet_example_gets_probabilities_and_a_class(demo_triton: TritonServer, tmp_path: Path):
    stdout = _run_example("pytorch_densenet", demo_triton, cwd=tmp_path)
    assert "OUTPUT__0 shape: (1, 1000), dtype float32" in stdout
    predicted = re.search(r"Predicted class ID: (\d+)", stdout)
    assert predicted is not None and 0 <= int(predicted.group(1)) < 1000


@pytest.mark.integration
def test_densenet_stand_in_returns_a_distribution(demo_triton: TritonServer):
    import numpy as np

    client = httpclient.InferenceServerClient(url=demo_triton.http_host_port)
    try:
        data = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
        tensor = httpclient.InferInput("INPUT__0", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data)
        probabilities = client.infer("pytorch_densenet", [tensor]).as_numpy("OUTPUT__0")
    finally:
        client.close()
    assert probabilities.shape == (2, 1000) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4) and (probabilities >= 0).all()


def test_examples_send_basic_credentials_only_when_a_user_is_given():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from _common import headers, split_url
    finally:
        sys.path.remove(str(EXAMPLES))
    assert headers(None, "") is None
    assert headers("alice", "secret") == {"Authorization": "Basic YWxpY2U6c2VjcmV0"}
    assert split_url("http://haproxy:8080/") == ["haproxy:8080", "http://"]
    assert split_url("localhost:8000") == ["localhost:8000", ""]
