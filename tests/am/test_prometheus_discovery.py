"""A real Prometheus (Debian's binary, deploy/prometheus's rendered configuration and
recording rules) finds its targets through tarn-am's service-discovery route and scrapes
them, without YARN: tarn-am's real API app (create_app: the route, /metrics) in one uvicorn
(its controller's skein and Redis clients point nowhere and are never called), the
node-agent's own HTTP app in another, and the real tritonserver serving tests/models. The
same on the minicluster, with the control loop and the node-agent's telemetry, is
tests/am/test_prometheus.py."""
from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import skein
import tritonclient.http as httpclient

from tarn_shared import events as ev

from tests.authz.servers import ServerThread
from tests.support.polling import wait_for
from tests.support.ports import LOOPBACK, free_port
from tests.support.prometheus import PrometheusServer, dashboard_queries, load_render

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "prometheus-sd-token"
DEPLOYMENT = "promsd"
APP_ID = "application_1700000000000_0042"
AGENT_CONTAINER = "container_1700000000000_0042_01_000002"
# Series that need what this test has not: a GPU that NVML reads, and rounds of the control loop.
NEEDS_GPU_OR_LOOP = ("tarn_gpu_utilization", "tarn_gpu_memory_used", "tarn_am_loop_phase")


def real_am_app(view, port: int):
    """tarn-am's API exactly as runtime.serve builds it, minus the control loop."""
    from tarn_am.app import ApiContext, create_app
    from tarn_am.authz import AuthzClient
    from tarn_am.bus import RedisBus
    from tarn_am.controller import Controller
    from tarn_am.settings import AmSettings
    from tarn_am.yarn import YarnAdapter

    settings = AmSettings(deployment=DEPLOYMENT, slots=["nvidia-local=127.0.0.1"], token=TOKEN,
                          redis_url="redis://127.0.0.1:1/0", min_instances=1, max_instances=1)
    yarn = YarnAdapter(skein.ApplicationClient("127.0.0.1:1", APP_ID, security=skein.Security.new_credentials()))
    controller = Controller(settings, yarn, RedisBus(settings.redis_url, DEPLOYMENT, APP_ID), view)
    return create_app(settings, ApiContext(controller=controller, authz=AuthzClient(None),
                                           address=f"http://{LOOPBACK}:{port}"))


class Fleet:
    """One instance (node-agent app + tritonserver), announced to a real tarn-am app."""

    def __init__(self, triton) -> None:
        from tarn_am.view import FleetView
        from tarn_node_agent.agent_metrics import AgentStatus
        from tarn_node_agent.app import create_app as agent_app
        from tarn_node_agent.settings import load_settings

        settings = load_settings(["--model-repository", "hdfs://nn:8020/models", "--container-id", AGENT_CONTAINER,
                                  "--tritonserver", sys.executable, "--deployment", DEPLOYMENT])
        self.triton = triton
        self.agent = ServerThread(agent_app(settings, AgentStatus(triton_up=True))).start()
        endpoints = ev.Endpoints(host=LOOPBACK, http_port=triton.ports.http, metrics_port=triton.ports.metrics,
                                 agent_port=self.agent.port)
        self.view = FleetView(DEPLOYMENT)
        self.view.apply_lifecycle("1-0", ev.InstanceReady(deployment=DEPLOYMENT, app_id=APP_ID,
                                                          instance_id=AGENT_CONTAINER, seq=1, endpoints=endpoints,
                                                          models=["identity"]), time.time())
        am_port = free_port()
        self.am = ServerThread(real_am_app(self.view, am_port), port=am_port).start()
        self.am_instance = f"{LOOPBACK}:{am_port}"  # outside YARN no CONTAINER_ID names the AM
        self._stop = threading.Event()
        self._reporter = threading.Thread(target=self._report, daemon=True)
        self._reporter.start()

    def _report(self) -> None:
        """Telemetry as the agent publishes it (a GPU-less node), kept fresh for the AM's /metrics."""
        model = ev.ModelSample(name="identity", request_rate_per_s=5.0, queue_time_per_request_us=120.0)
        while not self._stop.is_set():
            self.view.apply_telemetry(ev.TelemetrySample(
                deployment=DEPLOYMENT, app_id=APP_ID, instance_id=AGENT_CONTAINER, interval_s=2.0, load=0.1,
                models=[model], gpus=None, gpu_error="NVML unavailable: no GPU here"), time.time())
            self._stop.wait(2.0)

    def prometheus(self, tmp: Path, token: str = TOKEN) -> PrometheusServer:
        tmp.mkdir()
        (tmp / "token").write_text(token)
        config = load_render().render(self.am.url, tmp / "token", scrape_interval="1s", sd_refresh_interval="1s")
        return PrometheusServer(config, tmp).start()

    def stop(self) -> None:
        self._stop.set()
        self._reporter.join(timeout=5)
        self.am.stop()
        self.agent.stop()


@pytest.fixture(scope="module")
def fleet(triton_server, tmp_path_factory) -> Iterator[Fleet]:
    fleet = Fleet(triton_server)
    yield fleet
    fleet.stop()


@pytest.fixture(scope="module")
def prometheus(fleet, tmp_path_factory) -> Iterator[PrometheusServer]:
    server = fleet.prometheus(tmp_path_factory.mktemp("prom") / "ok")
    yield server
    server.stop()


def up_targets(prometheus: PrometheusServer) -> dict:
    return {t["labels"]["job"]: t for t in prometheus.active_targets() if t["health"] == "up"}


