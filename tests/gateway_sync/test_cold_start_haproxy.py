"""A model scaled to zero, at the gateway (issue 16, item 6), against a real HAProxy 2.6 with
deploy/haproxy/tarn_cold_start.lua (rendered by render_model_routes.py), real Redis and
ZooKeeper, gateway-sync as its own process (its HTTP API takes the Lua's reports) and a real
HTTP server standing in for the instance: a request for a model with no usable copy is held,
gateway-sync publishes ModelDemanded, and once an instance announces the model ready the held
request is answered; past its bound a held request gets 503 with Retry-After."""
from __future__ import annotations

import asyncio
import time
from typing import List

import httpx
import pytest

from tarn_shared import events as ev
from tests.support.ports import free_port
from tests.support.stack_fixture import tarnstack

from tarn_shared.deployments import put_record

from tests.support.model_haproxy import BACKEND, ModelHaproxy

from .support import ZK_PATH, Backends, EventPublisher, Replica, settings_for, until

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def test_a_request_held_past_its_bound_gets_503_with_retry_after(stack, tmp_path):
    # No gateway-sync listens at the cold-start URL: the hold still ends at its bound.
    haproxy = ModelHaproxy(tmp_path, check_inter="500ms", cold_start_url=f"http://127.0.0.1:{free_port()}",
                           cold_wait_s=2.0).start()
    socket_path, url, map_file = haproxy.socket, haproxy.url(), haproxy.map_file()
    try:
        tarnstack.haproxy_command(socket_path, f"add map {map_file} identity {BACKEND}_model_0")
        started = time.monotonic()
        response = httpx.post(url + "/v2/models/identity/infer", json={}, timeout=20)
        waited = time.monotonic() - started
        assert response.status_code == 503 and response.headers["retry-after"] == "7", response.text
        assert "identity is starting" in response.text
        assert 2.0 <= waited < 6.0, waited  # held for its bound, not answered at once nor much later
        # A model the map does not know is not held: it goes to the default backend (no server: 503 at once).
        started = time.monotonic()
        other = httpx.post(url + "/v2/models/other/infer", json={}, timeout=20)
        assert other.status_code == 503 and "retry-after" not in other.headers and time.monotonic() - started < 1.5
    finally:
        if haproxy is not None:
            haproxy.stop()


async def _demands(publisher: EventPublisher) -> List[ev.ModelDemanded]:
    entries = await publisher.client.xrange(publisher.stream)
    return [e for e in (ev.decode(f) for _, f in entries) if isinstance(e, ev.ModelDemanded)]


