"""The real-tritonserver fixture: inference over both protocols, metrics, failures, clean stop."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.support.ports import free_ports
from tests.support.triton import (
    TritonPorts,
    TritonServer,
    TritonStartError,
    triton_runtime,
    tritonserver_command,
)

integration = pytest.mark.integration
CLIENTS = {"http": httpclient, "grpc": grpcclient}


@contextlib.contextmanager
def _client(server: TritonServer, protocol: str):
    # Closed after use: Triton's shutdown waits for open HTTP connections.
    if protocol == "http":
        client = httpclient.InferenceServerClient(url=server.http_host_port)
    else:
        client = grpcclient.InferenceServerClient(url=server.grpc_url)
    try:
        yield client
    finally:
        client.close()


def _infer(server: TritonServer, protocol: str, model: str, inputs: dict, outputs: list) -> dict:
    module = CLIENTS[protocol]
    tensors = []
    for name, values in inputs.items():
        tensor = module.InferInput(name, list(values.shape), "FP32")
        tensor.set_data_from_numpy(values)
        tensors.append(tensor)
    requested = [module.InferRequestedOutput(name) for name in outputs]
    with _client(server, protocol) as client:
        result = client.infer(model, tensors, outputs=requested)
    return {name: result.as_numpy(name) for name in outputs}


def _success_count(server: TritonServer, model: str) -> float:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as response:
        text = response.read().decode()
    match = re.search(
        rf'^nv_inference_request_success\{{model="{model}",version="1"\}} (\S+)$', text, re.MULTILINE
    )
    assert match, f"no nv_inference_request_success for {model} in:\n{text}"
    return float(match.group(1))


def _process_group_members(pgid: int) -> list:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    members.append(int(entry))
            except ProcessLookupError:
                pass
    return members


def _break_config(repo: Path, model: str) -> None:
    config = repo / model / "config.pbtxt"
    config.write_text(config.read_text().replace("TYPE_FP32", "TYPE_NOT_A_TYPE", 1))


# -- without a server ----------------------------------------------------------------


def test_free_ports_are_distinct_and_bindable():
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(1024 <= port <= 65535 for port in ports)


def test_command_points_the_stub_at_this_interpreter(tmp_path):
    argv, env = tritonserver_command(
        tmp_path, TritonPorts(1, 2, 3), model_control_mode="explicit", extra_args=["--log-verbose=1"]
    )
    backend_dir = Path(next(a for a in argv if a.startswith("--backend-directory=")).split("=", 1)[1])

    assert Path(argv[0]).name == "tritonserver" and os.access(argv[0], os.X_OK)
    assert os.access(backend_dir / "python" / "triton_python_backend_stub", os.X_OK)
    assert (backend_dir / "python" / "libtriton_python.so").is_file()
    assert env["LD_LIBRARY_PATH"].split(os.pathsep)[0] == sysconfig.get_config_var("LIBDIR")
    assert "--model-control-mode=explicit" in argv and argv[-1] == "--log-verbose=1"
    assert "--http-port=1" in argv and "--grpc-port=2" in argv and "--metrics-port=3" in argv


def test_environment_follows_the_models_interpreter(tmp_path):
    # The interpreter behind the venv: another executable, asked about itself in a subprocess.
    base = os.path.realpath(sys.executable)
    if Path(base).parent == Path(sys.executable).parent:
        pytest.skip("this venv copies its interpreter rather than linking it")

    runtime = triton_runtime(python_executable=base, cache_dir=str(tmp_path))
    env = runtime.environment({"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/opt/lib"})

    assert runtime.backend_directory.parent == tmp_path
    assert env["PATH"] == f"{Path(base).parent}{os.pathsep}/usr/bin"
    assert env["LD_LIBRARY_PATH"].split(os.pathsep) == [
        str(runtime.python.libdir),
        str(runtime.install.libs),
        "/opt/lib",
    ]


def test_unknown_model_control_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="model_control_mode"):
        tritonserver_command(tmp_path, TritonPorts(1, 2, 3), model_control_mode="sometimes")


# -- against the session server ------------------------------------------------------


@integration
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_identity_returns_its_input(triton_server, protocol):
    values = np.array([0.5, -1.0, 3.25, 7.0, 1e6], dtype=np.float32)

    outputs = _infer(triton_server, protocol, "identity", {"INPUT0": values}, ["OUTPUT0"])

    np.testing.assert_array_equal(outputs["OUTPUT0"], values)
    assert outputs["OUTPUT0"].dtype == np.float32


@integration
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_add_sub_returns_sum_and_difference(triton_server, protocol):
    a = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    b = np.array([0.5, -2.0, 3.0, 10.0], dtype=np.float32)

    outputs = _infer(triton_server, protocol, "add_sub", {"INPUT0": a, "INPUT1": b}, ["OUTPUT0", "OUTPUT1"])

    np.testing.assert_array_equal(outputs["OUTPUT0"], a + b)
    np.testing.assert_array_equal(outputs["OUTPUT1"], a - b)


@integration
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_add_sub_rejects_a_wrong_shape(triton_server, protocol):
    wrong = np.zeros(3, dtype=np.float32)
    with pytest.raises(InferenceServerException):
        _infer(triton_server, protocol, "add_sub", {"INPUT0": wrong, "INPUT1": wrong}, ["OUTPUT0"])


@integration
def test_metrics_count_successful_requests(triton_server):
    before = _success_count(triton_server, "identity")

    for protocol in ("http", "grpc"):
        _infer(triton_server, protocol, "identity", {"INPUT0": np.ones(2, dtype=np.float32)}, ["OUTPUT0"])

    assert _success_count(triton_server, "identity") == before + 2


# -- servers of the test's own -------------------------------------------------------


@integration
def test_bad_model_config_fails_start_with_the_log_tail(triton_model_repo, start_triton):
    _break_config(triton_model_repo, "identity")

    with pytest.raises(TritonStartError) as failure:
        start_triton(triton_model_repo, ready_timeout_s=60)

    message = str(failure.value)
    errors = message.split("--- errors in the log ---", 1)[1].split("--- last lines", 1)[0]
    assert "exited with status" in message
    assert "TYPE_NOT_A_TYPE" in errors and "identity/config.pbtxt" in errors


@integration
def test_bad_model_config_fails_its_load_in_explicit_mode(triton_model_repo, start_triton):
    _break_config(triton_model_repo, "identity")
    server = start_triton(triton_model_repo, model_control_mode="explicit")

    with _client(server, "http") as client:
        client.load_model("add_sub")
        with pytest.raises(InferenceServerException, match="identity"):
            client.load_model("identity")

        assert client.is_model_ready("add_sub")
        assert not client.is_model_ready("identity")
    assert server.is_running()
    assert "TYPE_NOT_A_TYPE" in server.log_tail()


@integration
def test_explicit_mode_starts_with_nothing_loaded_and_loads_on_request(triton_model_repo, start_triton):
    server = start_triton(triton_model_repo, model_control_mode="explicit")

    with _client(server, "grpc") as client:
        assert not client.is_model_ready("identity")
        client.load_model("identity")

    outputs = _infer(server, "grpc", "identity", {"INPUT0": np.arange(3, dtype=np.float32)}, ["OUTPUT0"])
    np.testing.assert_array_equal(outputs["OUTPUT0"], np.arange(3, dtype=np.float32))


@integration
def test_missed_ready_deadline_fails_loudly_and_stops_the_server(tmp_path):
    server = TritonServer(
        tmp_path, model_control_mode="explicit", ready_timeout_s=0.0, log_path=tmp_path / "tritonserver.log"
    )

    with pytest.raises(
        TritonStartError, match=r"not ready at http://127\.0\.0\.1:\d+/v2/health/ready within 0 s"
    ):
        server.start()

    assert not server.is_running()
    assert _process_group_members(server.pid) == []


@integration
def test_stop_ends_the_server_and_its_stubs(triton_model_repo, start_triton):
    server = start_triton(triton_model_repo)
    pgid = server.pid
    assert len(_process_group_members(pgid)) >= 3  # tritonserver and one stub per model

    started = time.monotonic()
    returncode = server.stop()

    assert returncode == 0  # SIGTERM was enough
    assert time.monotonic() - started < server.exit_timeout_s
    assert _process_group_members(pgid) == []
    assert not server.is_running()
