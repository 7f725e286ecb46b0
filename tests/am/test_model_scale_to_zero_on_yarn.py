"""Scale a model to zero and back, end to end on the minicluster (issue 16, item 6): the real
tarn-am in --placement per-model with ``identity: {min: 0, idle_s: 5}``, a real node-agent and
tritonserver, gateway-sync (its own process) and HAProxy with tarn_cold_start.lua. A request
for identity at 0 copies is held at HAProxy, gateway-sync publishes ModelDemanded, tarn-am
loads one copy, and the held request is answered 200; idle for its window, identity is unloaded
everywhere (also the copy it starts with); the next request is held again and answered. The time from held to answered is
printed and bounded (generously)."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.am.conftest import holders, submitted
from tests.gateway_sync.support import Replica, settings_for
from tests.support.model_haproxy import BACKEND, ModelHaproxy
from tests.support.polling import wait_for
from tests.support.stack_fixture import tarnstack

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(600)]
MODELS = ("models:\n  identity: {min: 0, max: 1, memory: 64MiB, idle_s: 5}\n"
          "  add_sub: {min: 1, max: 1, memory: 64MiB}\n")
IDENTITY = {"inputs": [{"name": "INPUT0", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]}
COLD_BOUND_S = 60.0


@pytest.fixture
def cold(hadoop_cluster, webhdfs, stack, zk_hosts, tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text(MODELS)
    deployments = submitted(hadoop_cluster, webhdfs, stack, instances=1, max_instances=1, autoscale=True,
                            extra_args=["--placement", "per-model", "--models", str(path), "--haproxy-backend",
                                        BACKEND, "--zk-ensemble", zk_hosts, "--telemetry-interval", "1"])
    deployment = next(deployments)
    replica, haproxy = None, None
    try:
        settings = settings_for(stack, zk_hosts, replica=f"gs-{deployment.name}", deployment=deployment.name,
                                allowed_backends=[BACKEND], haproxy_sockets=[str(tmp_path / "h.sock")])
        replica = Replica(settings, tmp_path / "gateway-sync.log")
        haproxy = ModelHaproxy(tmp_path, check_inter="500ms", cold_start_url=replica.url,
                               cold_wait_s=COLD_BOUND_S).start()
        yield deployment, haproxy.url(), haproxy.socket, haproxy.map_file()
    finally:
        if haproxy is not None:
            haproxy.stop()
        if replica is not None:
            replica.stop()
        deployments.close()


def cold_request(url: str) -> float:
    started = time.monotonic()
    response = httpx.post(url + "/v2/models/identity/infer", json=IDENTITY, timeout=COLD_BOUND_S + 30,
                          trust_env=False)
    waited = time.monotonic() - started
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.json()["outputs"][0]["data"] == [1.0, 2.0]
    return waited


def test_a_model_at_zero_copies_is_loaded_on_its_first_request_held_at_the_gateway_and_unloaded_when_idle(cold):
    deployment, url, socket_path, map_file = cold
    wait_for(lambda: holders(deployment.state()).get("add_sub"), 240,
             message=lambda: f"add_sub not placed: {deployment.state()['model_placement']}")

    def unloaded_when_idle() -> float:
        """Loaded, then idle past its 5 s window: unloaded everywhere, its map entry kept."""
        wait_for(lambda: "identity" in holders(deployment.state()), 90,
                 message=lambda: f"identity not loaded: {deployment.state()['model_placement']}")
        idle_since = time.monotonic()
        wait_for(lambda: "identity" not in holders(deployment.state()), 90,
                 message=lambda: f"identity not unloaded: {deployment.state()['model_placement']}")
        line = next(m for m in deployment.state()["model_placement"] if m["name"] == "identity")
        assert line["wanted"] == 0, line
        wait_for(lambda: f"identity {BACKEND}_model_" in tarnstack.haproxy_command(socket_path, f"show map {map_file}"),
                 60, "identity's map entry while at zero copies")
        return time.monotonic() - idle_since

    # A min-0 model starts with one copy (Knative's initial scale 1), then sheds it without demand.
    unloaded_when_idle()
    first = cold_request(url)
    state = deployment.state()
    assert holders(state).get("identity"), state["model_placement"]
    unloaded_s = unloaded_when_idle()

    second = cold_request(url)
    print(f"cold start: first request answered {first:.1f} s after it was held; identity unloaded "
          f"{unloaded_s:.1f} s after it went idle; the next cold request answered after {second:.1f} s")
    assert first < COLD_BOUND_S and second < COLD_BOUND_S
