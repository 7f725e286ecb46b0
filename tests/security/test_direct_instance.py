"""Bypass: reaching an instance's port directly, around HAProxy, Knox and authz. The real
tritonserver runs with the node-agent's own restriction flags (launch.restriction_args): every
API but health and metadata needs the deployment's key in tarn-gateway-key. Straight to the
instance, without it (or with a wrong one), over HTTP and gRPC, each is refused and a load or
unload changes nothing; health and metadata stay open for probes. Through the real HAProxy
(haproxy-authz.cfg.tmpl, the key from its map) and the real Knox (the key from its alias), the
same requests succeed, a client's own tarn-gateway-key is never what reaches Triton.

Over gRPC Triton reads the key from the metadata key triton-grpc-protocol-tarn-gateway-key.

| attempt (no key, straight to the instance)   | HTTP | gRPC              |
|----------------------------------------------|------|-------------------|
| infer                                        | 403  | UNAVAILABLE       |
| repository index, load, unload               | 403  | UNAVAILABLE       |
| model config, statistics                     | 403  | UNAVAILABLE       |
| trace and log settings, shared-memory status | 403  | UNAVAILABLE       |
| health, server and model metadata            | 200  | OK                |
"""
from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Callable, Dict, List, Tuple

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from kazoo.client import KazooClient
from tritonclient.utils import InferenceServerException

from tarn_node_agent.errors import TritonError
from tarn_node_agent.launch import GATEWAY_KEY_HEADER, restriction_args
from tarn_node_agent.triton import TritonApi
from tests.knox.support import GATEWAY_TOKEN, USER_HEADER, AuthzProcess, KnoxGateway, build_knox, topology
from tests.knox.test_knox_e2e import znode_record
from tests.support.triton import TritonServer
from tests.support.triton_fixture import copy_model_repository
from tests.support.haproxy_authz import haproxy_authz

pytestmark = pytest.mark.integration
KEY = "test-gateway-key_" + uuid.uuid4().hex
PASSWORDS = {"alice": "alice-pw", "carol": "carol-pw"}
REFUSED = "This API is restricted, expecting header 'tarn-gateway-key'"
# Triton 2.51 looks for a restricted gRPC protocol's key under this prefix (grpc_utils.h).
GRPC_KEY_HEADER = "triton-grpc-protocol-" + GATEWAY_KEY_HEADER


def add_sub_body() -> dict:
    data = [1.0, 2.0, 3.0, 4.0]
    return {"inputs": [{"name": n, "shape": [4], "datatype": "FP32", "data": data} for n in ("INPUT0", "INPUT1")]}


# (method, path, body): every restricted group the agent names, on the test models.
RESTRICTED_HTTP: List[Tuple[str, str, object]] = [
    ("POST", "/v2/models/add_sub/infer", add_sub_body()),
    ("POST", "/v2/models/add_sub/versions/1/infer", add_sub_body()),
    ("POST", "/v2/repository/index", {}),
    ("POST", "/v2/repository/models/add_sub/unload", {}),
    ("POST", "/v2/repository/models/add_sub/load", {}),
    ("GET", "/v2/models/add_sub/config", None),
    ("GET", "/v2/models/add_sub/stats", None),
    ("GET", "/v2/models/stats", None),
    ("GET", "/v2/trace/setting", None),
    ("POST", "/v2/trace/setting", {"trace_rate": "1000"}),
    ("GET", "/v2/logging", None),
    ("POST", "/v2/logging", {"log_verbose_level": 1}),
    ("GET", "/v2/systemsharedmemory/status", None),
    ("POST", "/v2/systemsharedmemory/region/r/register", {"key": "/r", "offset": 0, "byte_size": 8}),
    ("GET", "/v2/cudasharedmemory/status", None),
]
OPEN_HTTP = ["/v2/health/ready", "/v2/health/live", "/v2", "/v2/models/add_sub", "/v2/models/add_sub/ready",
             "/v2/models/add_sub/versions/1"]


