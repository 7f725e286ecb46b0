"""gRPC around the gateway's decisions (issue 14, item 2): Triton's GRPCInferenceService
through the real HAProxy 2.6 (haproxy-authz.cfg.tmpl's HTTP/2 frontend, tarn_authz_grpc.lua)
to the real tritonserver, decided by the real tarn-authz. Clients are tritonclient.grpc with
basic credentials in the `authorization` metadata; hand-made messages go through grpcio."""
from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Optional

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from tarn_authz.app import create_app
from tests.authz.servers import ServerThread
from tests.authz.support import GATEWAY_TOKEN, settings_for
from tests.support.ports import free_port
from tests.authz.test_haproxy_pep import PASSWORDS, POLICIES
from tests.support.haproxy_authz import haproxy_authz

pytestmark = pytest.mark.integration
CACHE_TTL_S = 1.0
MAX_MESSAGE = 65536
SERVICE = "/inference.GRPCInferenceService/"


def credentials(user: Optional[str], password: Optional[str] = None) -> dict:
    if user is None:
        return {}
    token = base64.b64encode(f"{user}:{password or PASSWORDS[user]}".encode()).decode()
    return {"authorization": f"Basic {token}"}


class GrpcGateway:
    def __init__(self, address: str, authz: ServerThread, authz_port: int, tmp: Path) -> None:
        self.address, self.authz, self.authz_port, self.tmp = address, authz, authz_port, tmp
        self.client = grpcclient.InferenceServerClient(url=address)
        self.channel = grpc.insecure_channel(address)

    def raw(self, method: str, body: bytes, user: Optional[str] = "alice") -> bytes:
        """Send ``body`` as the request message as is (no protobuf encoding on our side)."""
        call = self.channel.unary_unary(SERVICE + method)
        return call(body, metadata=list(credentials(user).items()), timeout=30)


def add_sub_inputs():
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        tensor = grpcclient.InferInput(name, [4], "FP32")
        tensor.set_data_from_numpy(np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32))
        inputs.append(tensor)
    return inputs


def identity_inputs():
    tensor = grpcclient.InferInput("INPUT0", [1], "FP32")
    tensor.set_data_from_numpy(np.array([7.0], dtype=np.float32))
    return [tensor]


def add_sub_request() -> bytes:
    request = service_pb2.ModelInferRequest(model_name="add_sub")
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="FP32", shape=[4])
        request.raw_input_contents.append(np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32).tobytes())
    return request.SerializeToString()


def grpc_status(call) -> str:
    with pytest.raises(InferenceServerException) as raised:
        call()
    return raised.value.status()


def raw_status(gateway: GrpcGateway, method: str, body: bytes, user: Optional[str] = "alice") -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        gateway.raw(method, body, user)
    return raised.value.code()


