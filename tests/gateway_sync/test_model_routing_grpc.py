"""Per-model routing on gRPC: the real HAProxy rendered from haproxy-authz.cfg.tmpl with
--model-slots and its gRPC frontend (tarn_authz_grpc.lua names the model for the map), real
tarn-authz, Redis, ZooKeeper and the real tritonserver: a model's gRPC calls go to its slot
backend at the instances' gRPC ports, and get UNAVAILABLE once no instance holds it, while
the instance itself stays routed."""
from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from tritonclient.utils import InferenceServerException

from tarn_authz.app import create_app
from tarn_gateway_sync.haproxy import RuntimeApi
from tarn_shared import events as ev
from tests.authz.servers import ServerThread
from tests.authz.support import GATEWAY_TOKEN
from tests.authz.support import settings_for as authz_settings
from tests.support.ports import free_port
from tests.support.scripts import load_script
from tests.support.stack_fixture import tarnstack

from .support import EventPublisher, in_process, settings_for, until
from .test_grpc_backend import PAIR, POLICIES, grpc_infer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def model_grpc_haproxy(triton_server, tmp_path):
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "triton_prod.json").write_text(json.dumps(POLICIES))
    authz_port = free_port()
    authz = ServerThread(create_app(authz_settings(tmp_path)), port=authz_port).start()
    grpc_port = free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(load_script("deploy/haproxy/render_authz.py").render(
        run_dir=tmp_path, http_port=free_port(), index_port=free_port(), grpc_port=grpc_port,
        authz_url=f"http://127.0.0.1:{authz_port}", gateway_token=GATEWAY_TOKEN,
        users=["user alice insecure-password alice-pw"], model_slots=2))
    log_path = tmp_path / "haproxy.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    socket_path = str(tmp_path / "haproxy-authz.sock")
    try:
        tarnstack.wait_until(lambda: "Name: HAProxy" in tarnstack.haproxy_command(socket_path, "show info"),
                             "haproxy with gRPC model slots", log_path, proc)
        yield socket_path, f"127.0.0.1:{grpc_port}", str(tmp_path / "triton_grpc_backend.models.map")
    finally:
        tarnstack.stop_pid(proc.pid)
        authz.stop()


async def test_a_models_grpc_calls_go_only_to_instances_holding_it(stack, redis_url, deployment, zk_hosts,
                                                                    triton_server, model_grpc_haproxy):
    socket_path, grpc_address, map_file = model_grpc_haproxy
    api = RuntimeApi(socket_path)
    publisher = EventPublisher(redis_url, deployment)
    endpoints = ev.Endpoints(host="127.0.0.1", http_port=triton_server.ports.http, grpc_port=triton_server.ports.grpc)
    grpc_server = ("127.0.0.1", triton_server.ports.grpc)

    async def ready(seq: int, models) -> None:
        await publisher.publisher.publish(publisher.stream, ev.InstanceReady(
            deployment=deployment, app_id=publisher.app_id, instance_id="container_grpc_models", seq=seq,
            endpoints=endpoints, models=models))

    async def grpc_status():
        try:
            return await asyncio.to_thread(grpc_infer, grpc_address)
        except InferenceServerException as exc:
            return exc.status()

    async def servers(backend: str) -> set:
        return {(s.ip, s.port) for s in await api.servers(backend)}

    try:
        await publisher.record(zk_hosts, "triton_backend")
        settings = settings_for(stack, zk_hosts, deployment=deployment, haproxy_sockets=[socket_path],
                                allowed_backends=["triton_backend"], grpc_backends=[PAIR], reconcile_interval_s=2.0)
        async with in_process(settings):
            await ready(1, ["identity"])
            await until(lambda: _equals(grpc_status(), [3.0]), 30, "alice's gRPC infer through the model's slot")
            entries = (await api.command(f"show map {map_file}")).split()
            assert entries[1:] == ["identity", "triton_grpc_backend_model_0"]
            assert await servers("triton_grpc_backend_model_0") == {grpc_server}

            await ready(2, [])  # no longer holds identity: its calls find no server, the instance stays routed
            await until(lambda: _equals(grpc_status(), "StatusCode.UNAVAILABLE"), 20, "UNAVAILABLE with no copy")
            assert await servers("triton_grpc_backend") == {grpc_server}

            await ready(3, ["identity"])
            await until(lambda: _equals(grpc_status(), [3.0]), 20, "served again once it holds the model")
    finally:
        await publisher.close()


async def _equals(value, expected) -> bool:
    return await value == expected