def grpc_add_sub(client: grpcclient.InferenceServerClient, **kwargs):
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        tensor = grpcclient.InferInput(name, [4], "FP32")
        tensor.set_data_from_numpy(np.array([1, 2, 3, 4], dtype=np.float32))
        inputs.append(tensor)
    return client.infer("add_sub", inputs, **kwargs)


RESTRICTED_GRPC: Dict[str, Callable[..., object]] = {
    "infer": grpc_add_sub,
    "repository index": lambda c, **kw: c.get_model_repository_index(**kw),
    "unload": lambda c, **kw: c.unload_model("add_sub", **kw),
    "load": lambda c, **kw: c.load_model("add_sub", **kw),
    "config": lambda c, **kw: c.get_model_config("add_sub", **kw),
    "statistics": lambda c, **kw: c.get_inference_statistics("add_sub", **kw),
    "trace settings": lambda c, **kw: c.get_trace_settings(**kw),
    "log settings": lambda c, **kw: c.get_log_settings(**kw),
    "shared memory": lambda c, **kw: c.get_system_shared_memory_status(**kw),
}


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("restricted-triton")
    server = TritonServer(copy_model_repository(tmp / "models"), model_control_mode="explicit",
                          extra_args=["--load-model=*", *restriction_args(KEY)], log_path=tmp / "tritonserver.log")
    with server:
        yield server
    # The harness writes the command line first ("$ ..."); Triton's own output must not hold the key.
    logged = [line for line in server.log_path.read_text(errors="replace").splitlines() if not line.startswith("$ ")]
    assert not [line for line in logged if KEY in line], "Triton logged its key"


@pytest.fixture
def grpc(instance):
    client = grpcclient.InferenceServerClient(instance.grpc_url)
    yield client
    client.close()


