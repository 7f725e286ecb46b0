"""End to end on the demo (`deploy/local/demo up`, in a private run directory): real YARN and
HDFS, tarn-am, node-agents running the bundled tritonserver, gateway-sync, tarn-authz and
HAProxy with the authz Lua action. The tests share one deployment and run in file order:
inference allowed and denied, the seeds' client examples, a Triton container SIGKILLed,
scale-down under load, and `demo down` leaving no process."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
from kazoo.client import KazooClient
from tritonclient.utils import InferenceServerException

from tests.e2e.conftest import ROOT, DemoDeployment, demo_support, wait_for
from tests.hadoop.cluster import kill_container

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


def test_scale_down_under_load_through_haproxy_drops_no_request(demo: DemoDeployment):
    demo.tarn("scale", "2")
    wait_for(lambda: len(demo.serving()) == 2, 240, "two instances serving in HAProxy", interval_s=0.5)
    outcomes: Counter = Counter()
    stop = threading.Event()
    payload = {"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}

    def load() -> None:
        with httpx.Client(base_url=demo.haproxy_url, headers=demo.auth("alice"), timeout=30, trust_env=False) as http:
            while not stop.is_set():
                try:
                    response = http.post("/v2/models/identity/infer", json=payload)
                    ok = response.status_code == 200 and response.json()["outputs"][0]["data"] == payload["inputs"][0]["data"]
                    outcomes["ok" if ok else f"http {response.status_code}"] += 1
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__] += 1

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        before = outcomes["ok"]
        assert before > 0, outcomes
        started = time.monotonic()
        demo.tarn("scale", "1")

        def released() -> bool:
            with demo.am() as http:
                state = http.get("/api/state").json()
            return state["running"] == 1 and len(demo.servers()) == 1

        wait_for(released, 180, "the drained container released and its server deleted", interval_s=0.5)
        drained_s = time.monotonic() - started
        time.sleep(2)  # keep sending to the survivor
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    failed = {k: v for k, v in outcomes.items() if k != "ok"}
    print(f"\nscale 2 -> 1 under load: {outcomes['ok']} requests ok, {sum(failed.values())} failed {failed}; "
          f"drained and released in {drained_s:.1f} s")
    assert not failed, outcomes
    assert outcomes["ok"] > before
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
