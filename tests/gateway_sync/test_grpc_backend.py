"""gateway-sync keeps a gRPC backend beside a deployment's HTTP one (TARN_GATEWAY_SYNC_GRPC_BACKENDS):
the real HAProxy rendered from haproxy-authz.cfg.tmpl with its gRPC frontend and no static
servers, real Redis and ZooKeeper, the real tritonserver as the instance, real tarn-authz."""
from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tarn_authz.app import create_app
from tarn_gateway_sync.haproxy import RuntimeApi
from tarn_gateway_sync.settings import GatewaySyncSettings
from tarn_shared import events as ev
from tarn_shared.errors import ConfigError
from tests.authz.servers import ServerThread
from tests.authz.support import GATEWAY_TOKEN
from tests.authz.support import settings_for as authz_settings
from tests.support.ports import free_port
from tests.support.scripts import load_script
from tests.support.stack_fixture import tarnstack

from .support import EventPublisher, in_process, settings_for, until

ROOT = Path(__file__).resolve().parents[2]
SERVICEDEF = json.loads((ROOT / "deploy" / "ranger" / "triton-servicedef.json").read_text())
POLICIES = {"serviceName": "triton_prod", "policyVersion": 1, "serviceDef": SERVICEDEF, "policies": [
    {"id": 1, "name": "p1", "isEnabled": True, "isAuditEnabled": True, "resources": {"model": {"values": ["identity"]}},
     "policyItems": [{"users": ["alice"], "accesses": [{"type": "infer", "isAllowed": True}]}]}]}
ALICE = {"authorization": "Basic " + base64.b64encode(b"alice:alice-pw").decode()}
PAIR = "triton_backend=triton_grpc_backend"


def test_grpc_backend_pairs_are_checked_at_start():
    base = dict(zk_hosts="zk:2181", haproxy_sockets=["/run/h.sock"], log_json=False)
    assert GatewaySyncSettings.load(**base, grpc_backends=[PAIR]).grpc_backend_of() == {
        "triton_backend": "triton_grpc_backend"}
    for bad in (["triton_backend"], ["triton_backend=x;del"], ["a=g", "b=g"], ["x=triton_backend"]):
        with pytest.raises(ConfigError):
            GatewaySyncSettings.load(**base, grpc_backends=bad)


@pytest.fixture
def grpc_haproxy(triton_server, tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "triton_prod.json").write_text(json.dumps(POLICIES))
    authz_port = free_port()
    authz = ServerThread(create_app(authz_settings(tmp_path)), port=authz_port).start()
    grpc_port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(load_script("deploy/haproxy/render_authz.py").render(
        run_dir=tmp_path, http_port=free_port(), index_port=free_port(), grpc_port=grpc_port,
        authz_url=f"http://127.0.0.1:{authz_port}", gateway_token=GATEWAY_TOKEN,
        users=["user alice insecure-password alice-pw"]))
    log_path = tmp_path / "haproxy.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    socket_path = str(tmp_path / "haproxy-authz.sock")
    try:
        tarnstack.wait_until(lambda: "Name: HAProxy" in tarnstack.haproxy_command(socket_path, "show info"),
                             "haproxy with the gRPC frontend", log_path, proc)
        yield socket_path, f"127.0.0.1:{grpc_port}"
    finally:
        tarnstack.stop_pid(proc.pid)
        authz.stop()


def grpc_infer(address: str):
    tensor = grpcclient.InferInput("INPUT0", [1], "FP32")
    tensor.set_data_from_numpy(np.array([3.0], dtype=np.float32))
    client = grpcclient.InferenceServerClient(url=address)
    try:
        return client.infer("identity", [tensor], headers=ALICE).as_numpy("OUTPUT0").tolist()
    finally:
        client.close()


@pytest.mark.integration
@pytest.mark.anyio
async def test_an_instance_is_routed_on_grpc_through_its_paired_backend(stack, redis_url, deployment, zk_hosts,
                                                                        triton_server, grpc_haproxy):
    socket_path, grpc_address = grpc_haproxy
    api = RuntimeApi(socket_path)
    publisher = EventPublisher(redis_url, deployment)
    endpoints = ev.Endpoints(host="127.0.0.1", http_port=triton_server.ports.http, grpc_port=triton_server.ports.grpc)

    async def publish(kind, seq, **extra):
        await publisher.publisher.publish(publisher.stream, kind(
            deployment=deployment, app_id=publisher.app_id, instance_id="container_grpc_1", seq=seq,
            endpoints=endpoints, models=["identity"], **extra))

    async def grpc_servers():
        return {(s.ip, s.port) for s in await api.servers("triton_grpc_backend")}

    async def answers_grpc():
        try:
            return await asyncio.to_thread(grpc_infer, grpc_address) == [3.0]
        except InferenceServerException:
            return False

    try:
        await publisher.record(zk_hosts, "triton_backend")
        settings = settings_for(stack, zk_hosts, deployment=deployment, haproxy_sockets=[socket_path],
                                allowed_backends=["triton_backend"], grpc_backends=[PAIR])
        async with in_process(settings):
            await publish(ev.InstanceReady, 1)
            await until(answers_grpc, 30, "alice's gRPC infer through the gateway-sync-kept backend")
            assert await grpc_servers() == {("127.0.0.1", triton_server.ports.grpc)}
            assert {(s.ip, s.port) for s in await api.servers("triton_backend")} == {
                ("127.0.0.1", triton_server.ports.http)}
            await publish(ev.InstanceStopped, 2, exit_code=0)
            await until(lambda: _empty(grpc_servers()), 15, "the stopped instance out of the gRPC backend")
            with pytest.raises(InferenceServerException) as raised:
                await asyncio.to_thread(grpc_infer, grpc_address)
            assert raised.value.status() == "StatusCode.UNAVAILABLE"
    finally:
        await publisher.close()


async def _empty(servers) -> bool:
    return not await servers
