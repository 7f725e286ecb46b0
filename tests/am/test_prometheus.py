"""A real Prometheus on the minicluster deployment: it finds tarn-am, every node-agent and
every Triton through tarn-am's service discovery, and every query of the Grafana dashboard
(deploy/grafana/tarn-dashboard.json) and every recording rule (deploy/prometheus) returns
series once a few inferences made Triton's counters move.

tarn-am and the node-agent run in YARN containers from the venv's editable install, so
this checks the code installed there (see tests/am/test_prometheus_discovery.py for the
same without YARN)."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import httpx
import numpy as np
import pytest
import tritonclient.http as httpclient
import yaml

from tests.am.conftest import TOKEN, Deployment
from tests.support.polling import wait_for
from tests.support.prometheus import PrometheusServer, dashboard_queries, load_render

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "tarn-dashboard.json"
RULES = ROOT / "deploy" / "prometheus" / "tarn-rules.yml"
# Series only where NVML reads a GPU; the minicluster's containers have none.
GPU_METRICS = ("tarn_gpu_utilization", "tarn_gpu_memory_used")


def ready_instances(d: Deployment) -> List[dict]:
    with d.http() as http:
        rows = http.get("/instances", headers={"Accept": "application/json"}).raise_for_status().json()
    return [r for r in rows if r["ready"] and r["address"]]


@pytest.fixture(scope="module")
def prometheus(am_deployment: Deployment, tmp_path_factory) -> Iterator[PrometheusServer]:
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "tarn-am.token").write_text(TOKEN)
    config = load_render().render(am_deployment.address, tmp / "tarn-am.token", scrape_interval="1s",
                                  sd_refresh_interval="1s")
    with PrometheusServer(config, tmp) as server:
        yield server


@pytest.fixture(scope="module")
def inferences(am_deployment: Deployment) -> Iterator[None]:
    """Requests to every ready instance in the background, so Triton's counters move."""
    rows = wait_for(lambda: ready_instances(am_deployment), 240, "a ready instance", ignore=(httpx.HTTPError,))
    clients = [httpclient.InferenceServerClient(url=r["address"]) for r in rows]
    data = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    inputs = [httpclient.InferInput("INPUT0", list(data.shape), "FP32")]
    inputs[0].set_data_from_numpy(data)
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            for client in clients:
                client.infer("identity", inputs)
            time.sleep(0.05)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    yield
    stop.set()
    worker.join(timeout=10)
    for client in clients:
        client.close()


def test_prometheus_scrapes_the_am_every_node_agent_and_every_triton(am_deployment, prometheus):
    rows = wait_for(lambda: ready_instances(am_deployment), 240, "a ready instance", ignore=(httpx.HTTPError,))
    hosts = {r["instance_id"]: r["host"] for r in rows}

    def up() -> Optional[Dict[str, Dict[str, dict]]]:
        by_job: Dict[str, Dict[str, dict]] = {}
        for target in prometheus.active_targets():
            if target["health"] == "up" and target["labels"].get("deployment") == am_deployment.name:
                by_job.setdefault(target["labels"]["job"], {})[target["labels"]["instance"]] = target
        complete = len(by_job.get("tarn-am", {})) == 1 and \
            all(set(by_job.get(job, {})) == set(hosts) for job in ("tarn-node-agent", "triton"))
        return by_job if complete else None

    by_job = wait_for(up, 90, lambda: f"tarn-am and {sorted(hosts)} up; {prometheus.active_targets()}")
    # tarn-am is named by its own container's id (YARN's CONTAINER_ID), the others by their instance's.
    (am_instance,) = by_job["tarn-am"]
    assert am_instance.startswith("container_") and am_instance not in hosts
    for job in ("tarn-node-agent", "triton"):
        for instance, target in by_job[job].items():
            assert target["labels"]["host"] == hosts[instance], target
    print(f"\nPrometheus scrapes tarn-am {am_instance} and, for {sorted(hosts)}, the node-agent and Triton")


def test_every_dashboard_query_and_every_recording_rule_returns_series(am_deployment, prometheus, inferences):
    queries = dashboard_queries(json.loads(DASHBOARD.read_text()), {"deployment": am_deployment.name})
    rules = [r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r]
    # What the node-agents report: GPU queries must have series wherever a container reads a GPU.
    rows = wait_for(lambda: [r for r in ready_instances(am_deployment) if r["load"] is not None], 60,
                    "telemetry from every agent", ignore=(httpx.HTTPError,))
    gpu_readable = any(r["gpus"] for r in rows)
    needs_gpu = [(w, q) for w, q in queries if any(m in q for m in GPU_METRICS)]
    checked = [(w, q) for w, q in queries if gpu_readable or (w, q) not in needs_gpu] + \
              [(f"rule {r}", f'{r}{{deployment="{am_deployment.name}"}}') for r in rules]

    def empty() -> List[str]:
        return [f"{where}: {expr}" for where, expr in checked if not prometheus.query(expr)]

    missing = empty()
    deadline = time.monotonic() + 120  # rate()/increase() need two scrapes, the rules one evaluation more
    while missing and time.monotonic() < deadline:
        time.sleep(2)
        missing = empty()
    assert not missing, "no series for:\n" + "\n".join(missing)
    dashboard_checked = len(checked) - len(rules)
    print(f"\n{dashboard_checked} of {len(queries)} dashboard queries and {len(rules)} recording rules returned "
          f"series from Prometheus" + ("" if gpu_readable else
                                       f"; {len(needs_gpu)} GPU queries not applicable, no container reads a GPU: "
                                       f"{sorted({str(r['gpu_error']) for r in rows})}"))