@pytest.fixture(scope="module")
def gateway(triton_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("haproxy-grpc")
    (tmp / "policies").mkdir()
    (tmp / "policies" / "triton_prod.json").write_text(json.dumps(POLICIES))
    authz_port = free_port()
    authz = ServerThread(create_app(settings_for(tmp)), port=authz_port).start()
    grpc_port = free_port()
    gw = GrpcGateway(f"127.0.0.1:{grpc_port}", authz, authz_port, tmp)

    def ready(_url: str) -> bool:
        try:
            return gw.client.is_server_ready(headers=credentials("alice"))
        except InferenceServerException:
            return False

    try:
        with haproxy_authz(tmp, PASSWORDS, "haproxy's gRPC frontend in front of triton", ready,
                           authz_url=f"http://127.0.0.1:{authz_port}", gateway_token=GATEWAY_TOKEN,
                           servers=[f"server triton1 {triton_server.http_host_port} check"], cache_ttl_s=CACHE_TTL_S,
                           grpc_port=grpc_port, grpc_servers=[f"server triton1 {triton_server.grpc_url} check"],
                           grpc_max_message=MAX_MESSAGE):
            yield gw
    finally:
        gw.client.close()
        gw.channel.close()
        gw.authz.stop()


def test_allowed_user_infers_through_the_grpc_gateway(gateway):
    result = gateway.client.infer("add_sub", add_sub_inputs(), headers=credentials("alice"))
    assert result.as_numpy("OUTPUT0").tolist() == [2.0, 4.0, 6.0, 8.0]
    versioned = gateway.client.infer("add_sub", add_sub_inputs(), model_version="1", headers=credentials("alice"))
    assert versioned.as_numpy("OUTPUT1").tolist() == [0.0, 0.0, 0.0, 0.0]
    assert gateway.client.infer("identity", identity_inputs(), headers=credentials("bob")).as_numpy(
        "OUTPUT0").tolist() == [7.0]


def test_denied_user_gets_permission_denied(gateway):
    assert grpc_status(lambda: gateway.client.infer("add_sub", add_sub_inputs(), headers=credentials("bob"))) \
        == "StatusCode.PERMISSION_DENIED"
    assert grpc_status(lambda: gateway.client.infer("identity", identity_inputs(), headers=credentials("alice"))) \
        == "StatusCode.PERMISSION_DENIED"


def test_model_metadata_ready_config_and_statistics_need_metadata(gateway):
    alice, carol = credentials("alice"), credentials("carol")
    calls = {
        "metadata": lambda h: gateway.client.get_model_metadata("add_sub", headers=h),
        "config": lambda h: gateway.client.get_model_config("add_sub", headers=h),
        "statistics": lambda h: gateway.client.get_inference_statistics("add_sub", headers=h),
    }
    for name, call in calls.items():
        call(alice)  # infer implies metadata
        assert grpc_status(lambda: call(carol)) == "StatusCode.PERMISSION_DENIED", name  # list only
    assert gateway.client.is_model_ready("add_sub", headers=alice) is True
    # tritonclient turns a refused ModelReady into False, so the status is read from grpcio.
    ready = service_pb2.ModelReadyRequest(name="add_sub").SerializeToString()
    assert raw_status(gateway, "ModelReady", ready, "carol") is grpc.StatusCode.PERMISSION_DENIED
    # An empty name asks for every model's statistics: refused, not decided on "".
    assert grpc_status(lambda: gateway.client.get_inference_statistics("", headers=alice)) \
        == "StatusCode.PERMISSION_DENIED"


def test_server_health_and_metadata_need_only_authentication(gateway):
    bob = credentials("bob")
    assert gateway.client.is_server_live(headers=bob) and gateway.client.is_server_ready(headers=bob)
    assert gateway.client.get_server_metadata(headers=bob).name == "triton"
    assert grpc_status(lambda: gateway.client.get_server_metadata()) == "StatusCode.UNAUTHENTICATED"


def test_missing_or_wrong_credentials_get_unauthenticated(gateway):
    assert grpc_status(lambda: gateway.client.infer("add_sub", add_sub_inputs())) == "StatusCode.UNAUTHENTICATED"
    wrong = credentials("alice", "guess")
    assert grpc_status(lambda: gateway.client.infer("add_sub", add_sub_inputs(), headers=wrong)) \
        == "StatusCode.UNAUTHENTICATED"


def test_a_refusal_is_a_trailers_only_grpc_response(gateway):
    # What any gRPC client reads (grpc-go insists on the content type): HTTP/2 200, no body.
    done = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "--http2-prior-knowledge", "-X", "POST",
                           "-H", "content-type: application/grpc", "-H", "te: trailers",
                           f"http://{gateway.address}{SERVICE}RepositoryModelUnload"],
                          capture_output=True, text=True, timeout=30)
    headers = done.stdout.lower()
    assert done.returncode == 0 and headers.startswith("http/2 200"), done.stdout + done.stderr
    assert "content-type: application/grpc" in headers and "grpc-status: 16" in headers
    assert "content-length: 0" in headers


def test_spoofed_identity_metadata_is_ignored(gateway):
    spoof = dict(credentials("bob"), **{"x-tarn-user": "alice", "x-knox-actor-id": "alice"})
    assert grpc_status(lambda: gateway.client.infer("add_sub", add_sub_inputs(), headers=spoof)) \
        == "StatusCode.PERMISSION_DENIED"


