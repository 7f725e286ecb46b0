"""Autoscaling end to end on the minicluster (issue 17, items 2 and 4): the real tarn-am deciding
from the real node-agents' telemetry of the real tritonserver, load through the real HAProxy
kept by the real gateway-sync.

The model (tests/load_models/fixed_time) takes 100 ms per request, one at a time: four clients
queue about 300 ms each (load 3.0 against the agents' 100 ms target), so 1 instance becomes 2,
the second on the other NodeManager, in the first decision after the load is seen. When the
load stops the fleet drains back to 1 after the stabilization window, set short from
`tarn submit`. A trickle of requests runs throughout: none may fail, up or down.

Also: a start error that is not configuration (the API port taken) stops the supervisor after
its crash-loop threshold, and `tarn status` shows why.
"""
from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import httpx
import pytest

from tarn_shared import events as ev
from tests.am.conftest import TARN, TOKEN, Deployment, submitted
from tests.gateway_sync.support import Gateways, Replica, settings_for
from tests.hadoop.cluster import HadoopCluster
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(1200)]
LOAD_MODELS = Path(__file__).resolve().parents[1] / "load_models"
NOT_YET = (httpx.HTTPError, KeyError)
BODY = {"inputs": [{"name": "INPUT0", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]}
TELEMETRY_INTERVAL_S = 1.0
STABILIZATION_S = 15.0
HEAVY_CLIENTS = 4  # 100 ms each, one at a time: ~300 ms of queue per request on one instance


class Clients:
    """``count`` clients sending through HAProxy, each waiting ``pause_s`` between requests;
    counts requests and failures, by phase (the phase is what the test says it is doing)."""

    def __init__(self, url: str, count: int, pause_s: float = 0.0) -> None:
        self.url, self.pause_s = url, pause_s
        self.phase = "start"
        self.sent: Dict[str, int] = {}
        self.failures: List[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def _run(self) -> None:
        with httpx.Client(timeout=30, trust_env=False) as http:
            while not self.stop.is_set():
                phase = self.phase
                try:
                    response = http.post(f"{self.url}/v2/models/fixed_time/infer", json=BODY)
                    failure = "" if response.status_code == 200 else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    failure = repr(exc)
                with self.lock:
                    self.sent[phase] = self.sent.get(phase, 0) + 1
                    if failure:
                        self.failures.append(f"{phase}: {failure}")
                self.stop.wait(self.pause_s)

    def start(self) -> "Clients":
        for t in self.threads:
            t.start()
        return self

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=40)


def routed(gateways: Gateways) -> int:
    return len(asyncio.run(gateways.haproxy_ready()))


def first_overload_seen(stack, d: Deployment, since: float) -> Optional[float]:
    """When the first telemetry sample above scale-up after ``since`` reached Redis (its stream id)."""
    import redis
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        for entry_id, fields in client.xrange(ev.telemetry_stream(d.name), min=f"{int(since * 1000)}-0"):
            event = ev.decode(fields)
            if isinstance(event, ev.TelemetrySample) and event.load is not None and event.load > 0.8:
                return int(entry_id.decode().split("-")[0]) / 1000.0
        return None
    finally:
        client.close()


def autoscale_moves(d: Deployment, since: float) -> List[dict]:
    return sorted((x for x in d.state()["decisions"] if x["source"] == "autoscale" and x["ts"] >= since),
                  key=lambda x: x["ts"])


def fleet(d: Deployment, ready: int) -> Optional[dict]:
    state = d.state()
    return state if state["ready"] == ready and state["running"] == ready else None


@pytest.fixture
def autoscaled(hadoop_cluster: HadoopCluster, webhdfs, stack, zk_hosts, haproxy_backend,
               tmp_path) -> Iterator[tuple]:
    if len(hadoop_cluster.nodemanagers) < 2:
        pytest.skip("needs two NodeManagers")
    backend = haproxy_backend["dyn"]
    extra = ["--min-instances", "1", "--max-instances", "2", "--haproxy-backend", backend["name"],
             "--zk-ensemble", zk_hosts, "--cooldown", "5000", "--stabilization", str(STABILIZATION_S),
             "--telemetry-interval", str(TELEMETRY_INTERVAL_S), "--start-timeout", "240", "--heartbeat-timeout", "20",
             "--crash-loop-failures", "5", "--crash-loop-window", "300",
             "--agent-env", "TARN_NODE_AGENT_DRAIN_UNROUTED_TIMEOUT_S=15"]
    deployments = submitted(hadoop_cluster, webhdfs, stack, extra_args=extra, autoscale=True, models_dir=LOAD_MODELS)
    d = next(deployments)
    replica = Replica(settings_for(stack, zk_hosts, replica=f"gs-{d.name}", deployment=d.name),
                      tmp_path / "gateway-sync.log")
    gateways = Gateways(haproxy_backend["socket"], backend["name"], zk_hosts)
    try:
        yield d, gateways, f"http://127.0.0.1:{backend['port']}"
    finally:
        gateways.close()
        replica.stop()
        deployments.close()


def test_load_through_haproxy_scales_1_to_2_on_the_other_node_and_back_after_the_window_without_a_failure(
        autoscaled, stack):
    d, gateways, url = autoscaled
    first = wait_for(lambda: fleet(d, 1), 300, "one ready instance", ignore=NOT_YET)
    wait_for(lambda: routed(gateways) == 1, 60, "the instance routed in HAProxy")
    first_host = first["instances"][0]["host"]
    trickle = Clients(url, 1, pause_s=1.0).start()  # load ~0: under scale-down, yet every move is crossed
    heavy = Clients(url, HEAVY_CLIENTS)
    try:
        time.sleep(3 * TELEMETRY_INTERVAL_S)
        assert autoscale_moves(d, 0) == [], "the autoscaler moved before any load"
        trickle.phase = heavy.phase = "up"
        step_at = time.time()
        heavy.start()
        move = wait_for(lambda: autoscale_moves(d, step_at), 60, "the autoscaler's decision", ignore=NOT_YET)[0]
        seen_at = first_overload_seen(stack, d, step_at)
        two = wait_for(lambda: fleet(d, 2), 300, "two ready instances", ignore=NOT_YET)
        ready_at = time.time()
        wait_for(lambda: routed(gateways) == 2, 60, "both instances routed in HAProxy")
        routed_at = time.time()
        time.sleep(5)  # both serve the load for a while
        trickle.phase = heavy.phase = "down"
        heavy.close()
        stop_at = time.time()
        one = wait_for(lambda: fleet(d, 1), STABILIZATION_S + 120, "the fleet back to one", ignore=NOT_YET)
        down_at = time.time()
        wait_for(lambda: routed(gateways) == 1, 60, "one instance routed in HAProxy")
        time.sleep(3)
    finally:
        heavy.close()
        trickle.close()
    downs = [m for m in autoscale_moves(d, stop_at) if m["target"] < m["previous"]]
    hosts = {i["host"] for i in two["instances"]}
    sent = {p: trickle.sent.get(p, 0) + heavy.sent.get(p, 0) for p in ("up", "down")}
    failures = trickle.failures + heavy.failures
    print(f"\n[autoscale on YARN] load step -> decision {move['ts'] - step_at:.1f} s "
          f"(after the first overloaded sample: {move['ts'] - seen_at:.1f} s), -> second instance ready "
          f"{ready_at - step_at:.1f} s, -> routed by HAProxy {routed_at - step_at:.1f} s; load stopped -> "
          f"drain decided {downs[0]['ts'] - stop_at:.1f} s (window {STABILIZATION_S:g} s), -> one instance "
          f"{down_at - stop_at:.1f} s; requests up {sent['up']} down {sent['down']}, failed {len(failures)}; "
          f"decision: {move['reason']}")
    assert (move["previous"], move["target"]) == (1, 2), move  # the needed count in one decision
    assert seen_at is not None and move["ts"] - seen_at <= 3 * TELEMETRY_INTERVAL_S + 3.0, (move, seen_at)
    assert len(hosts) == 2 and first_host in hosts, two["instances"]  # the second on the other NodeManager
    assert len(downs) == 1 and (downs[0]["previous"], downs[0]["target"]) == (2, 1), downs
    assert downs[0]["ts"] - stop_at >= STABILIZATION_S - 1.0, (downs, stop_at)  # not before the window
    assert one["instances"] and len(one["instances"]) == 1
    assert sent["up"] > 20 and sent["down"] > 5, sent
    assert failures == [], failures[:10]


def test_a_taken_api_port_stops_the_supervisor_after_its_threshold_and_tarn_status_says_why(
        hadoop_cluster: HadoopCluster, webhdfs, stack):
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("0.0.0.0", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(pytest.fail.Exception) as submit_failed:
            next(submitted(hadoop_cluster, webhdfs, stack, extra_args=[
                "--am-port", str(port), "--crash-loop-failures", "3", "--crash-loop-window", "300", "--wait", "240"]))
        gave_up_s = time.monotonic() - started
    finally:
        holder.close()
    submit_output = str(submit_failed.value)
    name = submit_output.split("(tarn-", 1)[1].split(")", 1)[0]
    env = dict(hadoop_cluster.env, TARN_TOKEN=TOKEN)
    status = subprocess.run([TARN, "status", "--name", name], env=env, capture_output=True, text=True, timeout=120)
    print(f"\n[port taken] submit gave up after {gave_up_s:.1f} s: {submit_output.splitlines()[-1]}\n"
          f"tarn status: {status.stderr.strip()}")
    reason = f"tarn-am crash loop: 3 exits in 300 s, the last with 1: cannot bind 0.0.0.0:{port}"
    assert reason in submit_output  # `tarn submit --wait` says why at once
    assert status.returncode == 1 and len(status.stderr.strip().splitlines()) == 1
    assert "ended FAILED" in status.stderr and reason in status.stderr, status.stderr