async def test_a_held_request_is_answered_once_a_copy_is_ready_and_gateway_sync_asks_for_it(
        stack, redis_url, deployment, zk_hosts, tmp_path):
    backends = Backends(1)
    replica, haproxy = None, None
    publisher = EventPublisher(redis_url, deployment)
    try:
        (port,) = backends.ports
        settings = settings_for(stack, zk_hosts, deployment=deployment, allowed_backends=[BACKEND],
                                reconcile_interval_s=2.0, haproxy_sockets=[str(tmp_path / "h.sock")])
        replica = Replica(settings, tmp_path / "gateway-sync.log")  # it waits for HAProxy's socket
        haproxy = ModelHaproxy(tmp_path, check_inter="500ms", cold_start_url=replica.url, cold_wait_s=30.0).start()
        socket_path, url, map_file = haproxy.socket, haproxy.url(), haproxy.map_file()
        await backends.wait_ready()
        await put_record(publisher.client, ev.DeploymentRecord(
            deployment=deployment, app_id=publisher.app_id, zk_ensemble=zk_hosts, zk_path=ZK_PATH,
            haproxy_backend=BACKEND, cold_models=["identity"]))
        await until(lambda: _is_leader(replica), 30, "gateway-sync leading")
        # A model that may scale to zero has its map entry before it has any copy.
        await until(lambda: f"identity {BACKEND}_model_0" in tarnstack.haproxy_command(socket_path, f"show map {map_file}"),
                    30, "identity's map entry from the deployment record")
        seq = [0]

        async def ready(models: List[str]) -> None:
            seq[0] += 1
            await publisher.publisher.publish(publisher.stream, ev.InstanceReady(
                deployment=deployment, app_id=publisher.app_id, instance_id=f"container_{port}", seq=seq[0],
                endpoints=ev.Endpoints(host="127.0.0.1", http_port=port), models=models))

        async with httpx.AsyncClient(base_url=url, timeout=40.0) as client:
            await ready(["identity"])
            await until(lambda: _status(client, "identity", 200), 30, "identity served through its slot")
            await ready([])  # its last copy unloaded: scaled to zero
            await until(lambda: _slot_empty(socket_path), 30, "identity's slot emptied")
            assert f"identity {BACKEND}_model_0" in tarnstack.haproxy_command(socket_path, f"show map {map_file}")

            started = time.monotonic()
            held = asyncio.ensure_future(client.post("/v2/models/identity/infer", json={}))
            demand = await until(lambda: _demands(publisher), 15, "gateway-sync's model.demanded")
            demanded_s = time.monotonic() - started
            assert [(d.model, d.backend) for d in demand] == [("identity", BACKEND)]
            await asyncio.sleep(1.0)
            assert not held.done()  # still held: no copy yet
            await ready(["identity"])  # what tarn-am's load and the agent's ready announcement do
            response = await held
            answered_s = time.monotonic() - started
            assert response.status_code == 200 and response.json() == {"port": port, "model": "identity"}
            print(f"cold request: demand published {demanded_s:.2f} s after it was held, answered "
                  f"{answered_s:.2f} s after (copy announced at {demanded_s + 1:.1f} s)")
            assert answered_s < 15.0

            # Bad input gets a clear refusal; a flood of reports is one demand per few seconds.
            async with httpx.AsyncClient(base_url=replica.url, timeout=5.0) as api:
                unknown = await api.post("/cold-start", json={"backend": BACKEND, "model": "nope", "event": "held"})
                assert unknown.status_code == 404 and "not one deployment" in unknown.json()["message"]
                hostile = await api.post("/cold-start", json={"backend": BACKEND, "model": "a b\n", "event": "held"})
                assert hostile.status_code == 422
                stranger = await api.post("/cold-start", json={"backend": "other", "model": "identity", "event": "held"})
                assert stranger.status_code == 404
                before = len(await _demands(publisher))
                outcomes = [(await api.post("/cold-start", json={"backend": BACKEND, "model": "identity",
                                                                 "event": "waiting"})).json()["outcome"]
                            for _ in range(30)]
                assert outcomes.count("published") <= 1 and len(await _demands(publisher)) - before <= 1
                metrics = (await api.get("/metrics")).text
                # Every held request (the polls above too) is counted once held and once served.
                assert _sample(metrics, 'cold_requests_total{outcome="served"}') >= 1, metrics
                assert _sample(metrics, 'cold_requests_total{outcome="expired"}') == 0
                assert _sample(metrics, 'model_demands_total{outcome="throttled"}') >= 29
    finally:
        await publisher.close()
        if replica is not None:
            replica.stop()
        if haproxy is not None:
            haproxy.stop()
        backends.stop()


def _sample(metrics: str, name: str) -> float:
    line = next((x for x in metrics.splitlines() if x.startswith("tarn_gateway_sync_" + name + " ")), None)
    return float(line.split()[-1]) if line else 0.0


async def _is_leader(replica: Replica) -> bool:
    return await replica.role() == "leader"


async def _status(client: httpx.AsyncClient, model: str, status: int) -> bool:
    return (await client.post(f"/v2/models/{model}/infer", json={})).status_code == status


def _slot_empty(socket_path: str) -> bool:
    """No server of the slot both running (op state 2) and in no admin state (drain, maint)."""
    state = tarnstack.haproxy_command(socket_path, f"show servers state {BACKEND}_model_0")
    servers = [line.split() for line in state.splitlines() if line and not line.startswith("#") and " " in line]
    return not any(fields[5] == "2" and fields[6] == "0" for fields in servers)
