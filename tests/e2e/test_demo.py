"""End to end on the demo (`deploy/local/demo up`, in a private run directory): real YARN and
HDFS, tarn-am, node-agents running the bundled tritonserver, gateway-sync, tarn-authz and
HAProxy with the authz Lua action. The tests share one deployment and run in file order:
inference allowed and denied, the seeds' client examples, a Triton container SIGKILLed,
scale-down under load, and `demo down` leaving no process."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import List

import numpy as np
import pytest
import tritonclient.http as httpclient
from kazoo.client import KazooClient
from tritonclient.utils import InferenceServerException

from tests.e2e.conftest import ROOT, DemoDeployment, demo_support, wait_for
from tests.hadoop.cluster import kill_container
from tests.support.inference_load import InferenceLoad

import tarnstack  # noqa: E402  (deploy/local, put on sys.path by tests.e2e.conftest)

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
ZK_PATH = "/services/triton/instances"
EXAMPLES = {  # the seeds' three clients, each with what it prints on success
    "onnx_resnet50": "Inference result shape: (1, 1000)",
    "pytorch_densenet": "Predicted class ID",
    "stable_diffusion": "IMAGES shape",
}


def identity_request(client: httpclient.InferenceServerClient, headers: dict) -> np.ndarray:
    data = np.arange(4, dtype=np.float32)
    inputs = [httpclient.InferInput("INPUT0", [4], "FP32")]
    inputs[0].set_data_from_numpy(data)
    return client.infer("identity", inputs, headers=headers).as_numpy("OUTPUT0")


def test_demo_up_serves_alice_and_denies_bob_through_haproxy(demo: DemoDeployment):
    assert "alice: identity([1.0, 2.0, 3.0]) = [1.0, 2.0, 3.0]  (allowed)" in demo.up_output
    assert "HTTP 403 Forbidden" in demo.up_output
    # Around HAProxy, straight to the instance, Triton itself refuses (it has no key to match).
    assert "infer -> HTTP 403, repository index -> HTTP 403, health -> 200" in demo.up_output
    # The same through HAProxy's gRPC frontend, its backend kept by gateway-sync.
    assert f"alice (gRPC {demo.state['haproxy']['grpc']}): identity = [1.0, 2.0, 3.0]  (allowed)" in demo.up_output
    assert "identity(...) -> PERMISSION_DENIED  (denied by tarn-authz)" in demo.up_output
    assert f"{demo.state['am_address']}/dashboard#token={demo.token}" in demo.up_output
    # Prometheus scrapes tarn-am, the node-agent and Triton (its step waited for all three), and the demo says where.
    assert f"prometheus  {demo.state['prometheus_url']}" in demo.up_output
    client = httpclient.InferenceServerClient(url=demo.haproxy_url.split("://", 1)[1])
    try:
        assert identity_request(client, demo.auth("alice")).tolist() == [0.0, 1.0, 2.0, 3.0]
        with pytest.raises(InferenceServerException) as denied:
            identity_request(client, demo.auth("bob"))
        assert denied.value.status() == "403"
        with pytest.raises(InferenceServerException) as anonymous:
            identity_request(client, {})
        assert anonymous.value.status() == "401"
    finally:
        client.close()
    # The dashboard answers, and the AM filters models through authz for the dashboard's user.
    with demo.am() as http:
        assert http.get("/dashboard").status_code == 200
        names = {m["name"] for m in http.get("/models", headers={"X-TARN-User": "alice"}).json()}
        assert {"identity", "onnx_resnet50", "pytorch_densenet", "stable_diffusion"} <= names
    print(f"\ndemo up (stack + minicluster + services + submit + first instance serving + inferences): "
          f"{demo.up_s:.1f} s wall")


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_client_example_runs_through_haproxy(demo: DemoDeployment, example: str, tmp_path: Path):
    script = ROOT / "examples" / f"{example}.py"
    url = demo.haproxy_url.split("://", 1)[1]
    users = demo.state["users"]

    def run(user: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), "--url", url, "--user", user, "--password", users[user]],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    allowed = run("alice")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert EXAMPLES[example] in allowed.stdout
    denied = run("bob")
    assert denied.returncode != 0
    assert "403" in denied.stdout + denied.stderr


def test_killed_triton_container_leaves_rotation_in_haproxy_and_zookeeper(demo: DemoDeployment):
    victim = next(i for i in demo.instances() if i["ready"])
    server = f"tarn-{victim['address']}"
    zk = KazooClient(hosts=demo.state["env"]["ZK_HOSTS"])
    zk.start(timeout=15)
    try:
        assert server in demo.serving()
        assert victim["address"] in zk.get_children(ZK_PATH)
        pids = kill_container(victim["instance_id"])
        killed_at = time.monotonic()
        out_of, how = {}, "deleted"
        deadline = killed_at + 60
        while len(out_of) < 3 and time.monotonic() < deadline:
            now = time.monotonic() - killed_at
            servers = {s["srv_name"]: s for s in demo.servers()}
            if "haproxy" not in out_of and (server not in servers or not demo_support.serving(servers[server])):
                out_of["haproxy"] = now  # no longer routed to: health check down, drain, maint or deleted
                seen = servers.get(server, {})
                how = f"op state {seen.get('srv_op_state')}, admin state {seen.get('srv_admin_state')}"
            if "haproxy_removed" not in out_of and server not in servers:
                out_of["haproxy_removed"] = now  # gateway-sync deleted it
            if "zookeeper" not in out_of and victim["address"] not in zk.get_children(ZK_PATH):
                out_of["zookeeper"] = now
            time.sleep(0.02)
    finally:
        zk.stop()
        zk.close()
    print(f"\nTriton container SIGKILLed ({len(pids)} processes) -> out of rotation: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(out_of.items())) + f" (first seen: {how})")
    assert {"haproxy", "haproxy_removed", "zookeeper"} <= set(out_of), out_of
    assert max(out_of.values()) < 30
    # The AM replaces it (same node: one Triton container per node) and the gateways follow.
    wait_for(lambda: [s for s in demo.serving() if s != server] or None, 240, "a replacement serving in HAProxy")


def zk_children(demo: DemoDeployment) -> List[str]:
    zk = KazooClient(hosts=demo.state["env"]["ZK_HOSTS"])
    zk.start(timeout=15)
    try:
        return sorted(zk.get_children(ZK_PATH))
    finally:
        zk.stop()
        zk.close()


def test_redis_down_60_s_and_back_empty_drops_no_request_through_haproxy(demo: DemoDeployment):
    """Issue 17 item 1 through the whole path: while Redis is gone, gateway-sync's input is
    quiet and tarn-am hears no heartbeat; neither may take that silence for dead instances."""
    demo.tarn("scale", "2")
    wait_for(lambda: len(demo.serving()) == 2, 240, "two instances serving in HAProxy", interval_s=0.5)
    containers = sorted((i["instance_id"], i["address"]) for i in demo.instances())
    servers, znodes = demo.serving(), zk_children(demo)
    assert len(containers) == 2 and len(znodes) == 2, (containers, znodes)
    stack = tarnstack.Stack(demo.run_dir)
    with InferenceLoad([demo.haproxy_url], threads=2, headers=demo.auth("alice")) as load:
        time.sleep(3)
        stack.kill("redis")
        time.sleep(60)
        stack.start("redis")  # no persistence: back empty, on the same port
        back_at = time.monotonic()

        def whole() -> bool:
            with demo.am() as http:
                state = http.get("/api/state").raise_for_status().json()
            return state["ready"] == 2 and state["running"] == 2

        wait_for(whole, 60, "tarn-am's view whole again", interval_s=0.1)
        converged_s = time.monotonic() - back_at
        time.sleep(30)  # past the 20 s heartbeat timeout, measured from Redis' return
    after = sorted((i["instance_id"], i["address"]) for i in demo.instances())
    print(f"\nRedis down 60 s, back empty, under load through HAProxy: {load.summary()}; tarn-am's view whole {converged_s:.2f} s after; "
          f"containers kept {after == containers}")
    assert load.failed == [], load.failed[:10]
    assert load.ok > 0
    assert after == containers, "a container was lost or replaced"
    assert demo.serving() == servers and zk_children(demo) == znodes
    assert converged_s < 30


def test_scale_down_under_load_through_haproxy_drops_no_request(demo: DemoDeployment):
    demo.tarn("scale", "2")
    wait_for(lambda: len(demo.serving()) == 2, 240, "two instances serving in HAProxy", interval_s=0.5)
    with InferenceLoad([demo.haproxy_url], threads=2, headers=demo.auth("alice")) as load:
        time.sleep(2)
        before = load.ok
        assert before > 0, load.summary()
        started = time.monotonic()
        demo.tarn("scale", "1")

        def released() -> bool:
            with demo.am() as http:
                state = http.get("/api/state").json()
            return state["running"] == 1 and len(demo.servers()) == 1

        wait_for(released, 180, "the drained container released and its server deleted", interval_s=0.5)
        drained_s = time.monotonic() - started
        time.sleep(2)  # keep sending to the survivor
    print(f"\nscale 2 -> 1 under load: {load.summary()}; drained and released in {drained_s:.1f} s")
    assert load.failed == [], load.failed[:10]
    assert load.ok > before
    assert len(demo.serving()) == 1


def test_demo_down_stops_everything_and_leaves_no_process(demo: DemoDeployment):
    result = demo.down()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no process left" in result.stdout
    assert demo_support.leftover_processes(demo.run_dir) == []
    assert not (demo.run_dir / "demo" / "demo.json").exists()
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    assert str(demo.run_dir) not in ps
    print(f"\ndemo down: {demo.down_s:.1f} s")
