"""The dashboard's history on the minicluster (its own deployment, conftest.py): under load
sent straight to the instance, the charts in headless chromium gain points whose request
rates move, the node list links to the container's logs on its NodeManager, and a
SIGKILLed tarn-am comes back with its charts (read back from Redis). The screenshot of the
loaded dashboard: tests/output/dashboard.png."""
from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from tarn_am.history import History

from tests.am.conftest import TOKEN, Deployment
from tests.am.dashboard_support import CHARTS, chart_data, chromium_page, screenshot
from tests.support.polling import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.hadoop, pytest.mark.timeout(900)]
NOT_YET = (httpx.HTTPError, KeyError, IndexError)
LOAD_THREADS = 4


def serving(d: Deployment) -> list:
    return [i for i in d.state()["instances"] if i["ready"] and i["load"] is not None]


def history(d: Deployment) -> dict:
    with d.http() as http:
        return http.get("/api/history").raise_for_status().json()


def send_load(address: str, stop: threading.Event, sent: list) -> None:
    body = {"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
    with httpx.Client(base_url=f"http://{address}", timeout=10, trust_env=False) as client:
        while not stop.is_set():
            try:
                client.post("/v2/models/identity/infer", json=body).raise_for_status()
                sent.append(1)
            except httpx.HTTPError:
                time.sleep(0.1)


def test_the_charts_move_under_load_and_link_the_containers_logs(am_deployment: Deployment):
    d = am_deployment
    instance = wait_for(lambda: serving(d), 240, "a ready instance with telemetry", ignore=NOT_YET)[0]
    stop, sent = threading.Event(), []
    workers = [threading.Thread(target=send_load, args=(instance["address"], stop, sent), daemon=True)
               for _ in range(LOAD_THREADS)]
    for worker in workers:
        worker.start()
    try:
        with chromium_page(d.address) as (page, elsewhere, errors):
            page.goto(f"{d.address}/dashboard#token={TOKEN}")
            # The load shows in the charts once the agent's telemetry carries it (a few intervals).
            page.wait_for_function("window.tarnCharts && window.tarnCharts.rate && "
                                   "window.tarnCharts.rate.data.slice(1).some(ys => ys.some(v => v > 0))",
                                   timeout=90_000)
            first = chart_data(page)
            screenshot(page, "dashboard-under-load-1.png")
            seen = len(first["fleet"]["xs"])
            page.wait_for_function(f"window.tarnCharts.fleet.data[0].length >= {seen + 2}", timeout=30_000)
            second = chart_data(page)
            path = screenshot(page, "dashboard.png")

            assert set(second) == set(CHARTS)
            assert second["fleet"]["xs"][-1] > first["fleet"]["xs"][-1]
            assert second["fleet"]["ys"][0][-1] == 1 and second["fleet"]["ys"][2][-1] == 1  # target, ready
            column = second["rate"]["labels"].index(instance["instance_id"])
            rates = second["rate"]["ys"][column]
            assert rates[-1] is not None and rates[-1] > 0, rates[-5:]
            assert rates != first["rate"]["ys"][first["rate"]["labels"].index(instance["instance_id"])]
            assert "identity" in second["models"]["labels"]
            # Load is relative to the target queue time: a CPU identity model keeps it near 0, but charted.
            loads = second["load"]["ys"][second["load"]["labels"].index(instance["instance_id"])]
            assert all(v is not None for v in loads[-2:]), loads[-5:]
            print(f"\n{len(sent)} requests sent; request rate points {rates[-5:]}; {len(second['fleet']['xs'])} points")

            row = page.locator(f"#nodes tbody tr[data-node='{instance['host']}']")
            cells = row.locator("td").all_inner_texts()
            assert cells[1] == instance["instance_id"] and cells[3] and cells[4] == "0", cells
            logs = row.locator("a").get_attribute("href")
            assert logs and f"/node/containerlogs/{instance['instance_id']}/" in logs, logs
            assert path.stat().st_size > 10_000
            assert elsewhere == [], f"the page reached outside tarn-am: {elsewhere}"
            assert errors == [], errors
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=15)
    # The link names the node's NodeManager web address and the application's user as YARN's
    # REST API reports them (the minicluster runs its NodeManagers without their web servers,
    # TarnMiniCluster.java, so the link itself cannot be followed here).
    rm = d.cluster.rm_webapp_url
    nodes = httpx.get(f"{rm}/ws/v1/cluster/nodes", timeout=10, trust_env=False).json()["nodes"]["node"]
    node = next(n for n in nodes if n["nodeHostName"] == instance["host"])
    user = httpx.get(f"{rm}/ws/v1/cluster/apps/{d.app_id}", timeout=10, trust_env=False).json()["app"]["user"]
    assert logs == f"http://{node['nodeHTTPAddress']}/node/containerlogs/{instance['instance_id']}/{user}", logs


def test_a_restarted_tarn_am_keeps_its_charts(am_deployment: Deployment, redis_url):
    import redis

    d = am_deployment
    key = f"tarn:{d.name}:history"
    client = redis.Redis.from_url(redis_url)
    # Stored every 30 s (history_persist_s): wait for a store that holds a few points.
    stored = wait_for(lambda: (lambda raw: raw if raw and len(History.load(raw, 1800, 2.0, time.time()).points) >= 3
                               else None)(client.get(key)), 90, f"the history in Redis at {key}")
    kept = History.load(stored, 1800, 2.0, time.time())
    oldest = kept.points[0].ts
    with d.http() as http:
        pid = http.get("/healthz").json()["pid"]
    os.kill(pid, signal.SIGKILL)

    def restarted():
        with d.http() as http:
            return http.get("/healthz", timeout=1).json()["pid"] != pid

    wait_for(restarted, 60, "tarn-am restarted by the supervisor", interval_s=0.2, ignore=NOT_YET)
    after = history(d)
    assert after["ts"] and after["ts"][0] <= oldest, (after["ts"][:3], oldest)
    assert [m for m in after["decisions"] if m["source"] == "start"], after["decisions"]
    # The decisions list survives too: the view starts from the stored ones.
    assert any(dec["source"] == "start" for dec in d.state()["decisions"])