def test_repository_index_lists_only_what_the_user_may_list(gateway):
    def names(user):
        return sorted(m.name for m in gateway.client.get_model_repository_index(headers=credentials(user)).models)

    assert names("carol") == ["add_sub", "identity"]
    assert names("alice") == ["add_sub"]
    assert names("bob") == []
    ready_only = service_pb2.RepositoryIndexRequest(ready=True).SerializeToString()
    answer = service_pb2.RepositoryIndexResponse.FromString(gateway.raw("RepositoryIndex", ready_only, "alice"))
    assert [(m.name, m.state) for m in answer.models] == [("add_sub", "READY")]


def test_stream_infer_and_repository_control_are_refused(gateway):
    alice = credentials("alice")
    for call in (lambda: gateway.client.load_model("add_sub", headers=alice),
                 lambda: gateway.client.unload_model("add_sub", headers=alice),
                 lambda: gateway.client.get_system_shared_memory_status(headers=alice),
                 lambda: gateway.client.get_trace_settings(headers=alice),
                 lambda: gateway.client.get_log_settings(headers=alice)):
        assert grpc_status(call) == "StatusCode.PERMISSION_DENIED"
    stream = gateway.channel.stream_stream(SERVICE + "ModelStreamInfer")
    with pytest.raises(grpc.RpcError) as raised:
        list(stream(iter([add_sub_request()]), metadata=list(alice.items()), timeout=30))
    assert raised.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "ModelStreamInfer" in raised.value.details()


def test_malformed_messages_are_denied(gateway):
    good = add_sub_request()
    assert service_pb2.ModelInferResponse.FromString(gateway.raw("ModelInfer", good)).model_name == "add_sub"
    second_name = service_pb2.ModelInferRequest(model_name="identity").SerializeToString()
    bad = {
        "truncated": good[:-3],
        "a length past the end": b"\x0a\x7fadd_sub",
        "a varint that never ends": b"\x0a\x07add_sub\x10" + b"\xff" * 11,
        "no model name": service_pb2.ModelInferRequest(id="x").SerializeToString(),
        # protobuf lets the last copy win: Triton would serve identity, which alice may not infer on
        "a second model name": good + second_name,
        "a group (wire type 3)": b"\x0a\x07add_sub\x1b",
    }
    for what, body in bad.items():
        assert raw_status(gateway, "ModelInfer", body) is grpc.StatusCode.PERMISSION_DENIED, what


def test_large_messages_are_read_whole_or_refused(gateway):
    def infer_with(contents: int) -> bytes:
        return service_pb2.ModelInferRequest(model_name="add_sub", raw_input_contents=[b"\0" * contents]
                                             ).SerializeToString()

    # Complete within the limit: decided and passed on (Triton itself refuses the odd tensor).
    assert raw_status(gateway, "ModelInfer", infer_with(MAX_MESSAGE - 64)) is grpc.StatusCode.INVALID_ARGUMENT
    assert raw_status(gateway, "ModelInfer", infer_with(MAX_MESSAGE + 1)) is grpc.StatusCode.RESOURCE_EXHAUSTED
    # Past HAProxy's buffer the refusal comes while the client still sends: HAProxy resets the
    # stream after its answer, and grpcio may report the reset. Never Triton's INVALID_ARGUMENT.
    for size in (4 * MAX_MESSAGE, 1 << 20):
        assert raw_status(gateway, "ModelInfer", infer_with(size)) in (
            grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED), size


def test_authz_down_gives_unavailable(gateway):
    gateway.authz.stop()
    try:
        time.sleep(CACHE_TTL_S + 0.5)  # let cached decisions expire
        assert grpc_status(lambda: gateway.client.infer("add_sub", add_sub_inputs(), headers=credentials("alice"))) \
            == "StatusCode.UNAVAILABLE"
        assert grpc_status(lambda: gateway.client.get_model_repository_index(headers=credentials("carol"))) \
            == "StatusCode.UNAVAILABLE"
        assert gateway.client.is_server_live(headers=credentials("alice"))  # no model right needed
    finally:
        gateway.authz = ServerThread(create_app(settings_for(gateway.tmp)), port=gateway.authz_port).start()
    assert gateway.client.infer("add_sub", add_sub_inputs(), headers=credentials("alice")).as_numpy("OUTPUT0") \
        is not None