def test_prometheus_finds_the_am_the_node_agent_and_triton_through_the_am_and_scrapes_them(fleet, prometheus):
    targets = wait_for(lambda: (lambda up: up if len(up) == 3 else None)(up_targets(prometheus)), 60,
                       lambda: f"three targets up; {prometheus.active_targets()}")
    assert set(targets) == {"tarn-am", "tarn-node-agent", "triton"}
    assert targets["triton"]["scrapeUrl"] == f"http://{LOOPBACK}:{fleet.triton.ports.metrics}/metrics"
    assert targets["tarn-node-agent"]["scrapeUrl"] == f"http://{LOOPBACK}:{fleet.agent.port}/metrics"
    for job, instance in (("tarn-am", fleet.am_instance), ("tarn-node-agent", AGENT_CONTAINER),
                          ("triton", AGENT_CONTAINER)):
        labels = targets[job]["labels"]
        assert (labels["deployment"], labels["instance"], labels["host"]) == (DEPLOYMENT, instance, LOOPBACK), job


def test_scraped_series_carry_deployment_instance_and_host(fleet, prometheus):
    triton = wait_for(lambda: prometheus.query('nv_inference_request_success{model="identity"}'), 30, "Triton's series")
    assert {k: triton[0]["metric"][k] for k in ("job", "deployment", "instance", "host")} == \
        {"job": "triton", "deployment": DEPLOYMENT, "instance": AGENT_CONTAINER, "host": LOOPBACK}
    agent = wait_for(lambda: prometheus.query("tarn_node_agent_triton_up"), 30, "the node-agent's series")
    assert agent[0]["metric"]["instance"] == AGENT_CONTAINER and agent[0]["value"][1] == "1"
    am = wait_for(lambda: prometheus.query("tarn_target_containers"), 30, "the AM's series")
    # honor_labels: the AM's own deployment label stays as it is, not renamed exported_deployment.
    assert am[0]["metric"]["deployment"] == DEPLOYMENT and "exported_deployment" not in am[0]["metric"]


def test_the_scaling_signal_rules_record_queue_time_and_request_rate_from_triton(fleet, prometheus):
    client = httpclient.InferenceServerClient(url=fleet.triton.http_host_port)
    data = np.array([1.0, 2.0], dtype=np.float32)
    inputs = [httpclient.InferInput("INPUT0", list(data.shape), "FP32")]
    inputs[0].set_data_from_numpy(data)
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            client.infer("identity", inputs)
            time.sleep(0.02)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        where = f'{{deployment="{DEPLOYMENT}",model="identity"}}'
        rate = wait_for(lambda: prometheus.query(f"deployment_model:nv_inference_requests:rate1m{where} > 0"), 60,
                        "a request rate from the rules")
        queue = wait_for(lambda: prometheus.query(f"deployment_model:nv_inference_queue_seconds_per_request:rate1m"
                                                  f"{where}"), 30, "queue time per request from the rules")
        per_instance = wait_for(lambda: prometheus.query("instance:nv_inference_queue_seconds_per_request:rate1m"),
                                30, "queue time per instance")
    finally:
        stop.set()
        worker.join(timeout=10)
        client.close()
    assert 0 < float(rate[0]["value"][1]) < 200  # at most 1 request per 5 ms was sent
    assert 0 <= float(queue[0]["value"][1]) < 1  # microseconds for identity; NaN fails
    assert per_instance[0]["metric"]["instance"] == AGENT_CONTAINER
    rules = prometheus.api("rules")["groups"]
    assert {r["health"] for g in rules for r in g["rules"]} == {"ok"}, rules


def test_every_dashboard_query_runs_and_all_but_the_gpu_and_loop_ones_return_series_here(prometheus):
    queries = dashboard_queries(json.loads((ROOT / "deploy/grafana/tarn-dashboard.json").read_text()),
                                {"deployment": DEPLOYMENT})
    expected = [(w, q) for w, q in queries if not any(m in q for m in NEEDS_GPU_OR_LOOP)]

    def empty():
        # Each query runs: a query Prometheus refuses raises PrometheusError naming it.
        answers = {(w, q): prometheus.query(q) for w, q in queries}
        missing = [f"{w}: {q}" for w, q in expected if not answers[(w, q)]]
        return answers if not missing else None

    answers = wait_for(empty, 60, "series for every dashboard query this test can feed")
    returned = sum(1 for result in answers.values() if result)
    print(f"\n{len(queries)} dashboard queries ran; {returned} returned series without YARN "
          f"({len(queries) - len(expected)} need a GPU or the control loop: tests/am/test_prometheus.py)")
    assert returned >= len(expected) >= len(queries) - 4


def test_a_wrong_token_discovers_nothing(fleet, tmp_path):
    server = fleet.prometheus(tmp_path / "wrong", token="not-the-token")

    def sd_failed() -> bool:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{server.url}/metrics") as answer:
            text = answer.read().decode()
        failures = [line for line in text.splitlines() if line.startswith("prometheus_sd_http_failures_total")]
        return bool(failures) and float(failures[0].split()[-1]) > 0

    try:
        wait_for(sd_failed, 30, "Prometheus to count a failed service discovery")
        assert server.active_targets() == []
    finally:
        server.stop()


def test_the_demo_s_prometheus_step_waits_for_all_three_jobs_and_demo_down_stops_it(fleet, tmp_path):
    sys.path.insert(0, str(ROOT / "deploy" / "local"))
    import demo_prometheus
    import demo_support

    state = demo_support.DemoState(tmp_path / "demo")
    state.dir.mkdir()
    started = demo_prometheus.start_prometheus(state, fleet.am.url, TOKEN)
    try:
        assert started["jobs"] == {"tarn-am": 1, "tarn-node-agent": 1, "triton": 1}
        assert (state.dir / "prometheus-token").stat().st_mode & 0o077 == 0
    finally:
        state.stop("prometheus")
    assert "prometheus" not in state.processes
    assert wait_for(lambda: not demo_support.leftover_processes(tmp_path), 30, "Prometheus to exit")