def direct(instance: TritonServer, method: str, path: str, body=None, headers=None) -> httpx.Response:
    return httpx.request(method, instance.http_url + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("method, path, body", RESTRICTED_HTTP, ids=[f"{m} {p}" for m, p, _ in RESTRICTED_HTTP])
@pytest.mark.parametrize("key", [None, "wrong-" + KEY, KEY.upper()], ids=["no key", "wrong key", "key in other case"])
def test_a_direct_http_request_without_the_key_is_refused(instance, method, path, body, key):
    response = direct(instance, method, path, body, {GATEWAY_KEY_HEADER: key} if key else None)
    assert response.status_code == 403, response.text
    assert REFUSED in response.text


def test_a_direct_unload_without_the_key_leaves_the_model_served(instance):
    assert direct(instance, "POST", "/v2/repository/models/add_sub/unload", {}).status_code == 403
    assert direct(instance, "GET", "/v2/models/add_sub/ready").status_code == 200
    keyed = direct(instance, "POST", "/v2/models/add_sub/infer", add_sub_body(), {GATEWAY_KEY_HEADER: KEY})
    assert keyed.status_code == 200, keyed.text


@pytest.mark.parametrize("call", sorted(RESTRICTED_GRPC))
def test_a_direct_grpc_call_without_the_key_is_refused(grpc, call):
    with pytest.raises(InferenceServerException) as refused:
        RESTRICTED_GRPC[call](grpc)
    assert refused.value.status() == "StatusCode.UNAVAILABLE"
    assert f"This protocol is restricted, expecting header '{GRPC_KEY_HEADER}'" in refused.value.message()
    for wrong in ({GRPC_KEY_HEADER: "wrong-" + KEY}, {GATEWAY_KEY_HEADER: KEY}):
        with pytest.raises(InferenceServerException, match="restricted"):
            RESTRICTED_GRPC[call](grpc, headers=wrong)


def test_the_key_is_what_opens_them_over_both_protocols(instance, grpc):
    """Not a server that refuses everything: with the key, the same calls are answered."""
    with_key = {GATEWAY_KEY_HEADER: KEY}
    for method, path, body in RESTRICTED_HTTP:
        if "register" in path or "cudasharedmemory" in path:
            continue  # no such region / no CUDA here: answered, but not 200
        assert direct(instance, method, path, body, with_key).status_code == 200, path
    with_key = {GRPC_KEY_HEADER: KEY}
    assert grpc_add_sub(grpc, headers=with_key).as_numpy("OUTPUT0").tolist() == [2, 4, 6, 8]
    assert {m.name for m in grpc.get_model_repository_index(headers=with_key).models} == {"add_sub", "identity"}
    assert grpc.get_model_config("add_sub", headers=with_key).config.name == "add_sub"
    direct(instance, "POST", "/v2/logging", {"log_verbose_level": 0}, {GATEWAY_KEY_HEADER: KEY})


def test_health_and_metadata_stay_open_for_probes(instance, grpc):
    for path in OPEN_HTTP:
        assert direct(instance, "GET", path).status_code == 200, path
    assert grpc.is_server_live() and grpc.is_server_ready() and grpc.is_model_ready("add_sub")
    assert grpc.get_server_metadata().name == "triton"
    assert grpc.get_model_metadata("add_sub").name == "add_sub"


def test_the_agents_own_repository_calls_carry_the_key(instance):
    """The agent announces its models from the (restricted) repository index, and loads and
    unloads on command: its Triton adapter sends the key it started Triton with."""
    async def calls(send_key: bool):
        api = TritonApi("127.0.0.1", instance.ports.http, instance.ports.metrics)
        if send_key:
            api.send_gateway_key(GATEWAY_KEY_HEADER, KEY)
        try:
            models = await api.ready_models()
            await api.unload_model("identity")
            await api.load_model("identity")
            return models
        finally:
            await api.close()

    assert asyncio.run(calls(True)) == ["add_sub", "identity"]
    with pytest.raises(TritonError, match="403"):
        asyncio.run(calls(False))
    assert direct(instance, "GET", "/v2/models/identity/ready").status_code == 200


# -- through the gateways -----------------------------------------------------------------

@pytest.fixture(scope="module")
def authz(tmp_path_factory):
    process = AuthzProcess(tmp_path_factory.mktemp("direct-authz")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def haproxy(instance, authz, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("direct-haproxy")
    keys = tmp / "gateway-keys.map"
    keys.write_text(f"triton_backend {KEY}\n")
    keys.chmod(0o600)
    with haproxy_authz(tmp, PASSWORDS, "haproxy with authz and the gateway key", authz_url=authz.url,
                       gateway_token=GATEWAY_TOKEN, gateway_keys=keys,
                       servers=[f"server triton1 {instance.http_host_port} check"]) as url:
        yield url


def basic(user: str) -> Dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{PASSWORDS[user]}".encode()).decode()}


@pytest.mark.parametrize("client_key", [None, "wrong-" + KEY], ids=["no client key", "client sends a wrong key"])
def test_the_same_requests_through_haproxy_succeed(haproxy, client_key):
    extra = {GATEWAY_KEY_HEADER: client_key} if client_key else {}
    infer = httpx.post(haproxy + "/v2/models/add_sub/infer", json=add_sub_body(), headers={**basic("alice"), **extra},
                       timeout=30)
    assert infer.status_code == 200, infer.text
    assert {o["name"]: o["data"] for o in infer.json()["outputs"]}["OUTPUT0"] == [2.0, 4.0, 6.0, 8.0]
    index = httpx.post(haproxy + "/v2/repository/index", json={}, headers={**basic("carol"), **extra}, timeout=30)
    assert index.status_code == 200, index.text
    assert sorted(e["name"] for e in index.json()) == ["add_sub", "identity"]


@pytest.fixture(scope="module")
def knox(stack, instance, authz, tmp_path_factory):
    build_knox()
    tmp = tmp_path_factory.mktemp("direct-knox")
    zk = KazooClient(hosts=stack.env["ZK_HOSTS"])
    zk.start(timeout=15)
    base = f"/tarn-direct-{uuid.uuid4().hex[:8]}"
    namespace = f"{base}/services/triton"
    gateway = KnoxGateway(tmp / "knox")
    try:
        zk.create(f"{namespace}/instances/{instance.http_host_port}", znode_record(instance, "container_direct"),
                  ephemeral=True, makepath=True)
        gateway.prepare({"tarn": topology(stack.env["ZK_HOSTS"], namespace, authz.url)},
                        aliases={"tarn.gateway.key": KEY})
        gateway.start("/tarn/triton/v2/health/ready", {USER_HEADER: "alice"})
        yield f"{gateway.url}/tarn/triton"
    finally:
        gateway.stop()
        zk.delete(base, recursive=True)
        zk.stop()
        zk.close()


@pytest.mark.parametrize("client_key", [None, "wrong-" + KEY], ids=["no client key", "client sends a wrong key"])
def test_the_same_requests_through_knox_succeed(knox, client_key):
    extra = {GATEWAY_KEY_HEADER: client_key} if client_key else {}
    infer = httpx.post(knox + "/v2/models/add_sub/infer", json=add_sub_body(),
                       headers={USER_HEADER: "alice", **extra}, timeout=60)
    assert infer.status_code == 200, infer.text
    assert {o["name"]: o["data"] for o in infer.json()["outputs"]}["OUTPUT0"] == [2.0, 4.0, 6.0, 8.0]
    index = httpx.post(knox + "/v2/repository/index", json={}, headers={USER_HEADER: "carol", **extra}, timeout=60)
    assert index.status_code == 200, index.text
    assert sorted(e["name"] for e in index.json()) == ["add_sub", "identity"]


# -- the real node-agent, the key from a real credential file on HDFS ------------------------

def redis_text(client) -> str:
    """Every stream entry, string and hash in Redis, as text."""
    readers = {b"stream": client.xrange, b"string": client.get, b"hash": client.hgetall}
    return "".join(repr(readers[client.type(k)](k)) for k in client.scan_iter("*") if client.type(k) in readers)


@pytest.mark.hadoop
def test_the_agent_restricts_its_triton_with_the_credential_files_key_and_publishes_it_nowhere(
        tmp_path, redis_url, deployment, hadoop_cluster, webhdfs):
    from tests.hadoop.cluster import create_jceks
    from tests.node_agent.agent_process import AgentProcess
    from tests.security.test_triton_environment import proc_environ

    folder = f"/tarn-test/direct-instance/{uuid.uuid4().hex[:12]}"
    key = "agent-key_" + uuid.uuid4().hex
    agent = None
    try:
        secrets = create_jceks(hadoop_cluster, f"{folder}/triton.jceks", {"tarn.gateway.key": key})
        agent = AgentProcess(tmp_path / "agent", redis_url, deployment, "container_1700000000000_0098_01_000002",
                             copy_model_repository(tmp_path / "models"),
                             extra=["--webhdfs-url", hadoop_cluster.webhdfs_url, "--hdfs-user", "root",
                                    "--hdfs-auth", "simple", "--secrets", secrets, "--require-gateway-key", "true"])
        ready = agent.wait_ready()
        assert ready.models == ["add_sub", "identity"]  # the agent listed them with its key
        url = f"http://{agent.address}"
        assert httpx.post(url + "/v2/models/add_sub/infer", json=add_sub_body(), timeout=30).status_code == 403
        assert httpx.post(url + "/v2/repository/index", json={}, timeout=30).status_code == 403
        keyed = httpx.post(url + "/v2/models/add_sub/infer", json=add_sub_body(), headers={GATEWAY_KEY_HEADER: key},
                           timeout=30)
        assert keyed.status_code == 200, keyed.text
        assert httpx.get(url + "/v2/health/ready", timeout=30).status_code == 200
        # Nowhere but Triton's command line: not its environment, the events, Redis or the agent's log.
        assert key not in "".join(proc_environ(agent.triton_pid).values())
        assert key not in redis_text(agent.redis)
        assert key not in agent.log_path.read_text(errors="replace")
    finally:
        if agent is not None:
            agent.stop()
        webhdfs.delete(folder, recursive=True)
